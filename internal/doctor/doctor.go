// Package doctor checks a config and the machine it runs on as a careful baker would before
// mainnet (`signatory doctor`): each finding names what it is about, how serious it is, and the
// fix. It changes nothing: vaults are opened and closed, the watermark directory is only looked
// at (and a temp file written and removed there, to time an fsync).
package doctor

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/signatory-go/signatory/internal/config"
	"github.com/signatory-go/signatory/internal/daemon"
	"github.com/signatory-go/signatory/internal/durable"
	"github.com/signatory-go/signatory/internal/request"
	"github.com/signatory-go/signatory/internal/tezos"
	"github.com/signatory-go/signatory/internal/vault"
	wmfile "github.com/signatory-go/signatory/internal/watermark/file"
)

// Severity says how serious a finding is. An Error means the signer would fail a baker (or
// sign what it should not); a Warning is a risk or a loss worth fixing; Info is for the record.
type Severity string

const (
	Error   Severity = "error"
	Warning Severity = "warning"
	Info    Severity = "info"
)

// Finding is one result of a check.
type Finding struct {
	Check    string   `json:"check"`             // the check's stable name
	Severity Severity `json:"severity"`          // error, warning or info
	Subject  string   `json:"subject,omitempty"` // the key, vault, path or address it is about
	Problem  string   `json:"problem"`
	Fix      string   `json:"fix"`
}

// Options are the machine's thresholds and probes; zero values take the defaults.
type Options struct {
	// MinFree is the free space below which base_dir is an error (default 64 MiB); below four
	// times it, a warning.
	MinFree uint64
	// SlowFsync is the time a durable write may take before it is a warning (default 50 ms).
	SlowFsync time.Duration
	// ExpiryWarning is how close to its expiry a TLS certificate is a warning (default 30 days).
	ExpiryWarning time.Duration
	// Now is the clock for certificate expiry (default time.Now).
	Now func() time.Time
	// Fsync probes a durable write in dir (default: a temp file written, fsynced and removed).
	Fsync func(dir string) error
	// Statfs reports on the file system holding path (default syscall.Statfs).
	Statfs func(path string, st *syscall.Statfs_t) error
}

func (o *Options) defaults() {
	if o.MinFree == 0 {
		o.MinFree = 64 << 20
	}
	if o.SlowFsync == 0 {
		o.SlowFsync = 50 * time.Millisecond
	}
	if o.ExpiryWarning == 0 {
		o.ExpiryWarning = 30 * 24 * time.Hour
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Fsync == nil {
		o.Fsync = probeFsync
	}
	if o.Statfs == nil {
		o.Statfs = syscall.Statfs
	}
}

// HasErrors reports whether any finding is an Error.
func HasErrors(fs []Finding) bool {
	return slices.ContainsFunc(fs, func(f Finding) bool { return f.Severity == Error })
}

// Run runs every check on cfg and returns the findings, errors first.
func Run(ctx context.Context, cfg *config.Config, opts Options) []Finding {
	opts.defaults()
	var out []Finding
	add := func(f Finding) { out = append(out, f) }
	checkPolicies(cfg, add)
	checkVaults(ctx, cfg, add)
	checkBaseDir(cfg, opts, add)
	checkWatermark(cfg, add)
	checkServer(cfg, opts, add)
	order := map[Severity]int{Error: 0, Warning: 1, Info: 2}
	slices.SortStableFunc(out, func(a, b Finding) int { return order[a.Severity] - order[b.Severity] })
	return out
}

// consensusKinds are the kinds a baker's consensus key signs.
var consensusKinds = []request.Kind{request.Block, request.Preattestation, request.Attestation, request.AttestationWithDAL}

// checkPolicies: every consensus key holds what its type needs; allowed_chains.
func checkPolicies(cfg *config.Config, add func(Finding)) {
	for _, pkh := range cfg.KeyOrder {
		p := cfg.Policies[pkh]
		if p == nil {
			continue
		}
		if !slices.ContainsFunc(consensusKinds, func(k request.Kind) bool { return slices.Contains(p.Requests, k) }) {
			continue // not a consensus key
		}
		var missing []string
		for _, k := range []request.Kind{request.Block, request.Preattestation, request.Attestation} {
			if !slices.Contains(p.Requests, k) {
				missing = append(missing, string(k))
			}
		}
		if len(missing) > 0 {
			add(Finding{"consensus-kinds", Error, pkh,
				"a consensus key that may not sign " + strings.Join(missing, ", ") + ": the baker's requests of those kinds are refused (403), and it misses its slots",
				"add " + strings.Join(missing, ", ") + " to the key's allow: (a baker signs blocks, preattestations and attestations)"})
		}
		dal := slices.Contains(p.Requests, request.AttestationWithDAL)
		switch {
		case strings.HasPrefix(pkh, "tz4"):
			if dal {
				add(Finding{"consensus-kinds", Info, pkh,
					"attestation_with_dal is allowed to a tz4 key, which never sends it (a tz4 baker's DAL content rides in its attestation)",
					"remove attestation_with_dal from the key's allow:"})
			}
			if !p.AllowPoP {
				add(Finding{"proof-of-possession", Warning, pkh,
					"a tz4 consensus key without allow_proof_of_possession: octez-client cannot reveal it, nor register it as a consensus or companion key",
					"set allow_proof_of_possession: true for the key (only its own public key is proven)"})
			}
		case !dal:
			add(Finding{"consensus-kinds", Warning, pkh,
				"attestation_with_dal is not allowed: with a DAL node the baker's DAL attestations are refused",
				"add attestation_with_dal to the key's allow: if the baker runs with a DAL node (--dal-node)"})
		}
		if len(p.AllowedChains) == 0 {
			add(Finding{"allowed-chains", Warning, pkh,
				"allowed_chains is unset: the key signs blocks and consensus operations for any chain id, a test network's included",
				"set allowed_chains: [NetXdQprcVkpaWU] (mainnet) or the chain the baker runs on"})
		}
	}
}

// checkVaults: each vault opens; keys in policy but in no vault, and the reverse.
func checkVaults(ctx context.Context, cfg *config.Config, add func(Finding)) {
	skipped := &skipLog{why: map[string]string{}}
	log := slog.New(skipped)
	vaults, err := daemon.OpenVaults(ctx, cfg, vault.Env{BaseDir: cfg.BaseDir, Logger: log}, log)
	if err != nil {
		add(Finding{"vaults", Error, "", "the vaults cannot be opened: " + err.Error(), "fix the vaults: section"})
		return
	}
	defer daemon.CloseVaults(vaults, slog.New(slog.NewTextHandler(io.Discard, nil)))
	opened := map[string]bool{}
	for _, v := range vaults {
		opened[v.Name()] = true
	}
	for name := range cfg.Vaults {
		if !opened[name] {
			add(Finding{"vault-reachable", Error, name,
				"the vault did not open (the signer skips it, and its keys answer 404): " + skipped.reason(name),
				"check the vault's credentials, password and address; the signer's log at start says the same"})
		}
	}
	held := map[string]string{}
	for _, v := range vaults {
		keys, err := v.List(ctx)
		if err != nil {
			add(Finding{"vault-reachable", Error, v.Name(), "the vault cannot list its keys: " + err.Error(), "check the vault's service and credentials"})
			continue
		}
		for _, k := range keys {
			held[k.PublicKey().Hash().String()] = v.Name()
		}
	}
	for _, pkh := range cfg.KeyOrder {
		if _, ok := held[pkh]; !ok {
			add(Finding{"key-in-vault", Error, pkh, "listed under tezos: but held by no vault: every request for it answers 404",
				"import the key into a vault, or fix the address under tezos:" + canHold(cfg, pkh)})
		}
	}
	for pkh, v := range held {
		if cfg.Policies[pkh] == nil {
			add(Finding{"key-in-policy", Info, pkh, "held by vault " + v + " but not listed under tezos:: it signs nothing",
				"list it under tezos: with what it may sign, if it should sign"})
		}
	}
}

// canHold says which of the configured vaults can hold pkh's key type, and when none can, which
// drivers could (daemon.VaultCurves).
func canHold(cfg *config.Config, pkh string) string {
	prefix := pkh[:min(3, len(pkh))]
	curve, err := tezos.ParseCurve(prefix)
	if err != nil || !strings.HasPrefix(prefix, "tz") {
		return ""
	}
	var vaults, drivers []string
	for name, b := range cfg.Vaults {
		if slices.Contains(daemon.VaultCurves[b.Driver], curve) {
			vaults = append(vaults, name+" ("+b.Driver+")")
		}
	}
	if len(vaults) > 0 {
		slices.Sort(vaults)
		return fmt.Sprintf(" (of the vaults configured, these can hold a %s key: %s)", prefix, strings.Join(vaults, ", "))
	}
	for d, curves := range daemon.VaultCurves {
		if slices.Contains(curves, curve) {
			drivers = append(drivers, d)
		}
	}
	slices.Sort(drivers)
	return fmt.Sprintf("; none of the vaults configured can hold a %s key: add a vault of a driver that can (%s)", prefix, strings.Join(drivers, ", "))
}

// checkBaseDir: persistent storage, permissions, free space, a working fsync.
func checkBaseDir(cfg *config.Config, opts Options, add func(Finding)) {
	dir := cfg.BaseDir
	fi, err := os.Stat(dir)
	if errors.Is(err, os.ErrNotExist) {
		add(Finding{"base-dir", Info, dir, "base_dir does not exist yet: the signer creates it (mode 0700) at start", "none"})
		dir = existingParent(dir)
	} else if err != nil {
		add(Finding{"base-dir", Error, dir, "base_dir cannot be read: " + err.Error(), "fix base_dir or its permissions"})
		return
	} else if fi.Mode().Perm()&0o077 != 0 {
		add(Finding{"permissions", Warning, dir, fmt.Sprintf("base_dir is mode %04o: others on the machine can read the watermarks and spending records (or change them)", fi.Mode().Perm()),
			"chmod 700 " + dir})
	}
	var st syscall.Statfs_t
	if err := opts.Statfs(dir, &st); err == nil {
		if st.Type == tmpfsMagic || st.Type == ramfsMagic {
			add(Finding{"persistent-storage", Error, dir, "base_dir is in memory (tmpfs): the watermarks are lost at every reboot, and the signer could sign again at a level it signed before",
				"put base_dir on a persistent disk (e.g. /var/lib/signatory)"})
		}
		free := st.Bavail * uint64(st.Bsize)
		switch {
		case free < opts.MinFree:
			add(Finding{"free-space", Error, dir, fmt.Sprintf("%d MiB free where base_dir is: a watermark that cannot be written refuses every block and attestation", free>>20),
				"free space on that file system, or move base_dir"})
		case free < 4*opts.MinFree:
			add(Finding{"free-space", Warning, dir, fmt.Sprintf("only %d MiB free where base_dir is", free>>20), "free space on that file system"})
		}
	}
	start := time.Now()
	if err := opts.Fsync(dir); err != nil {
		add(Finding{"fsync", Error, dir, "a durable write (write, fsync, rename) fails there: " + err.Error(), "put base_dir on a writable, persistent file system"})
	} else if took := time.Since(start); took > opts.SlowFsync {
		add(Finding{"fsync", Warning, dir, fmt.Sprintf("a durable write takes %s there: every block and attestation waits for one", took.Round(time.Millisecond)),
			"use a faster disk for base_dir"})
	}
}

// checkWatermark: the file store's lock and journal.
func checkWatermark(cfg *config.Config, add func(Finding)) {
	if cfg.Watermark.Driver != wmfile.Driver {
		return
	}
	var c wmfile.Config
	_ = cfg.Watermark.Config.Decode(&c)
	if c.Journal != nil && !*c.Journal {
		add(Finding{"journal", Info, "watermark", "the file store's journal is off: every block and attestation replaces its chain file (about five times the time of a journal write)",
			"remove journal: false, unless a tool reads the chain files while the signer runs"})
	}
	s, err := wmfile.Open(cfg.BaseDir, wmfile.ReadOnly())
	if err == nil {
		defer s.Close()
		if herr := s.Health(context.Background()); herr != nil {
			add(Finding{"watermark-files", Error, s.Dir(), "the watermark directory holds a file it cannot read: " + herr.Error(), "see docs/operations.md, a corrupt chain file"})
		}
	}
	if holder, held := wmfile.Holder(cfg.BaseDir); held {
		add(Finding{"lock", Info, filepath.Join(cfg.BaseDir, wmfile.DirName, wmfile.LockName), "a signer holds the watermark directory now: " + holder,
			"none if that is the signer you are checking; a second one on this base_dir refuses to start"})
	}
}

// checkServer: the ports' exposure, authentication, TLS certificates.
func checkServer(cfg *config.Config, opts Options, add func(Finding)) {
	s := cfg.Server
	if daemon.SigningPortOpen(s) {
		add(Finding{"authentication", Error, s.Address, "the signing port listens beyond loopback and asks no client to authenticate: anyone who reaches it can ask for signatures",
			"bind server.address to 127.0.0.1, or set server.authorized_keys (octez), server.jwt or server.tls.client_ca_file"})
	}
	if host, _, err := net.SplitHostPort(s.UtilityAddress); err == nil && (host == "" || host == "0.0.0.0" || host == "::") {
		add(Finding{"utility-port", Warning, s.UtilityAddress, "the utility port (/metrics, /healthz) listens on every interface: it tells anyone the keys, volumes and chains",
			"bind server.utility_address to 127.0.0.1 (or a private address your Prometheus reaches)"})
	}
	if s.TLS != nil && s.TLS.CertFile != "" {
		checkCert(s.TLS.CertFile, opts, add)
	}
}

func checkCert(path string, opts Options, add func(Finding)) {
	data, err := os.ReadFile(path)
	if err != nil {
		add(Finding{"tls-certificate", Error, path, "the certificate cannot be read: " + err.Error(), "fix server.tls.cert_file"})
		return
	}
	block, _ := pem.Decode(data)
	if block == nil {
		add(Finding{"tls-certificate", Error, path, "no PEM certificate in the file", "fix server.tls.cert_file"})
		return
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		add(Finding{"tls-certificate", Error, path, "the certificate does not parse: " + err.Error(), "fix server.tls.cert_file"})
		return
	}
	left := cert.NotAfter.Sub(opts.Now())
	switch {
	case left <= 0:
		add(Finding{"tls-certificate", Error, path, "the certificate expired on " + cert.NotAfter.UTC().Format(time.DateOnly) + ": clients refuse the connection",
			"renew it"})
	case left < opts.ExpiryWarning:
		add(Finding{"tls-certificate", Warning, path, fmt.Sprintf("the certificate expires on %s, in %d days", cert.NotAfter.UTC().Format(time.DateOnly), int(left.Hours()/24)),
			"renew it before then"})
	}
}

// skipLog is the logger OpenVaults reports skipped vaults to: it keeps each one's reason.
type skipLog struct {
	mu  sync.Mutex
	why map[string]string
}

func (l *skipLog) Enabled(context.Context, slog.Level) bool { return true }
func (l *skipLog) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *skipLog) WithGroup(string) slog.Handler            { return l }
func (l *skipLog) Handle(_ context.Context, r slog.Record) error {
	var name, why string
	r.Attrs(func(a slog.Attr) bool {
		switch a.Key {
		case "vault":
			name = a.Value.String()
		case "err":
			why = a.Value.String()
		}
		return true
	})
	if name != "" && why != "" {
		l.mu.Lock()
		l.why[name] = why
		l.mu.Unlock()
	}
	return nil
}

func (l *skipLog) reason(name string) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if w := l.why[name]; w != "" {
		return w
	}
	return "see the signer's log"
}

// File system magic numbers (statfs(2)).
const (
	tmpfsMagic = 0x01021994
	ramfsMagic = 0x858458f6
)

// existingParent is dir, or its nearest ancestor that exists.
func existingParent(dir string) string {
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(d); err == nil || d == filepath.Dir(d) {
			return d
		}
	}
}

// probeFsync makes a small file durable in dir (dir's nearest existing ancestor when it does not
// exist yet) the way the signer writes its files (durable.WriteBytes: temp file, fsync, rename,
// directory fsync), then removes it.
func probeFsync(dir string) error {
	path := filepath.Join(existingParent(dir), ".signatory-doctor-probe")
	defer os.Remove(path)
	return durable.WriteBytes(path, ".signatory-doctor-", make([]byte, 256))
}
