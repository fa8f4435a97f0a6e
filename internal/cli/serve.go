package cli

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/signatory-go/signatory/internal/config"
	"github.com/signatory-go/signatory/internal/daemon"
	"github.com/signatory-go/signatory/internal/metrics"
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
	// SIGHUP, which service managers send to reload (and which would otherwise end the
	// process), reloads the config file. Caught from the start: one sent while the signer
	// opens is applied once it serves.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	cfg, log, err := g.load()
	if err != nil {
		return err
	}
	d, err := daemon.Open(ctx, cfg, log, metrics.New(Version))
	if err != nil {
		return err
	}
	d.Load = func() (*config.Config, error) { return config.Load(g.configPath, g.baseDir) }
	defer func() {
		if err := d.Close(); err != nil {
			log.Error("closing", "err", err)
		}
	}()
	hctx, stopReloads := context.WithCancel(ctx)
	reloads := make(chan struct{})
	go func() {
		defer close(reloads)
		for {
			select {
			case <-hup:
				log.Info("SIGHUP received: reloading the config", "file", g.configPath)
				_ = d.Reload(hctx) // logged and counted by Reload
			case <-hctx.Done():
				return
			}
		}
	}()
	err = d.Serve(ctx, noList)
	stopReloads()
	<-reloads // no reload runs while the daemon closes
	return err
}
