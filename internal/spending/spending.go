package spending

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"time"

	"github.com/signatory-go/signatory/internal/fault"
	"github.com/signatory-go/signatory/internal/tezos"
)

// Spending windows. A key with a spending policy (`limits:` with max_total or max_operations) has,
// in the watermark store next to its marks, the list of its recent signed generic requests: when,
// which bytes, and how many mutez they moved. Before a signature is made the signer asks the store
// to add the request to that list, atomically with the check that the sums over the rolling
// windows stay within the limits; a refusal changes nothing. When signing then fails, the request
// is taken out again (Refund), so a refused or failed request consumes no budget. A signer killed
// between the two keeps the entry: the budget is spent without a signature, never the reverse.
//
// Every admitted request is in the list under its own id until it is refunded; it never leaves
// by another request's refund. Identical requests (the same bytes: one operation, which the chain
// includes at most once) share an entry that counts their amount once: each joins it with its own
// id (Also), the entry's time moves to the latest of them, so that it stays in the windows as long
// as the last one that may have been signed, and it leaves the list only when every id it holds
// was refunded.

// Spend is one signed generic request in a key's spending list.
type Spend struct {
	ID     string    // unique (random) id of this entry, for Refund
	Digest [32]byte  // blake2b-256 of the signed bytes: the same bytes again are not counted twice
	At     time.Time // when it was recorded, by the signer's clock
	Amount int64     // mutez moved (transaction amounts and origination balances), ≥ 0
	// Also are the ids of identical requests (the same bytes) that this entry counts too: the
	// entry stays while any of them may have been signed, and leaves the list only when every
	// one of them was refunded.
	Also []string
}

// MaxCopies is how many identical requests (the same bytes) one entry holds: a client that keeps
// asking for one operation would otherwise fill the key's record with ids (each kept two windows
// and an hour) and have every other request refused. A copy beyond it is refused (rule
// "window_full") until the entry leaves the windows.
const MaxCopies = 16

// Windows are a key's rolling limits. A zero period means no such window.
type Windows struct {
	Amount       int64         // max_total.amount, mutez
	AmountPeriod time.Duration // max_total.period
	Count        int           // max_operations.count
	CountPeriod  time.Duration // max_operations.period
}

// Enabled reports whether any window is set.
func (w Windows) Enabled() bool { return w.AmountPeriod > 0 || w.CountPeriod > 0 }

// longest is the longest period: older entries can be dropped.
func (w Windows) longest() time.Duration { return max(w.AmountPeriod, w.CountPeriod) }

// Usage is what a key's windows hold at an instant: the mutez in the max_total window and the
// number of requests in the max_operations window.
type Usage struct {
	Amount int64
	Count  int
}

// UsageAt sums spends within w's windows ending at now (an entry at exactly now − period has left
// the window).
func UsageAt(spends []Spend, w Windows, now time.Time) Usage {
	var u Usage
	for _, s := range spends {
		if w.AmountPeriod > 0 && s.At.After(now.Add(-w.AmountPeriod)) {
			u.Amount += s.Amount
		}
		if w.CountPeriod > 0 && s.At.After(now.Add(-w.CountPeriod)) {
			u.Count++
		}
	}
	return u
}

// LimitError is a refusal by a spending window: Rule is "max_total", "max_operations" or
// "window_full" (MaxSpends); Limit
// and Value are in mutez (max_total) or requests (max_operations), Value being what the window
// would hold with the request.
type LimitError struct {
	Rule         string
	Limit, Value int64
	Period       time.Duration
	bytes        bool // window_full by MaxSpendBytes: Limit and Value are bytes
	copies       bool // window_full by MaxCopies: Limit and Value are requests of the same bytes
}

func (e *LimitError) Error() string {
	switch e.Rule {
	case "max_total":
		return fmt.Sprintf("spending limit max_total: %s tez in %s would exceed the limit of %s tez", tezos.FormatTez(e.Value), e.Period, tezos.FormatTez(e.Limit))
	case "window_full":
		switch {
		case e.bytes:
			return fmt.Sprintf("spending window full: its record would take %d bytes, more than the %d this signer keeps per key; set max_operations lower or a shorter period", e.Value, e.Limit)
		case e.copies:
			return fmt.Sprintf("spending window full: the same operation asked for %d times within its window, more than %d", e.Value, e.Limit)
		}
		return fmt.Sprintf("spending window full: %d requests kept would exceed the %d this signer keeps per key (a request is kept twice the longest window and an hour); set max_operations lower or a shorter period", e.Value, e.Limit)
	}
	return fmt.Sprintf("spending limit max_operations: %d operations in %s would exceed the limit of %d", e.Value, e.Period, e.Limit)
}

// ErrOverLimit matches every *LimitError under errors.Is.
var ErrOverLimit = errors.New("spending limit")

// Is makes a *LimitError match ErrOverLimit.
func (e *LimitError) Is(target error) bool { return target == ErrOverLimit }

// MaxSpends and MaxSpendBytes bound a key's list: each request rewrites it, so they bound the work
// and the bytes of every signature of the key, and keep the list within what every store holds in
// one value (DynamoDB: 400 KB an item; etcd: 1.5 MiB a request). A request that would pass either
// is refused (rule "window_full") until entries leave the window: 2,000 generic requests per
// window is far more than a payout key signs (a batch of hundreds of transfers is one request).
const (
	MaxSpends     = 2_000
	MaxSpendBytes = 256 << 10
)

// pruneAfter is how long after its window an entry is kept: signers sharing a store may disagree
// on the time, and a signer whose clock runs ahead must not drop entries that the others still
// count (what is kept longer only costs bytes; what counts is decided by UsageAt).
func pruneAfter(w Windows) time.Duration { return 2*w.longest() + time.Hour }

// ApplySpend is the one rule every store applies atomically: entries older than pruneAfter are
// dropped; a request whose bytes an entry counted in every window holds already joins that entry
// under its own id (nothing more is counted; the entry's time moves to s.At); otherwise s is added
// as an entry of its own when both windows stay within their limits, else a *LimitError and the
// list unchanged. Every id, joined or not, counts against MaxSpends, and the record against
// MaxSpendBytes.
func ApplySpend(spends []Spend, s Spend, w Windows) ([]Spend, Usage, error) {
	keep := spends[:0:0]
	ids := 0
	for _, e := range spends {
		if e.At.After(s.At.Add(-pruneAfter(w))) {
			keep = append(keep, e)
			ids += 1 + len(e.Also)
		}
	}
	u := UsageAt(keep, w, s.At)
	if ids >= MaxSpends {
		return spends, u, &LimitError{Rule: "window_full", Limit: MaxSpends, Value: int64(ids + 1), Period: w.longest()}
	}
	for i, e := range keep {
		if e.Digest == s.Digest && counted(e, w, s.At) {
			if n := 1 + len(e.Also); n >= MaxCopies {
				return spends, u, &LimitError{Rule: "window_full", Limit: MaxCopies, Value: int64(n + 1), Period: w.longest(), copies: true}
			}
			keep[i].Also = append(slices.Clone(e.Also), s.ID)
			if s.At.After(e.At) {
				keep[i].At = s.At
			}
			if n := encodedLen(keep); n > MaxSpendBytes {
				return spends, u, &LimitError{Rule: "window_full", Limit: MaxSpendBytes, Value: int64(n), Period: w.longest(), bytes: true}
			}
			return keep, UsageAt(keep, w, s.At), nil
		}
	}
	if w.AmountPeriod > 0 && (s.Amount > w.Amount || u.Amount > w.Amount-s.Amount) {
		return spends, u, &LimitError{Rule: "max_total", Limit: w.Amount, Value: sat(u.Amount, s.Amount), Period: w.AmountPeriod}
	}
	if w.CountPeriod > 0 && u.Count+1 > w.Count {
		return spends, u, &LimitError{Rule: "max_operations", Limit: int64(w.Count), Value: int64(u.Count + 1), Period: w.CountPeriod}
	}
	keep = append(keep, s)
	if n := encodedLen(keep); n > MaxSpendBytes {
		return spends, u, &LimitError{Rule: "window_full", Limit: MaxSpendBytes, Value: int64(n), Period: w.longest(), bytes: true}
	}
	u.Amount += s.Amount
	u.Count++
	return keep, u, nil
}

// counted reports whether e counts in every window of w at now: only then may an identical
// request join it without being checked against the limits.
func counted(e Spend, w Windows, now time.Time) bool {
	return (w.AmountPeriod == 0 || e.At.After(now.Add(-w.AmountPeriod))) &&
		(w.CountPeriod == 0 || e.At.After(now.Add(-w.CountPeriod)))
}

// sat is a + b for amounts (never negative: mutez decoded from naturals), saturated at
// math.MaxInt64 instead of wrapping: the value a max_total refusal reports.
func sat(a, b int64) int64 {
	if a > math.MaxInt64-b {
		return math.MaxInt64
	}
	return a + b
}

// Store is implemented by every watermark store: each key's spending list, updated
// atomically (one writer per key in a process, a compare-and-swap in a shared store) and durably
// (as durable as the store's watermarks) before UpdateSpends returns.
type Store interface {
	// UpdateSpends reads pkh's list, calls f with it and stores f's result; when f returns an
	// error nothing is stored and that error is returned. In a shared store f may be called
	// again after a concurrent change.
	UpdateSpends(ctx context.Context, pkh string, f func([]Spend) ([]Spend, error)) error
	// ListSpends returns every key's list.
	ListSpends(ctx context.Context) (map[string][]Spend, error)
}

// Record adds s to pkh's list in st under w (ApplySpend), and returns the usage of the
// windows after it. A refusal is a *LimitError (fault kind Forbidden when wrapped by the signer).
// When ctx ends before the list is updated (a client that hung up while queued on the key's
// list), nothing is recorded and ctx's error is returned.
func Record(ctx context.Context, st Store, pkh string, s Spend, w Windows) (Usage, error) {
	var u Usage
	err := st.UpdateSpends(ctx, pkh, func(old []Spend) ([]Spend, error) {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		next, usage, err := ApplySpend(old, s, w)
		u = usage
		return next, err
	})
	return u, err
}

// Refund takes request id out of pkh's list (it was not signed): its entry leaves the list unless
// an identical request counted by the same entry (Also) may still have been signed.
func Refund(ctx context.Context, st Store, pkh, id string) error {
	return st.UpdateSpends(ctx, pkh, func(old []Spend) ([]Spend, error) {
		return refund(old, id), nil
	})
}

func refund(list []Spend, id string) []Spend {
	out := make([]Spend, 0, len(list))
	for _, s := range list {
		switch {
		case s.ID == id && len(s.Also) == 0:
			continue
		case s.ID == id:
			s.ID, s.Also = s.Also[0], slices.Clone(s.Also[1:])
		case slices.Contains(s.Also, id):
			s.Also = slices.DeleteFunc(slices.Clone(s.Also), func(a string) bool { return a == id })
		}
		out = append(out, s)
	}
	return out
}

// spendJSON is a Spend as stores keep it.
type spendJSON struct {
	ID     string   `json:"id"`
	Digest string   `json:"digest"`
	At     int64    `json:"at"` // unix nanoseconds
	Amount int64    `json:"amount"`
	Also   []string `json:"also,omitempty"`
}

// encodedLen is len(Encode(spends)), counted without encoding (ApplySpend checks it at
// every request; the stores then encode once). TestEncodedLen holds the two together.
func encodedLen(spends []Spend) int {
	n := 2 // [ ]
	for i, s := range spends {
		if i > 0 {
			n++ // ,
		}
		// {"id":…,"digest":"<64 hex>","at":…,"amount":…} and ,"also":[…] when there are any
		n += len(`{"id":,"digest":"","at":,"amount":}`) + quotedLen(s.ID) + 64 +
			len(strconv.FormatInt(s.At.UnixNano(), 10)) + len(strconv.FormatInt(s.Amount, 10))
		if len(s.Also) > 0 {
			n += len(`,"also":[]`) + len(s.Also) - 1
			for _, a := range s.Also {
				n += quotedLen(a)
			}
		}
	}
	return n
}

// quotedLen is the length of s as a JSON string (encoding/json's escaping).
func quotedLen(s string) int {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			b, _ := json.Marshal(s)
			return len(b)
		}
	}
	return len(s) + 2
}

// Encode is the stored form of a list, for stores that keep it as one value.
func Encode(spends []Spend) []byte {
	out := make([]spendJSON, len(spends))
	for i, s := range spends {
		out[i] = spendJSON{ID: s.ID, Digest: hex.EncodeToString(s.Digest[:]), At: s.At.UnixNano(), Amount: s.Amount, Also: s.Also}
	}
	b, _ := json.Marshal(out)
	return b
}

// Decode reads Encode' form; an empty value is an empty list.
func Decode(b []byte) ([]Spend, error) {
	if len(b) == 0 {
		return nil, nil
	}
	var in []spendJSON
	if err := json.Unmarshal(b, &in); err != nil {
		return nil, fault.Wrap(fault.Internal, fmt.Errorf("stored spending list: %w", err))
	}
	out := make([]Spend, len(in))
	for i, s := range in {
		d, err := hex.DecodeString(s.Digest)
		if err != nil || len(d) != 32 || s.Amount < 0 {
			return nil, fault.New(fault.Internal, "stored spending list: a malformed entry")
		}
		out[i] = Spend{ID: s.ID, Digest: [32]byte(d), At: time.Unix(0, s.At), Amount: s.Amount, Also: s.Also}
	}
	return out, nil
}
