// Package daemon assembles the signer process from its config: the driver tables of vaults and
// watermark stores, the signer over them, and the servers. The command line (internal/cli) only
// parses flags, calls Open and Serve, and prints.
package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"os"
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

// Daemon is an assembled signer: its vaults, store, journal and hook, opened from Config.
type Daemon struct {
	Signer  *signer.Signer
	Vaults  []vault.Vault
	Config  *config.Config
	Metrics *metrics.Metrics
	log     *slog.Logger
}

// Close closes the signer and everything it holds (vaults, store, journal).
func (d *Daemon) Close() error { return d.Signer.Close() }

// Open builds the daemon's signer over every configured vault, the configured watermark store,
// the audit journal and the policy hook. When a step fails, what the earlier steps opened is
// closed before the error is returned.
func Open(ctx context.Context, cfg *config.Config, log *slog.Logger, m *metrics.Metrics) (_ *Daemon, err error) {
	if err := os.MkdirAll(cfg.BaseDir, 0o700); err != nil {
		return nil, fmt.Errorf("base directory: %w", err)
	}
	var auth []crypt.PublicKey
	for _, s := range cfg.Server.AuthorizedKeys {
		pub, err := tezos.ParsePublicKey(s)
		if err != nil {
			return nil, err
		}
		auth = append(auth, pub)
	}
	var hook *policyhook.Hook
	if h := cfg.PolicyHook; h != nil {
		hook = &policyhook.Hook{Address: h.Address, Timeout: time.Duration(h.Timeout)}
		for _, k := range h.AuthorizedKeys {
			pub, err := tezos.ParsePublicKey(k)
			if err != nil {
				return nil, err
			}
			hook.Keys = append(hook.Keys, pub)
		}
	}
	vaults, err := OpenVaults(ctx, cfg, vault.Env{BaseDir: cfg.BaseDir, Logger: log, Registerer: m.Registry}, log)
	if err != nil {
		return nil, err
	}
	var (
		store   watermark.Store
		journal *audit.Journal
	)
	defer func() {
		if err == nil {
			return
		}
		CloseVaults(vaults, log)
		if store != nil {
			if cerr := store.Close(); cerr != nil {
				log.Error("closing watermark store", "err", cerr)
			}
		}
		if journal != nil {
			if cerr := journal.Close(); cerr != nil {
				log.Error("closing audit journal", "err", cerr)
			}
		}
	}()
	st, err := OpenWatermark(ctx, cfg, log, false)
	if err != nil {
		return nil, err // st may be a nil pointer in a non-nil interface: never closed
	}
	store = st
	if cfg.Audit != nil {
		if journal, err = audit.Open(cfg.Audit.File, cfg.Audit.MaxSizeMB<<20); err != nil {
			return nil, err
		}
	}
	s, err := signer.New(ctx, signer.Config{Vaults: vaults, Policies: cfg.Policies, Store: store,
		AuthorizedKeys: auth, Audit: journal, Hook: hook, Observer: m, Logger: log})
	if err != nil {
		return nil, err
	}
	return &Daemon{Signer: s, Vaults: vaults, Config: cfg, Metrics: m, log: log}, nil
}

// Serve logs the keys (unless noList) and the configuration's warnings, and serves the signing
// and utility ports (and the socket transports) until ctx ends.
func (d *Daemon) Serve(ctx context.Context, noList bool) error {
	cfg, log, svc, m := d.Config, d.log, d.Signer, d.Metrics
	if !noList {
		for _, k := range svc.Keys() {
			log.Info("key", "pkh", k.PKH, "curve", k.Curve, "vault", k.Vault, "active", k.Policy != nil)
		}
	}
	for pkh := range cfg.Policies {
		if _, err := svc.PublicKey(ctx, pkh); err != nil {
			log.Warn("key listed in config is not in any vault", "pkh", pkh)
		}
	}
	s := cfg.Server
	if SigningPortOpen(s) {
		log.Warn("SECURITY WARNING: the signing port listens beyond loopback and no client authentication is configured; anyone who can reach " +
			s.Address + " can ask for signatures. Bind to 127.0.0.1, or set server.authorized_keys or server.tls.client_ca_file.")
	}
	if s.SocketAddress != "" && !server.IsLoopback(s.SocketAddress) && len(s.AuthorizedKeys) == 0 {
		log.Warn("SECURITY WARNING: the socket port listens beyond loopback and no client authentication is configured; anyone who can reach " +
			s.SocketAddress + " can ask for signatures. Bind to 127.0.0.1, or set server.authorized_keys.")
	}
	tlsCert, tlsKey, tlsCA := "", "", ""
	if s.TLS != nil {
		tlsCert, tlsKey, tlsCA = s.TLS.CertFile, s.TLS.KeyFile, s.TLS.ClientCAFile
	}
	var known []string
	if s.AllowListKnownKeys {
		known = append([]string{}, cfg.KeyOrder...)
	}
	srv := server.New(server.Config{
		KnownKeys: known,
		CertFile:  tlsCert, KeyFile: tlsKey, ClientCAFile: tlsCA,
		Address: s.Address, UtilityAddress: s.UtilityAddress, MaxBodyBytes: s.MaxBodyBytes, MaxGenericInFlight: s.MaxGenericInFlight, SpareProc: true,
		ReadTimeout: time.Duration(s.ReadTimeout), WriteTimeout: time.Duration(s.WriteTimeout), IdleTimeout: time.Duration(s.IdleTimeout),
		JWT:           s.JWTAuth,
		SocketAddress: s.SocketAddress, UnixSocket: s.UnixSocket,
		LogPayloads: func(pkh string) bool { p := cfg.Policies[pkh]; return p != nil && p.LogPayloads },
	}, svc, m, log)
	ls, err := srv.Listen()
	if err != nil {
		return err
	}
	return srv.Serve(ctx, ls)
}

// SigningPortOpen reports whether the signing port listens beyond loopback and asks no client to
// authenticate (no authorized_keys, JWT or client certificates): anyone who reaches it can ask for
// signatures. The daemon warns of it at start; signatory doctor calls it an error.
func SigningPortOpen(s config.Server) bool {
	return !server.IsLoopback(s.Address) && len(s.AuthorizedKeys) == 0 && s.JWTAuth == nil && (s.TLS == nil || s.TLS.ClientCAFile == "")
}
