package cli

import (
	"context"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/signatory-go/signatory/internal/metrics"
	"github.com/signatory-go/signatory/internal/server"
)

func newServe(g *globals) *cobra.Command {
	var noList bool
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the remote signer (the default command)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			return g.serve(ctx, noList)
		},
	}
	cmd.Flags().BoolVar(&noList, "no-list", false, "do not log the keys at start-up")
	return cmd
}

func (g *globals) serve(ctx context.Context, noList bool) error {
	cfg, log, err := g.load()
	if err != nil {
		return err
	}
	m := metrics.New(Version)
	svc, _, err := g.service(ctx, cfg, log, m)
	if err != nil {
		return err
	}
	defer func() {
		if err := svc.Close(); err != nil {
			log.Error("closing", "err", err)
		}
	}()
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
	if !server.IsLoopback(s.Address) && len(s.AuthorizedKeys) == 0 && s.JWTAuth == nil && (s.TLS == nil || s.TLS.ClientCAFile == "") {
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
