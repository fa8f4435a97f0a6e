package doctor

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/signatory-go/signatory/internal/config"
	"github.com/signatory-go/signatory/internal/tezos"
	wmfile "github.com/signatory-go/signatory/internal/watermark/file"
)

// env is a config's surroundings: a key file holding a tz1 and a tz4 key, and a base_dir.
type env struct {
	dir, base, keyFile string
	tz1, tz4           string
}

func newEnv(t *testing.T) *env {
	t.Helper()
	e := &env{dir: t.TempDir()}
	e.base = filepath.Join(e.dir, "data")
	if err := os.Mkdir(e.base, 0o700); err != nil {
		t.Fatal(err)
	}
	var entries []map[string]string
	for _, c := range []tezos.Curve{tezos.Ed25519, tezos.BLS} {
		k, err := tezos.GenerateKey(c)
		if err != nil {
			t.Fatal(err)
		}
		pkh := k.Public().Hash().String()
		if c == tezos.Ed25519 {
			e.tz1 = pkh
		} else {
			e.tz4 = pkh
		}
		entries = append(entries, map[string]string{"name": pkh, "value": "unencrypted:" + string(k.ToBase58())})
	}
	data, _ := json.Marshal(entries)
	e.keyFile = filepath.Join(e.dir, "secret_keys.json")
	if err := os.WriteFile(e.keyFile, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return e
}

// clean is a config with nothing to find: both keys signing what they need on mainnet only.
func (e *env) clean() string {
	return `base_dir: ` + e.base + `
server: {address: 127.0.0.1:6732, utility_address: 127.0.0.1:9583}
vaults:
  local: {driver: file, config: {file: ` + e.keyFile + `}}
watermark: {driver: file}
tezos:
  ` + e.tz1 + `:
    allowed_chains: [NetXdQprcVkpaWU]
    allow: {block: , preattestation: , attestation: , attestation_with_dal: }
  ` + e.tz4 + `:
    allowed_chains: [NetXdQprcVkpaWU]
    allow_proof_of_possession: true
    allow: {block: , preattestation: , attestation: }
`
}

// quiet are options that find nothing wrong with this machine: plenty of space on ext4, a fast
// fsync.
func quiet() Options {
	return Options{
		Statfs: func(_ string, st *syscall.Statfs_t) error { st.Bavail, st.Bsize = 1<<30, 4096; return nil },
		Fsync:  func(string) error { return nil },
	}
}

func run(t *testing.T, src string, opts Options) []Finding {
	t.Helper()
	cfg, err := config.Parse([]byte(src), "")
	if err != nil {
		t.Fatalf("config: %v\n%s", err, src)
	}
	return Run(t.Context(), cfg, opts)
}

// only fails t unless findings are exactly one, of check and severity, about subject.
func only(t *testing.T, findings []Finding, check string, sev Severity, subject string) {
	t.Helper()
	if len(findings) != 1 || findings[0].Check != check || findings[0].Severity != sev || !strings.Contains(findings[0].Subject, subject) {
		t.Fatalf("want one %s %s about %q, got %+v", sev, check, subject, findings)
	}
	if findings[0].Problem == "" || findings[0].Fix == "" {
		t.Fatalf("a finding without its problem or fix: %+v", findings[0])
	}
}

func TestClean(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	if f := run(t, e.clean(), quiet()); len(f) != 0 {
		t.Fatalf("findings in a clean config: %+v", f)
	}
}

// TestConsensusKinds: a consensus key missing a kind its baker sends is an error; a tz1 key
// without attestation_with_dal a warning; a tz4 key allowed it, an info; a tz4 key without proof
// of possession, a warning.
func TestConsensusKinds(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	c := e.clean()
	only(t, run(t, strings.Replace(c, "allow: {block: , preattestation: , attestation: , attestation_with_dal: }", "allow: {block: , attestation: , attestation_with_dal: }", 1), quiet()),
		"consensus-kinds", Error, e.tz1)
	only(t, run(t, strings.Replace(c, "attestation: , attestation_with_dal: }", "attestation: }", 1), quiet()), "consensus-kinds", Warning, e.tz1)
	only(t, run(t, strings.Replace(c, "allow: {block: , preattestation: , attestation: }", "allow: {block: , preattestation: , attestation: , attestation_with_dal: }", 1), quiet()),
		"consensus-kinds", Info, e.tz4)
	only(t, run(t, strings.Replace(c, "allow_proof_of_possession: true", "", 1), quiet()), "proof-of-possession", Warning, e.tz4)
}

func TestAllowedChains(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	only(t, run(t, strings.Replace(e.clean(), "    allowed_chains: [NetXdQprcVkpaWU]\n    allow: {block", "    allow: {block", 1), quiet()), "allowed-chains", Warning, e.tz1)
}

// TestKeys: a key listed but in no vault is an error; a key in a vault but not listed, an info.
func TestKeys(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	other, _ := tezos.GenerateKey(tezos.Ed25519)
	missing := other.Public().Hash().String()
	f := run(t, e.clean()+"  "+missing+":\n    allowed_chains: [NetXdQprcVkpaWU]\n    allow: {generic: [transaction]}\n", quiet())
	only(t, f, "key-in-vault", Error, missing)
	if !strings.Contains(f[0].Fix, "these can hold a tz1 key: local (file)") {
		t.Fatalf("the fix does not name the vault that can hold the key: %s", f[0].Fix)
	}
	// A tz4 key listed while the only vault is an HSM that holds no BLS keys: the fix names the
	// drivers that can.
	tz4, _ := tezos.GenerateKey(tezos.BLS)
	hsm := strings.Replace(e.clean(), "local: {driver: file, config: {file: "+e.keyFile+"}}",
		"local: {driver: file, config: {file: "+e.keyFile+"}}\n  hsm: {driver: pkcs11, config: {library_path: /nonexistent/libp11.so, slot: 0, pin: \"1234\"}}", 1)
	noBLS := strings.Replace(hsm, "  local: {driver: file, config: {file: "+e.keyFile+"}}\n", "", 1)
	f = run(t, noBLS+"  "+tz4.Public().Hash().String()+":\n    allowed_chains: [NetXdQprcVkpaWU]\n    allow: {block: , preattestation: , attestation: }\n    allow_proof_of_possession: true\n", quiet())
	var fix string
	for _, x := range f {
		if x.Check == "key-in-vault" && x.Subject == tz4.Public().Hash().String() {
			fix = x.Fix
		}
	}
	if !strings.Contains(fix, "none of the vaults configured can hold a tz4 key") || !strings.Contains(fix, "file, mem, threshold") {
		t.Fatalf("a tz4 key with no vault that can hold one: %q in %+v", fix, f)
	}
	c := e.clean()
	i := strings.Index(c, "  "+e.tz4+":")
	only(t, run(t, c[:i], quiet()), "key-in-policy", Info, e.tz4)
}

func TestVaultUnreachable(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	f := run(t, strings.Replace(e.clean(), e.keyFile, filepath.Join(e.dir, "nope.json"), 1), quiet())
	if len(f) == 0 || f[0].Check != "vault-reachable" || f[0].Severity != Error || !strings.Contains(f[0].Problem, "nope.json") {
		t.Fatalf("%+v", f)
	}
}

// TestBaseDir: in memory (tmpfs) or with no room is an error, little room a warning; readable by
// others a warning; not there yet an info.
func TestBaseDir(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	o := quiet()
	o.Statfs = func(_ string, st *syscall.Statfs_t) error {
		st.Type, st.Bavail, st.Bsize = tmpfsMagic, 1<<30, 4096
		return nil
	}
	only(t, run(t, e.clean(), o), "persistent-storage", Error, e.base)
	for free, sev := range map[uint64]Severity{1 << 20: Error, 100 << 20: Warning} {
		o.Statfs = func(_ string, st *syscall.Statfs_t) error { st.Bavail, st.Bsize = free/4096, 4096; return nil }
		only(t, run(t, e.clean(), o), "free-space", sev, e.base)
	}
	if err := os.Chmod(e.base, 0o755); err != nil {
		t.Fatal(err)
	}
	only(t, run(t, e.clean(), quiet()), "permissions", Warning, e.base)
	if err := os.Chmod(e.base, 0o700); err != nil {
		t.Fatal(err)
	}
	only(t, run(t, strings.Replace(e.clean(), "base_dir: "+e.base, "base_dir: "+filepath.Join(e.base, "new"), 1), quiet()), "base-dir", Info, "new")
}

// TestFsync: a durable write that fails is an error, a slow one a warning; the real probe works
// in a temp directory.
func TestFsync(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	o := quiet()
	o.Fsync = func(string) error { return errors.New("EIO") }
	only(t, run(t, e.clean(), o), "fsync", Error, e.base)
	o.Fsync = func(string) error { time.Sleep(2 * time.Millisecond); return nil }
	o.SlowFsync = time.Millisecond
	only(t, run(t, e.clean(), o), "fsync", Warning, e.base)
	if err := probeFsync(t.TempDir()); err != nil {
		t.Fatal(err)
	}
	if err := probeFsync(filepath.Join(t.TempDir(), "not", "yet")); err != nil {
		t.Fatal(err)
	}
}

// TestWatermarkDir: a signer holding the lock is an info; a chain file that cannot be read an
// error; the journal turned off an info.
func TestWatermarkDir(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	s, err := wmfile.Open(e.base)
	if err != nil {
		t.Fatal(err)
	}
	only(t, run(t, e.clean(), quiet()), "lock", Info, wmfile.LockName)
	s.Close()
	only(t, run(t, strings.Replace(e.clean(), "watermark: {driver: file}", "watermark: {driver: file, config: {journal: false}}", 1), quiet()), "journal", Info, "watermark")
	if err := os.WriteFile(filepath.Join(e.base, wmfile.DirName, "NetXdQprcVkpaWU.json"), []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	only(t, run(t, e.clean(), quiet()), "watermark-files", Error, wmfile.DirName)
}

// TestServer: a signing port beyond loopback without authentication is an error; the utility
// port on every interface a warning.
func TestServer(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	only(t, run(t, strings.Replace(e.clean(), "address: 127.0.0.1:6732", "address: 0.0.0.0:6732", 1), quiet()), "authentication", Error, "0.0.0.0:6732")
	for _, addr := range []string{":9583", "0.0.0.0:9583", "[::]:9583"} {
		only(t, run(t, strings.Replace(e.clean(), "utility_address: 127.0.0.1:9583", "utility_address: \""+addr+"\"", 1), quiet()), "utility-port", Warning, addr)
	}
}

// TestCertificate: a certificate that expired is an error, one expiring within 30 days a warning.
func TestCertificate(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 12, 5, 0, 0, 0, 0, time.UTC)
	for days, sev := range map[int]Severity{-1: Error, 10: Warning} {
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), NotBefore: now.AddDate(0, -1, 0), NotAfter: now.AddDate(0, 0, days)}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
		if err != nil {
			t.Fatal(err)
		}
		cert := filepath.Join(e.dir, "cert.pem")
		if err := os.WriteFile(cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		o := quiet()
		o.Now = func() time.Time { return now }
		src := strings.Replace(e.clean(), "utility_address: 127.0.0.1:9583}", "utility_address: 127.0.0.1:9583, tls: {cert_file: "+cert+", key_file: "+cert+"}}", 1)
		only(t, run(t, src, o), "tls-certificate", sev, cert)
	}
}

func TestHasErrors(t *testing.T) {
	t.Parallel()
	if HasErrors([]Finding{{Severity: Warning}, {Severity: Info}}) || !HasErrors([]Finding{{Severity: Info}, {Severity: Error}}) {
		t.Fatal("HasErrors")
	}
}
