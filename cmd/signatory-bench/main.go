// Command signatory-bench measures any octez remote signer (Signatory or another) with the same
// prebuilt requests: generic, consensus or mixed workloads, throughput and latency percentiles.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/signatory-go/signatory/internal/loadtest"
)

func main() {
	var o loadtest.Options
	var keys string
	var jsonOut, selfTest bool
	cmd := &cobra.Command{
		Use:   "signatory-bench",
		Short: "Load-test an octez remote signer",
		Long: `Load-test an octez remote signer over HTTP.

Workloads: generic (one transaction, no watermark), consensus (preattestation then attestation at
rising levels; stream i uses key i mod len(keys); the first len(keys) streams share one chain, extra
streams of a key get their own chain id so they never conflict; chain ids are fresh for every run), mixed (half generic, half consensus).
Requests are built before the clock starts. --self-test runs against a trivial in-process server
to show the tool's own ceiling on this machine.`,
		SilenceUsage: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
			defer stop()
			o.Keys = strings.Split(keys, ",")
			if selfTest {
				url, closeFn, err := loadtest.TrivialServer()
				if err != nil {
					return err
				}
				defer closeFn()
				o.URL = url
			}
			r, err := loadtest.Run(ctx, o)
			if err != nil {
				return err
			}
			if jsonOut {
				enc := json.NewEncoder(os.Stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(r)
			}
			fmt.Print(r.Format())
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.URL, "url", "http://127.0.0.1:6732", "signer root URL")
	f.StringVar(&keys, "keys", "tz1WGcYos3hL7GXYXjKrMnSFdkT7FyXnFBvf", "comma-separated key hashes")
	f.StringVarP(&o.Workload, "workload", "w", loadtest.Generic, "generic, consensus or mixed")
	f.IntVarP(&o.Concurrency, "concurrency", "c", 8, "concurrent streams (connections)")
	f.DurationVarP(&o.Duration, "duration", "d", 10*time.Second, "measured duration")
	f.IntVarP(&o.Requests, "requests", "n", 0, "measured request count (overrides --duration)")
	f.DurationVar(&o.Warmup, "warmup", 2*time.Second, "unmeasured warm-up")
	f.Uint32Var(&o.StartLevel, "start-level", 0, "first consensus level")
	f.Uint32Var(&o.RunID, "run-id", 0, "selects the consensus chain ids (default: random, fresh watermarks each run)")
	f.BoolVar(&jsonOut, "json", false, "print the report as JSON")
	f.BoolVar(&selfTest, "self-test", false, "measure the tool itself against a trivial in-process server")
	if err := cmd.Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "Error:", err)
		os.Exit(1)
	}
}
