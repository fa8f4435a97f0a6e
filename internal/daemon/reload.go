package daemon

import (
	"context"
	"errors"
	"fmt"
	"os"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/ecadlabs/gotez/v2/crypt"
	"gopkg.in/yaml.v3"

	"github.com/signatory-go/signatory/internal/blsthreshold"
	"github.com/signatory-go/signatory/internal/config"
	"github.com/signatory-go/signatory/internal/server"
	"github.com/signatory-go/signatory/internal/signer"
	"github.com/signatory-go/signatory/internal/vault"
)

// Reload re-reads the config (Daemon.Load) and applies it to the running daemon: the vaults are
// opened again (their keys listed again), and the keys, policies, limits, authorized_keys, the
// policy hook, JWT users, TLS certificates and the reload token of the new config take over. The
// watermark store, its stored signatures and spending windows, and the audit journal stay as
// they are: a key removed then added again keeps its marks.
//
// The new config is applied whole or not at all. What cannot change while running (the listen
// addresses, base_dir, the watermark store, the audit journal, the server's limits and
// timeouts, TLS on or off) refuses it, naming the setting; so does any error in it, a vault open
// under the config in force that fails to open again, or a certificate that does not load. Then
// the config in force keeps serving. Either way the result is logged and counted
// (config_reloads_total{result}).
//
// Requests in flight finish under the config they started with; the vaults of the old config
// are closed after the last of them.
func (d *Daemon) Reload(ctx context.Context) (err error) {
	d.reloadMu.Lock()
	defer d.reloadMu.Unlock()
	defer func() {
		if err != nil {
			d.Metrics.ConfigReloads.WithLabelValues("refused").Inc()
			d.log.Error("config reload refused: the config in force keeps serving", "err", err)
			return
		}
		d.Metrics.ConfigReloads.WithLabelValues("applied").Inc()
	}()
	if d.closed {
		return errors.New("the signer is shutting down")
	}
	if d.Load == nil {
		return errors.New("no config file to reload")
	}
	cfg, err := d.Load()
	if err != nil {
		return err
	}
	if err := unchangeable(d.cfg, cfg); err != nil {
		return err
	}
	auth, hook, err := clientKeys(cfg)
	if err != nil {
		return err
	}
	token, err := readToken(cfg.Server.ReloadTokenFile)
	if err != nil {
		return err
	}
	old := d.svc.cur.Load()
	vaults, err := openVaults(ctx, cfg, d.env(cfg), d.keys, skipVault(d.log, old.vaults))
	if err != nil {
		return err
	}
	s, err := signer.New(ctx, signer.Config{Vaults: vaults, Policies: cfg.Policies, Store: d.store,
		AuthorizedKeys: auth, Audit: d.journal, Hook: hook, Observer: d.Metrics, Logger: d.log})
	if err != nil {
		CloseVaults(vaults, d.log)
		return err
	}
	if d.srv != nil {
		if err := d.srv.Reconfigure(liveOf(cfg, token)); err != nil {
			if cerr := s.CloseVaults(); cerr != nil {
				d.log.Error("closing the refused config's vaults", "err", cerr)
			}
			return err
		}
	}
	d.svc.cur.Store(newGeneration(s, vaults))
	d.keys.set(vaults)
	d.cfg, d.token = cfg, token
	d.retiring.Go(func() {
		old.retire()
		if err := old.signer.CloseVaults(); err != nil {
			d.log.Error("closing the vaults of the config replaced", "err", err)
		}
	})
	for _, w := range cfg.Warnings {
		d.log.Warn(w)
	}
	d.warnUnlisted(ctx, s)
	d.log.Info("config reloaded", "keys", len(s.Keys()), "vaults", len(vaults), "configured_keys", len(cfg.Policies))
	return nil
}

// unchangeable returns an error naming every setting that differs between a and b and cannot
// change while the daemon runs.
func unchangeable(a, b *config.Config) error {
	var diffs []string
	check := func(name string, x, y any) {
		if !reflect.DeepEqual(x, y) {
			diffs = append(diffs, name)
		}
	}
	check("base_dir", a.BaseDir, b.BaseDir)
	check("watermark", backendText(&a.Watermark), backendText(&b.Watermark))
	check("audit", a.Audit, b.Audit)
	s, t := a.Server, b.Server
	check("server.address", s.Address, t.Address)
	check("server.utility_address", s.UtilityAddress, t.UtilityAddress)
	check("server.socket_address", s.SocketAddress, t.SocketAddress)
	check("server.unix_socket", s.UnixSocket, t.UnixSocket)
	check("server.max_body_bytes", s.MaxBodyBytes, t.MaxBodyBytes)
	check("server.max_generic_in_flight", s.MaxGenericInFlight, t.MaxGenericInFlight)
	check("server.read_timeout", s.ReadTimeout, t.ReadTimeout)
	check("server.write_timeout", s.WriteTimeout, t.WriteTimeout)
	check("server.idle_timeout", s.IdleTimeout, t.IdleTimeout)
	check("server.tls (on or off)", s.TLS != nil && s.TLS.CertFile != "", t.TLS != nil && t.TLS.CertFile != "")
	if len(diffs) > 0 {
		return fmt.Errorf("%s cannot change without a restart", strings.Join(diffs, ", "))
	}
	return nil
}

// backendText is a driver and its config as YAML, to compare two of them.
func backendText(b *config.Backend) string {
	if b.Config.Kind == 0 {
		return b.Driver
	}
	out, err := yaml.Marshal(&b.Config)
	if err != nil {
		return b.Driver + " " + err.Error()
	}
	return b.Driver + "\n" + string(out)
}

// MinReloadToken is the shortest token server.reload_token_file may hold.
const MinReloadToken = 16

// readToken reads the reload token of server.reload_token_file; "" when none is configured.
func readToken(path string) (string, error) {
	if path == "" {
		return "", nil
	}
	fi, err := os.Stat(path)
	if err != nil {
		return "", fmt.Errorf("server.reload_token_file: %w", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return "", fmt.Errorf("server.reload_token_file %s: readable by group or others (mode %o): chmod 600 it", path, fi.Mode().Perm())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("server.reload_token_file: %w", err)
	}
	token := strings.TrimSpace(string(b))
	if len(token) < MinReloadToken || strings.ContainsAny(token, " \t\r\n") {
		return "", fmt.Errorf("server.reload_token_file %s: the token must be one word of at least %d characters", path, MinReloadToken)
	}
	return token, nil
}

// liveOf is what of cfg the server applies while running.
func liveOf(cfg *config.Config, token string) server.Live {
	s := cfg.Server
	l := server.Live{JWT: s.JWTAuth, ReloadToken: token,
		LogPayloads: func(pkh string) bool { p := cfg.Policies[pkh]; return p != nil && p.LogPayloads }}
	if s.TLS != nil {
		l.CertFile, l.KeyFile, l.ClientCAFile = s.TLS.CertFile, s.TLS.KeyFile, s.TLS.ClientCAFile
	}
	if s.AllowListKnownKeys {
		l.KnownKeys = append([]string{}, cfg.KeyOrder...)
	}
	return l
}

// generation is the signer of one config. A reload replaces it; the requests still using it
// are counted, so that its vaults are closed only after the last one.
type generation struct {
	signer  *signer.Signer
	vaults  []vault.Vault
	mu      sync.Mutex
	users   int
	retired bool
	idle    chan struct{} // closed once retired and unused
}

func newGeneration(s *signer.Signer, vaults []vault.Vault) *generation {
	return &generation{signer: s, vaults: vaults, idle: make(chan struct{})}
}

// use counts one more request on g; false when g is retired (the caller takes the new one).
func (g *generation) use() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.retired {
		return false
	}
	g.users++
	return true
}

func (g *generation) release() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.users--; g.users == 0 && g.retired {
		close(g.idle)
	}
}

// retire marks g replaced and waits until no request uses it.
func (g *generation) retire() {
	g.mu.Lock()
	g.retired = true
	if g.users == 0 {
		close(g.idle)
	}
	g.mu.Unlock()
	<-g.idle
}

// liveService is the server's signer: each call goes to the generation in force when it starts.
type liveService struct{ cur atomic.Pointer[generation] }

var _ server.Service = (*liveService)(nil)

func (l *liveService) acquire() *generation {
	for {
		if g := l.cur.Load(); g.use() {
			return g
		}
	}
}

func (l *liveService) PublicKey(ctx context.Context, pkh string) (crypt.PublicKey, error) {
	g := l.acquire()
	defer g.release()
	return g.signer.PublicKey(ctx, pkh)
}

func (l *liveService) Sign(ctx context.Context, r *signer.SignRequest) (*signer.SignResult, error) {
	g := l.acquire()
	defer g.release()
	return g.signer.Sign(ctx, r)
}

func (l *liveService) ProvePossession(ctx context.Context, r *signer.PossessionRequest) (crypt.Signature, error) {
	g := l.acquire()
	defer g.release()
	return g.signer.ProvePossession(ctx, r)
}

func (l *liveService) ShareMarks(ctx context.Context, pkh, chain, nonce string) (*blsthreshold.Marks, error) {
	g := l.acquire()
	defer g.release()
	return g.signer.ShareMarks(ctx, pkh, chain, nonce)
}

func (l *liveService) DeterministicNonce(ctx context.Context, r *signer.NonceRequest) ([32]byte, error) {
	g := l.acquire()
	defer g.release()
	return g.signer.DeterministicNonce(ctx, r)
}

func (l *liveService) SupportsDeterministicNonces(ctx context.Context, pkh string) (bool, error) {
	g := l.acquire()
	defer g.release()
	return g.signer.SupportsDeterministicNonces(ctx, pkh)
}

func (l *liveService) Health(ctx context.Context) map[string]error {
	g := l.acquire()
	defer g.release()
	return g.signer.Health(ctx)
}

// AuthorizedKeyHashes, Known and Priority read the config only: no vault is used.
func (l *liveService) AuthorizedKeyHashes() []string {
	return l.cur.Load().signer.AuthorizedKeyHashes()
}
func (l *liveService) Known(pkh string) bool { return l.cur.Load().signer.Known(pkh) }
func (l *liveService) Priority(pkh string, msg []byte) bool {
	return l.cur.Load().signer.Priority(pkh, msg)
}
