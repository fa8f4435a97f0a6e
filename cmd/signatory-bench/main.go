// Command signatory-bench measures any octez remote signer (Signatory or another) with the same
// prebuilt requests: generic, consensus or mixed workloads, throughput and latency percentiles.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/signatory-go/signatory/internal/loadtest"
)

func main() {
	var o loadtest.Options
	var keys string
	var jsonOut, selfTest bool
	var pid int
	var metricsURL string
	cmd := &cobra.Command{
		Use:   "signatory-bench",
		Short: "Load-test an octez remote signer",
		Long: `Load-test an octez remote signer over HTTP.

Workloads: generic (one transaction, no watermark), consensus (preattestation then attestation at
rising levels; stream i uses key i mod len(keys); the first len(keys) streams share one chain, extra
streams of a key get their own chain id so they never conflict; chain ids are fresh for every run), mixed (half generic, half consensus),
burst (every key at once, one consensus request each per burst, bursts in turn: the time to the last
signature of a burst is reported; see burst-config).
Requests are built before the clock starts. --self-test runs against a trivial in-process server
to show the tool's own ceiling on this machine.`,
		SilenceUsage: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
			defer stop()
			var err error
			if o.Keys, err = parseKeys(keys); err != nil {
				return err
			}
			if selfTest {
				url, closeFn, err := loadtest.TrivialServer()
				if err != nil {
					return err
				}
				defer closeFn()
				o.URL = url
			}
			switch {
			case pid != 0 && metricsURL != "":
				return fmt.Errorf("give --pid or --metrics-url, not both")
			case pid != 0:
				o.SignerCPU = loadtest.ProcCPU(pid)
			case metricsURL != "":
				o.SignerCPU = loadtest.MetricsCPU(metricsURL)
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
	f.StringVar(&keys, "keys", "tz1WGcYos3hL7GXYXjKrMnSFdkT7FyXnFBvf", "comma-separated key hashes, or @FILE: a file of them (one per line; 10,000 keys do not fit in an argument)")
	f.StringVarP(&o.Workload, "workload", "w", loadtest.Generic, "generic, consensus or mixed")
	f.IntVarP(&o.Concurrency, "concurrency", "c", 8, "concurrent streams (connections)")
	f.DurationVarP(&o.Duration, "duration", "d", 10*time.Second, "measured duration")
	f.IntVarP(&o.Requests, "requests", "n", 0, "measured request count (overrides --duration)")
	f.DurationVar(&o.Warmup, "warmup", 2*time.Second, "unmeasured warm-up")
	f.Uint32Var(&o.StartLevel, "start-level", 0, "first consensus level")
	f.Uint32Var(&o.RunID, "run-id", 0, "selects the consensus chain ids (default: random, fresh watermarks each run)")
	f.BoolVar(&jsonOut, "json", false, "print the report as JSON")
	f.BoolVar(&selfTest, "self-test", false, "measure the tool itself against a trivial in-process server")
	f.IntVar(&pid, "pid", 0, "the signer's process id on this machine: report its CPU per request (from /proc)")
	f.StringVar(&metricsURL, "metrics-url", "", "a Prometheus endpoint of the signer (e.g. http://127.0.0.1:9583/metrics): report its CPU per request from process_cpu_seconds_total")
	cmd.AddCommand(newBurstConfig(), newKMSKeys(), newWaitReady())
	cmd.AddCommand(&cobra.Command{
		Use:   "trivial-server [address]",
		Short: "Serve a constant signature with no work (the HTTP floor), as its own process",
		Long: `Serve POST /keys/<pkh> with a constant signature and no work, on address (default
127.0.0.1:0), printing its URL. Measured with --pid as a separate process, it gives the machine's
HTTP floor: the CPU per request of a Go net/http server that signs nothing.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			addr := "127.0.0.1:0"
			if len(args) == 1 {
				addr = args[0]
			}
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			url, closeFn, err := loadtest.TrivialServerAt(addr)
			if err != nil {
				return err
			}
			defer closeFn()
			fmt.Println(url)
			<-ctx.Done()
			return nil
		},
	})
	if err := cmd.Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "Error:", err)
		os.Exit(1)
	}
}
