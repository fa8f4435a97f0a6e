// Package cli is the signatory command line: serve, list, decode, generate, import, watermark
// and version. cmd/signatory only calls Execute.
package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/signatory-go/signatory/internal/config"
	"github.com/signatory-go/signatory/internal/daemon"
	"github.com/signatory-go/signatory/internal/watermark"
)

// Version is set at build time with -ldflags "-X github.com/signatory-go/signatory/internal/cli.Version=…".
var Version = "dev"

type globals struct {
	configPath string
	baseDir    string
	logLevel   string
	jsonLog    bool
	jsonOut    bool
	stdout     io.Writer
	stderr     io.Writer
}

func (g *globals) logger() *slog.Logger {
	var level slog.Level
	switch strings.ToLower(g.logLevel) {
	case "debug", "trace":
		level = slog.LevelDebug
	case "warn", "warning":
		level = slog.LevelWarn
	case "error", "fatal", "panic":
		level = slog.LevelError
	default:
		level = slog.LevelInfo
	}
	opts := &slog.HandlerOptions{Level: level}
	if g.jsonLog {
		return slog.New(slog.NewJSONHandler(g.stderr, opts))
	}
	return slog.New(slog.NewTextHandler(g.stderr, opts))
}

func (g *globals) load() (*config.Config, *slog.Logger, error) {
	log := g.logger()
	cfg, err := config.Load(g.configPath, g.baseDir)
	if err != nil {
		return nil, log, err
	}
	for _, w := range cfg.Warnings {
		log.Warn(w)
	}
	return cfg, log, nil
}

func (g *globals) printJSON(v any) error {
	enc := json.NewEncoder(g.stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// NewRoot returns the root command.
func NewRoot(stdout, stderr io.Writer) *cobra.Command {
	g := &globals{stdout: stdout, stderr: stderr}
	root := &cobra.Command{
		Use:           "signatory",
		Short:         "A Tezos remote signer",
		Long:          "Signatory signs blocks, consensus operations and transactions for Tezos bakers over the octez remote-signer protocol,\nrefusing anything its policy does not allow and anything at or below a key's high watermark.",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	pf := root.PersistentFlags()
	pf.StringVarP(&g.configPath, "config", "c", "/etc/signatory.yaml", "config file")
	pf.StringVar(&g.baseDir, "base-dir", "", "base directory for watermarks and state (overrides base_dir)")
	pf.StringVar(&g.logLevel, "log", "info", "log level: error, warn, info, debug")
	pf.BoolVar(&g.jsonLog, "json-log", false, "log as JSON lines")
	serve := newServe(g)
	root.RunE = serve.RunE
	root.Flags().AddFlagSet(serve.Flags())
	root.AddCommand(serve, newList(g), newDecode(g), newLimits(g), newGenerate(g), newImport(g), newWatermark(g), newVersion(g),
		newListRequests(g), newListOps(g), newAudit(g), newThreshold(g), newCreate(g), newDoctor(g))
	return root
}

// Execute runs the command line and returns the process exit code.
func Execute() int {
	root := NewRoot(os.Stdout, os.Stderr)
	if err := root.Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "Error:", err)
		return 1
	}
	return 0
}

// loadStore loads the config and opens its watermark store, for the watermark commands. The
// file store is then locked: import and export refuse while a daemon holds the directory. With
// readOnly (watermark show) the store is a snapshot that works while a daemon runs.
func (g *globals) loadStore(ctx context.Context, readOnly bool) (watermark.Store, *config.Config, *slog.Logger, error) {
	cfg, log, err := g.load()
	if err != nil {
		return nil, nil, log, err
	}
	store, err := daemon.OpenWatermark(ctx, cfg, log, readOnly)
	return store, cfg, log, err
}
