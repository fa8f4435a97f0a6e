package cli

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

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
			// SIGHUP, which service managers and log rotators send, would otherwise end the
			// process. This version does not reload its config: it says so and keeps serving.
			hup := make(chan os.Signal, 1)
			signal.Notify(hup, syscall.SIGHUP)
			defer signal.Stop(hup)
			go func() {
				for {
					select {
					case <-hup:
						g.logger().Warn("SIGHUP received: this version does not reload its config; the signer keeps serving the config it started with (restart it to apply a change)")
					case <-ctx.Done():
						return
					}
				}
			}()
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
	d, err := daemon.Open(ctx, cfg, log, metrics.New(Version))
	if err != nil {
		return err
	}
	defer func() {
		if err := d.Close(); err != nil {
			log.Error("closing", "err", err)
		}
	}()
	return d.Serve(ctx, noList)
}
