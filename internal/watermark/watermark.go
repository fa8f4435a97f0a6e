// Package watermark keeps the high watermark of every (chain, key, class) so that
// a baker can never sign two different blocks or consensus operations at one level and round.
package watermark

import (
	"context"
	"errors"

	"github.com/signatory-go/signatory/internal/fault"
)

// Class is the watermark class of a request. attestation_with_dal shares Attestation.
type Class string

const (
	Block          Class = "block"
	Preattestation Class = "preattestation"
	Attestation    Class = "attestation"
)

// Key names one watermark: chain id (base58, e.g. "NetXdQprcVkpaWU"), key hash (base58 tz…) and class.
type Key struct {
	Chain string
	PKH   string
	Class Class
}

// Mark is a stored or requested watermark. Digest is blake2b-256 of the whole signed message;
// HasDigest is false for entries stored without a hash (hand-written or migrated).
type Mark struct {
	Level     int32
	Round     int32
	Digest    [32]byte
	HasDigest bool
}

// Entry is one stored watermark, for listing.
type Entry struct {
	Key
	Mark
}

// ErrConflict is returned when a request is at or below the stored watermark with different bytes.
var ErrConflict error = &fault.Error{Kind: fault.Conflict, Msg: "watermark validation failed"}

// Allowed is the one rule: a request is allowed iff there is no stored mark, or its digest equals the
// stored digest (an idempotent re-sign of byte-identical bytes), or (level, round) is strictly higher.
func Allowed(stored Mark, ok bool, req Mark) bool {
	if !ok {
		return true
	}
	if stored.HasDigest && req.HasDigest && stored.Digest == req.Digest {
		return true
	}
	if req.Level != stored.Level {
		return req.Level > stored.Level
	}
	return req.Round > stored.Round
}

// Store records watermarks. Implementations must be safe for concurrent use, must not serialize
// requests of different keys behind one lock for the duration of I/O where avoidable, and must make
// the new mark durable before Advance returns nil.
type Store interface {
	// Advance checks req against the stored mark for k with Allowed and, if allowed, durably stores req.
	// It returns ErrConflict when refused (stored mark unchanged), or another error (an *fault.Error of
	// kind Internal or Unavailable) when the store cannot read or write; then nothing is changed and the
	// caller must not sign.
	Advance(ctx context.Context, k Key, req Mark) error
	// List returns every stored watermark, sorted by chain, pkh and class.
	List(ctx context.Context) ([]Entry, error)
	// Name is the backend's label for metrics and logs ("file", "mem", …).
	Name() string
	// Health returns nil when the store can record watermarks.
	Health(ctx context.Context) error
	// Close releases resources; pending Advance calls finish first.
	Close() error
}

// IsConflict reports whether err is a watermark refusal.
func IsConflict(err error) bool { return errors.Is(err, ErrConflict) }
