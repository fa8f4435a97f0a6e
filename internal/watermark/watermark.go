// Package watermark keeps the high watermark of every (chain, key, class) so that
// a baker can never sign two different blocks or consensus operations at one level and round.
package watermark

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/signatory-go/signatory/internal/backend"
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
// HasDigest is false for entries stored without a hash (hand-written or migrated). Signature is the
// base58 signature released for the mark ("" when none is stored: imported from the reference or
// octez-signer, or written by a version that did not keep signatures).
type Mark struct {
	Level     int32
	Round     int32
	Digest    [32]byte
	HasDigest bool
	Signature string
}

// Entry is one stored watermark, for listing.
type Entry struct {
	Key
	Mark
}

// ErrConflict is the refusal of a request at or below the stored watermark. Stores that know the
// stored mark return a *Conflict, which matches ErrConflict under errors.Is.
var ErrConflict error = &fault.Error{Kind: fault.Conflict, Msg: "watermark validation failed"}

// Conflict explains a refusal for the log; the client sees only ErrConflict's message.
type Conflict struct {
	Stored Mark   // the mark that blocked the request
	Reason string // "the bytes differ", "lower level", …
}

func (c *Conflict) Error() string {
	return fmt.Sprintf("watermark validation failed: stored level %d round %d, %s", c.Stored.Level, c.Stored.Round, c.Reason)
}

// Is makes a *Conflict match ErrConflict.
func (c *Conflict) Is(target error) bool { return target == ErrConflict }

// Refused returns the refusal of a request blocked by stored, as an error of kind Conflict whose
// client message is ErrConflict's.
func Refused(stored Mark, reason string) error {
	return &fault.Error{Kind: fault.Conflict, Msg: "watermark validation failed", Err: &Conflict{Stored: stored, Reason: reason}}
}

// Outcome is what a store does with a request.
type Outcome int

const (
	// Refuse: the request is at or below the stored mark with other bytes; nothing changes.
	Refuse Outcome = iota
	// Write: the request is stored (mark and signature) and its own signature is released.
	Write
	// Identical: the stored record is for the same bytes; it is kept, and its signature is the
	// one released (the request's own signature, if any, is discarded).
	Identical
)

// Deterministic reports whether the scheme of pkh always gives the same signature for the same
// bytes, whatever the request: Ed25519 (tz1). ECDSA (tz2, tz3) signatures are randomized, so a
// second signature over the same block header is a second block hash at one level and round;
// BLS (tz4) signatures depend on the signing version (two ciphersuites), which an imported mark
// does not record, so tz4 is treated as ECDSA here.
func Deterministic(pkh string) bool {
	return strings.HasPrefix(pkh, "tz1")
}

// Decide is the one rule, applied atomically by every store when it commits req:
//   - no stored mark: Write;
//   - the same digest (and level and round) as the stored mark: Identical when a signature is stored (it is returned
//     again, never a second one) or when req carries none (an import: nothing to add); else,
//     for a deterministic scheme (tz1), Write (the signature is recorded); otherwise Refuse,
//     since the signature released for that mark is unknown and a new one could differ;
//   - a strictly higher (level, round): Write;
//   - anything else: Refuse.
func Decide(k Key, stored Mark, ok bool, req Mark) (Outcome, error) {
	if !ok {
		return Write, nil
	}
	if stored.HasDigest && req.HasDigest && stored.Digest == req.Digest && stored.Level == req.Level && stored.Round == req.Round {
		switch {
		case stored.Signature != "" || req.Signature == "":
			return Identical, nil
		case Deterministic(k.PKH):
			return Write, nil
		default:
			return Refuse, Refused(stored, "the same bytes were signed before this signer kept signatures (imported mark): "+
				"an ECDSA key cannot sign them again with the same signature")
		}
	}
	switch {
	case req.Level > stored.Level:
		return Write, nil
	case req.Level < stored.Level:
		return Refuse, Refused(stored, "the request's level is lower")
	case req.Round > stored.Round:
		return Write, nil
	case req.Round < stored.Round:
		return Refuse, Refused(stored, "the request's round is lower")
	}
	return Refuse, Refused(stored, "the bytes differ (a second signature at one level and round would be a double sign)")
}

// Check is Decide for a request about to be signed (its signature not yet known): it tells the
// signer whether to return the stored signature, refuse, or ask the vault.
func Check(k Key, stored Mark, ok bool, req Mark) (Outcome, error) {
	req.Signature = "pending"
	return Decide(k, stored, ok, req)
}

// Allowed reports whether a store would accept req over stored (Write or Identical) when req
// carries a signature.
func Allowed(stored Mark, ok bool, req Mark) bool {
	o, _ := Decide(Key{PKH: "tz1"}, stored, ok, req)
	return o != Refuse
}

// Constructor is the shape of every store driver's New.
type Constructor = backend.Constructor[Store]

// Store records watermarks and the signatures released for them. Implementations must be safe
// for concurrent use, must not serialize requests of different keys behind one lock for the
// duration of I/O where avoidable, and must make a record durable before Advance returns it.
type Store interface {
	// Advance applies Decide to req against the stored record for k, atomically (one writer per
	// record, or a compare-and-swap in a shared store), and returns the record whose Signature
	// the caller releases: req itself after a Write, the stored record when Identical. It returns
	// an error matching ErrConflict when refused (nothing changed), or another error (an
	// *fault.Error of kind Internal or Unavailable) when the store cannot read or write; then
	// nothing is changed, and the caller must not release any signature.
	Advance(ctx context.Context, k Key, req Mark) (Mark, error)
	// Load returns the stored record for k, if any. In a shared store it may be older than the
	// newest one (marks only rise, so a refusal it implies stands); callers use it to answer
	// identical requests and obvious conflicts without asking the vault.
	Load(ctx context.Context, k Key) (Mark, bool, error)
	// List returns every stored watermark, sorted by chain, pkh and class.
	List(ctx context.Context) ([]Entry, error)
	// Name is the backend's label for metrics and logs ("file", "mem", …).
	Name() string
	// Health returns nil when the store can record watermarks.
	Health(ctx context.Context) error
	// Close releases resources; pending Advance calls finish first.
	Close() error
}

// ErrClosed is every store's answer after Close: Unavailable, with /healthz's reason "closed".
var ErrClosed = fault.WithReason(fault.ReasonClosed, fault.New(fault.Unavailable, "watermark store is closed"))

// IsConflict reports whether err is a watermark refusal.
func IsConflict(err error) bool { return errors.Is(err, ErrConflict) }
