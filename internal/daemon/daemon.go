// Package daemon assembles the signer process from its config: the driver tables of vaults and
// watermark stores, the signer over them, and the servers. The command line (internal/cli) only
// parses flags, calls Open and Serve, and prints.
package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/ecadlabs/gotez/v2/crypt"

	"github.com/signatory-go/signatory/internal/audit"
	"github.com/signatory-go/signatory/internal/config"
	"github.com/signatory-go/signatory/internal/metrics"
	"github.com/signatory-go/signatory/internal/policyhook"
	"github.com/signatory-go/signatory/internal/server"
	"github.com/signatory-go/signatory/internal/signer"
	"github.com/signatory-go/signatory/internal/tezos"
	"github.com/signatory-go/signatory/internal/vault"
	"github.com/signatory-go/signatory/internal/watermark"
)

// Daemon is an assembled signer: its vaults, store, journal and hook, opened from a config, and
// replaced whole, the store and journal excepted, by Reload.
type Daemon struct {
	Metrics *metrics.Metrics
	// Load reads the config again, for Reload (the command line sets it: the -c file).
	Load func() (*config.Config, error)

	log      *slog.Logger
	store    watermark.Store
	journal  *audit.Journal
	keys     *vaultKeys
	svc      liveService
	retiring sync.WaitGroup // generations replaced, until their vaults are closed

	reloadMu sync.Mutex // held by Reload; guards cfg, token, srv and closed
	cfg      *config.Config
	token    string // the reload token of cfg's server.reload_token_file
	srv      *server.Server
	closed   bool // by Close: no reload after it
}

// Signer returns the signer of the config in force.
func (d *Daemon) Signer() *signer.Signer { return d.svc.cur.Load().signer }

// Vaults returns the vaults of the config in force.
func (d *Daemon) Vaults() []vault.Vault { return d.svc.cur.Load().vaults }

// retireGrace bounds how long Close waits for the requests of replaced configs (a vault that
// never answers must not hold the process): the servers' own shutdown grace.
const retireGrace = 10 * time.Second

// Close stops reloads, waits (up to retireGrace) for the vaults of replaced configs to close, then
// closes the signer and everything it holds (vaults, store, journal).
func (d *Daemon) Close() error {
	d.reloadMu.Lock()
	d.closed = true
	d.reloadMu.Unlock()
	retired := make(chan struct{})
	go func() { d.retiring.Wait(); close(retired) }()
	select {
	case <-retired:
	case <-time.After(retireGrace):
		d.log.Warn("closing while a request of a replaced config is still in a vault")
	}
	return d.Signer().Close()
}

func (d *Daemon) env(cfg *config.Config) vault.Env {
	return vault.Env{BaseDir: cfg.BaseDir, Logger: d.log, Registerer: d.Metrics.Registry}
}

// clientKeys parses the keys clients authenticate with, and the policy hook's.
func clientKeys(cfg *config.Config) ([]crypt.PublicKey, *policyhook.Hook, error) {
	var auth []crypt.PublicKey
	for _, s := range cfg.Server.AuthorizedKeys {
		pub, err := tezos.ParsePublicKey(s)
		if err != nil {
			return nil, nil, err
		}
		auth = append(auth, pub)
	}
	var hook *policyhook.Hook
	if h := cfg.PolicyHook; h != nil {
		hook = &policyhook.Hook{Address: h.Address, Timeout: time.Duration(h.Timeout)}
		for _, k := range h.AuthorizedKeys {
			pub, err := tezos.ParsePublicKey(k)
			if err != nil {
				return nil, nil, err
			}
			hook.Keys = append(hook.Keys, pub)
		}
	}
	return auth, hook, nil
}

// Open builds the daemon's signer over every configured vault, the configured watermark store,
// the audit journal and the policy hook. When a step fails, what the earlier steps opened is
// closed before the error is returned.
func Open(ctx context.Context, cfg *config.Config, log *slog.Logger, m *metrics.Metrics) (_ *Daemon, err error) {
	if err := os.MkdirAll(cfg.BaseDir, 0o700); err != nil {
		return nil, fmt.Errorf("base directory: %w", err)
	}
	auth, hook, err := clientKeys(cfg)
	if err != nil {
		return nil, err
	}
	token, err := readToken(cfg.Server.ReloadTokenFile)
	if err != nil {
		return nil, err
	}
	d := &Daemon{Metrics: m, log: log, keys: &vaultKeys{}, cfg: cfg, token: token}
	vaults, err := openVaults(ctx, cfg, d.env(cfg), d.keys, skipVault(log, nil))
	if err != nil {
		return nil, err
	}
	d.keys.set(vaults)
	defer func() {
		if err == nil {
			return
		}
		CloseVaults(vaults, log)
		if d.store != nil {
			if cerr := d.store.Close(); cerr != nil {
				log.Error("closing watermark store", "err", cerr)
			}
		}
		if d.journal != nil {
			if cerr := d.journal.Close(); cerr != nil {
				log.Error("closing audit journal", "err", cerr)
			}
		}
	}()
	st, err := OpenWatermark(ctx, cfg, log, false)
	if err != nil {
		return nil, err // st may be a nil pointer in a non-nil interface: never closed
	}
	d.store = st
	if cfg.Audit != nil {
		if d.journal, err = audit.Open(cfg.Audit.File, cfg.Audit.MaxSizeMB<<20); err != nil {
			return nil, err
		}
	}
	s, err := signer.New(ctx, signer.Config{Vaults: vaults, Policies: cfg.Policies, Store: d.store,
		AuthorizedKeys: auth, Audit: d.journal, Hook: hook, Observer: m, Logger: log})
	if err != nil {
		return nil, err
	}
	d.svc.cur.Store(newGeneration(s, vaults))
	return d, nil
}

// warnUnlisted logs each key listed in the config that no vault holds.
func (d *Daemon) warnUnlisted(ctx context.Context, s *signer.Signer) {
	for _, pkh := range d.cfg.KeyOrder {
		if _, err := s.PublicKey(ctx, pkh); err != nil {
			d.log.Warn("key listed in config is not in any vault", "pkh", pkh)
		}
	}
}

// Serve logs the keys (unless noList) and the configuration's warnings, and serves the signing
// and utility ports (and the socket transports) until ctx ends.
func (d *Daemon) Serve(ctx context.Context, noList bool) error {
	srv, ls, err := d.listen(ctx, noList)
	if err != nil {
		return err
	}
	return srv.Serve(ctx, ls)
}

// listen builds the server of the config in force and binds its ports; from then on Reload
// reconfigures it.
func (d *Daemon) listen(ctx context.Context, noList bool) (*server.Server, *server.Listeners, error) {
	d.reloadMu.Lock()
	defer d.reloadMu.Unlock()
	cfg, log := d.cfg, d.log
	if !noList {
		for _, k := range d.Signer().Keys() {
			log.Info("key", "pkh", k.PKH, "curve", k.Curve, "vault", k.Vault, "active", k.Policy != nil)
		}
	}
	d.warnUnlisted(ctx, d.Signer())
	s := cfg.Server
	if SigningPortOpen(s) {
		log.Warn("SECURITY WARNING: the signing port listens beyond loopback and no client authentication is configured; anyone who can reach " +
			s.Address + " can ask for signatures. Bind to 127.0.0.1, or set server.authorized_keys or server.tls.client_ca_file.")
	}
	if s.SocketAddress != "" && !server.IsLoopback(s.SocketAddress) && len(s.AuthorizedKeys) == 0 {
		log.Warn("SECURITY WARNING: the socket port listens beyond loopback and no client authentication is configured; anyone who can reach " +
			s.SocketAddress + " can ask for signatures. Bind to 127.0.0.1, or set server.authorized_keys.")
	}
	srv := server.New(server.Config{
		Live:    liveOf(cfg, d.token),
		Reload:  d.Reload,
		Address: s.Address, UtilityAddress: s.UtilityAddress, MaxBodyBytes: s.MaxBodyBytes, MaxGenericInFlight: s.MaxGenericInFlight, SpareProc: true,
		ReadTimeout: time.Duration(s.ReadTimeout), WriteTimeout: time.Duration(s.WriteTimeout), IdleTimeout: time.Duration(s.IdleTimeout),
		SocketAddress: s.SocketAddress, UnixSocket: s.UnixSocket,
	}, &d.svc, d.Metrics, log)
	ls, err := srv.Listen()
	if err != nil {
		return nil, nil, err
	}
	d.srv = srv
	return srv, ls, nil
}

// SigningPortOpen reports whether the signing port listens beyond loopback and asks no client to
// authenticate (no authorized_keys, JWT or client certificates): anyone who reaches it can ask for
// signatures. The daemon warns of it at start; signatory doctor calls it an error.
func SigningPortOpen(s config.Server) bool {
	return !server.IsLoopback(s.Address) && len(s.AuthorizedKeys) == 0 && s.JWTAuth == nil && (s.TLS == nil || s.TLS.ClientCAFile == "")
}
