// Package backend holds what every vault and watermark-store driver shares: the one constructor
// shape and the environment it is given. It is a leaf: drivers import it (and yamlstrict for
// decoding their config section), never the config package.
package backend

import (
	"context"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"
	"gopkg.in/yaml.v3"
)

// Env gives a driver's constructor what it needs beyond its own config section.
type Env struct {
	// BaseDir is the signer's base directory (for relative paths and the file store).
	BaseDir string
	// Create allows a vault to start from an empty store (for generate and import).
	Create bool
	// ReadOnly asks a watermark store for a snapshot it will only read (watermark show): the
	// file store then takes no lock, so it works while a daemon runs.
	ReadOnly bool
	// Logger receives the driver's log lines; nil means slog.Default().
	Logger *slog.Logger
	// Registerer, when set, receives the driver's own Prometheus metrics (served on /metrics).
	Registerer prometheus.Registerer
	// SignWith, when set, signs message with the key of address pkh held by one of the signer's
	// other vaults, past every policy and watermark, and returns the base58 signature: for a
	// vault that authenticates its own requests to another signer (the threshold vault's
	// authentication_key). Message must not be a Tezos operation: SignWith is for
	// authentication bytes (0x04 …), which no baker payload starts with.
	SignWith func(ctx context.Context, pkh string, message []byte) (string, error)
}

// Log returns env's logger, or slog.Default() when none is set.
func (env Env) Log() *slog.Logger {
	if env.Logger == nil {
		return slog.Default()
	}
	return env.Logger
}

// Constructor is the shape of every driver's constructor: the command's context (start-up is
// cancelled with it), the backend's name in the config, its `config:` node (nil when absent) and
// the environment. A mistake in the node is returned as a yamlstrict config error, which stops
// start-up; any other error means the backend could not be reached or opened.
type Constructor[T any] func(ctx context.Context, name string, node *yaml.Node, env Env) (T, error)
