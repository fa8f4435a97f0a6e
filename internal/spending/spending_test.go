package spending

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestApplySpendBounded: a key's list never holds more than MaxSpends entries, whatever the
// requests (zero-amount transfers under max_total alone would otherwise grow it without bound);
// entries leaving the window make room again.
func TestApplySpendBounded(t *testing.T) {
	w := Windows{Amount: 1000e6, AmountPeriod: time.Hour}
	t0 := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	var list []Spend
	for i := range MaxSpends - 1 {
		var d [32]byte
		copy(d[:], fmt.Sprint(i))
		list = append(list, Spend{ID: fmt.Sprint(i), Digest: d, At: t0})
	}
	list, _, err := ApplySpend(list, Spend{ID: "last", Digest: [32]byte{0xfe}, At: t0}, w)
	if err != nil || len(list) != MaxSpends {
		t.Fatalf("entry %d: %v", MaxSpends, err)
	}
	var le *LimitError
	extra := Spend{ID: "x", Digest: [32]byte{0xff}, At: t0.Add(time.Minute)}
	if _, _, err := ApplySpend(list, extra, w); !errors.As(err, &le) || le.Rule != "window_full" || !errors.Is(err, ErrOverLimit) || le.Value != MaxSpends+1 || le.Limit != MaxSpends {
		t.Fatalf("entry %d: %v", MaxSpends+1, err)
	}
	extra.At = t0.Add(3 * time.Hour) // pruneAfter: twice the window and an hour
	if next, _, err := ApplySpend(list, extra, w); err != nil || len(next) != 1 {
		t.Fatalf("three hours later: %v, %d entries", err, len(next))
	}
	// The bytes are bounded too: long ids (identical requests) fill the record before the count.
	var big []Spend
	for i := range 900 {
		var d [32]byte
		copy(d[:], fmt.Sprint(i))
		big = append(big, Spend{ID: fmt.Sprintf("%0200d", i), Digest: d, At: t0})
	}
	extra.At = t0.Add(time.Minute)
	if _, _, err := ApplySpend(big, extra, w); !errors.As(err, &le) || le.Rule != "window_full" || !strings.Contains(err.Error(), "bytes") {
		t.Fatalf("a record over %d bytes: %v", MaxSpendBytes, err)
	}
	// A copy joining an entry is held to the bytes too.
	copyOf := Spend{ID: fmt.Sprintf("%0200d", 1000), Digest: big[0].Digest, At: t0.Add(time.Minute)}
	if _, _, err := ApplySpend(big, copyOf, w); !errors.As(err, &le) || le.Rule != "window_full" || !strings.Contains(err.Error(), "bytes") {
		t.Fatalf("a copy making the record over %d bytes: %v", MaxSpendBytes, err)
	}
}

// TestEncodedLen: encodedLen, which ApplySpend's byte bound uses, is exactly the length of
// Encode, for ids that JSON must escape too (each such character alone, where quotedLen's
// fast path would miss it), including U+2028, U+2029 and invalid UTF-8.
func TestEncodedLen(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 5))
	// Each character encoding/json escapes, alone and among others, and those it does not.
	ids := []string{"", "a1b2", "x\"y", `back\slash`, "<&>", "é", "\x01", "0123456789abcdef0123456789abcdef",
		`"`, `\`, "<", ">", "&", "\u2028", "\u2029", "\xff", "a\xfeb", " ", "\x7f", "\x1f"}
	for n := range 40 {
		var list []Spend
		for i := range n {
			s := Spend{ID: ids[rng.IntN(len(ids))], At: time.Unix(0, rng.Int64N(1<<62)-1<<61), Amount: rng.Int64N(1 << 62)}
			s.Digest[0] = byte(i)
			for range rng.IntN(3) {
				s.Also = append(s.Also, ids[rng.IntN(len(ids))])
			}
			list = append(list, s)
		}
		if got, want := encodedLen(list), len(Encode(list)); got != want {
			t.Fatalf("%d entries: encodedLen %d, Encode %d bytes", n, got, want)
		}
	}
}

// TestIdenticalRequestsEachHeld: identical requests share an entry that counts their amount
// once, but each holds it under its own id: the entry stays until every one of them was refunded,
// however many there are, and its time is the latest of them.
func TestIdenticalRequestsEachHeld(t *testing.T) {
	w := Windows{Amount: 30e6, AmountPeriod: 24 * time.Hour}
	t0 := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	var list []Spend
	var err error
	for i := range 4 {
		s := Spend{ID: fmt.Sprint("copy", i), Digest: [32]byte{1}, At: t0.Add(time.Duration(i) * time.Minute), Amount: 1e6}
		if list, _, err = ApplySpend(list, s, w); err != nil {
			t.Fatal(err)
		}
	}
	if len(list) != 1 || !list[0].At.Equal(t0.Add(3*time.Minute)) {
		t.Fatalf("%+v", list)
	}
	for i := range 3 { // the first three failed; the fourth was signed
		list = refund(list, fmt.Sprint("copy", i))
	}
	if u := UsageAt(list, w, t0.Add(time.Hour)); u.Amount != 1e6 {
		t.Fatalf("the signed copy's amount: %d counted, want 1 tez (%+v)", u.Amount, list)
	}
	// It counts until a day after the last copy, not the first.
	if u := UsageAt(list, w, t0.Add(24*time.Hour+2*time.Minute)); u.Amount != 1e6 {
		t.Fatalf("a day after the first copy: %d counted", u.Amount)
	}
	if list = refund(list, "copy3"); len(list) != 0 {
		t.Fatalf("every copy refunded: %+v", list)
	}
	// A copy of bytes whose entry has left the window is checked as a new request.
	old := []Spend{{ID: "old", Digest: [32]byte{2}, At: t0, Amount: 30e6}, {ID: "now", Digest: [32]byte{3}, At: t0.Add(25 * time.Hour), Amount: 10e6}}
	var le *LimitError
	if _, _, err := ApplySpend(old, Spend{ID: "again", Digest: [32]byte{2}, At: t0.Add(25 * time.Hour), Amount: 30e6}, w); !errors.As(err, &le) || le.Rule != "max_total" {
		t.Fatalf("a copy of bytes out of the window: %v", err)
	}
}

// TestCopiesBounded: one entry holds at most MaxCopies identical requests; the next copy is
// refused (window_full) and changes nothing, other requests still pass; a record filled with
// copies up to its bounds refuses the next request.
func TestCopiesBounded(t *testing.T) {
	w := Windows{Amount: 1000e6, AmountPeriod: time.Hour}
	t0 := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	var list []Spend
	var err error
	for i := range MaxCopies {
		if list, _, err = ApplySpend(list, Spend{ID: fmt.Sprint(i), Digest: [32]byte{1}, At: t0, Amount: 1e6}, w); err != nil {
			t.Fatalf("copy %d: %v", i+1, err)
		}
	}
	var le *LimitError
	next, _, err := ApplySpend(list, Spend{ID: "more", Digest: [32]byte{1}, At: t0, Amount: 1e6}, w)
	if !errors.As(err, &le) || le.Rule != "window_full" || !strings.Contains(err.Error(), "same operation") || len(next[0].Also) != MaxCopies-1 {
		t.Fatalf("copy %d: %v", MaxCopies+1, err)
	}
	if _, _, err := ApplySpend(list, Spend{ID: "other", Digest: [32]byte{2}, At: t0, Amount: 1e6}, w); err != nil {
		t.Fatalf("another request: %v", err)
	}
	// Ids of copies count against MaxSpends like entries.
	var full []Spend
	for i := range MaxSpends / MaxCopies {
		e := Spend{ID: fmt.Sprint("e", i), At: t0}
		e.Digest[0], e.Digest[1] = byte(i), byte(i>>8)
		for c := range MaxCopies - 1 {
			e.Also = append(e.Also, fmt.Sprint("c", i, "-", c))
		}
		full = append(full, e)
	}
	if _, _, err := ApplySpend(full, Spend{ID: "x", Digest: [32]byte{0xff, 0xff}, At: t0}, w); !errors.As(err, &le) || le.Rule != "window_full" {
		t.Fatalf("a record of %d ids: %v", MaxSpends, err)
	}
}

// TestSpendBoundsExact holds the spending rules at their exact bounds: a record of exactly
// MaxSpendBytes is kept and one byte more is refused, for a new entry and for a copy joining one;
// the refusal of a copy past MaxCopies says how many were asked; a window that is not set holds
// nothing, even entries stamped ahead of this signer's clock (by a signer whose clock runs ahead).
func TestSpendBoundsExact(t *testing.T) {
	w := Windows{Amount: 1000e6, AmountPeriod: time.Hour}
	t0 := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	var base []Spend
	for i := range 900 {
		var d [32]byte
		copy(d[:], fmt.Sprint(i))
		base = append(base, Spend{ID: fmt.Sprintf("%0100d", i), Digest: d, At: t0})
	}
	for _, join := range []bool{false, true} {
		s := Spend{Digest: [32]byte{0xfe}, At: t0.Add(time.Minute)}
		if join {
			s.Digest = base[0].Digest
		}
		// The record's length with an empty id, then an id that brings it to exactly the bound.
		probe := append(slices.Clone(base), Spend{Digest: s.Digest, At: s.At})
		if join {
			probe = slices.Clone(base)
			probe[0].Also = []string{""}
			probe[0].At = s.At
		}
		s.ID = strings.Repeat("i", MaxSpendBytes-encodedLen(probe))
		got, _, err := ApplySpend(slices.Clone(base), s, w)
		if err != nil || encodedLen(got) != MaxSpendBytes {
			t.Fatalf("join %t: a record of exactly %d bytes: %v (%d bytes)", join, MaxSpendBytes, err, encodedLen(got))
		}
		s.ID += "i"
		var le *LimitError
		if _, _, err := ApplySpend(slices.Clone(base), s, w); !errors.As(err, &le) || le.Rule != "window_full" || le.Value != MaxSpendBytes+1 {
			t.Fatalf("join %t: a record one byte over: %v", join, err)
		}
	}

	var list []Spend
	for i := range MaxCopies {
		list, _, _ = ApplySpend(list, Spend{ID: fmt.Sprint(i), Digest: [32]byte{1}, At: t0, Amount: 1e6}, w)
	}
	_, _, err := ApplySpend(list, Spend{ID: "more", Digest: [32]byte{1}, At: t0, Amount: 1e6}, w)
	if want := fmt.Sprintf("asked for %d times within its window, more than %d", MaxCopies+1, MaxCopies); err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("copy %d: %v; want %q", MaxCopies+1, err, want)
	}

	ahead := []Spend{{ID: "a", At: t0.Add(time.Minute), Amount: 5e6}}
	for _, c := range []struct {
		w    Windows
		want Usage
	}{
		{Windows{Count: 10, CountPeriod: time.Hour}, Usage{Count: 1}},
		{Windows{Amount: 10e6, AmountPeriod: time.Hour}, Usage{Amount: 5e6}},
		{Windows{}, Usage{}},
	} {
		if got := UsageAt(ahead, c.w, t0); got != c.want {
			t.Errorf("%+v: an entry a minute ahead counts %+v; want %+v", c.w, got, c.want)
		}
	}
}

// TestSpendUsageReported: a request admitted returns what the windows hold with it; a max_total
// refusal reports the total the request would have made, saturated instead of wrapping for
// amounts no chain holds.
func TestSpendUsageReported(t *testing.T) {
	w := Windows{Amount: 30e6, AmountPeriod: time.Hour, Count: 5, CountPeriod: time.Hour}
	t0 := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	list := []Spend{{ID: "a", Digest: [32]byte{1}, At: t0, Amount: 10e6}}
	_, u, err := ApplySpend(list, Spend{ID: "b", Digest: [32]byte{2}, At: t0, Amount: 7e6}, w)
	if err != nil || u != (Usage{Amount: 17e6, Count: 2}) {
		t.Fatalf("usage with the request: %+v, %v; want 17 tez in 2 requests", u, err)
	}
	var le *LimitError
	if _, _, err := ApplySpend(list, Spend{ID: "c", Digest: [32]byte{3}, At: t0, Amount: 25e6}, w); !errors.As(err, &le) || le.Value != 35e6 {
		t.Fatalf("a refusal at 35 tez: %v", err)
	}
	huge := Spend{ID: "d", Digest: [32]byte{4}, At: t0, Amount: math.MaxInt64 - 1}
	if _, _, err := ApplySpend(list, huge, w); !errors.As(err, &le) || le.Value != math.MaxInt64 {
		t.Fatalf("a refusal past int64: %v", err)
	}
	for _, c := range [][3]int64{{1, 2, 3}, {0, math.MaxInt64, math.MaxInt64}, {1, math.MaxInt64, math.MaxInt64}, {math.MaxInt64 - 5, 5, math.MaxInt64}, {math.MaxInt64 - 5, 6, math.MaxInt64}} {
		if got := sat(c[0], c[1]); got != c[2] {
			t.Errorf("sat(%d, %d) = %d; want %d", c[0], c[1], got, c[2])
		}
	}
}

// queuedStore is a Store of one list whose UpdateSpends runs wait before it reads the list: the
// time a request spends queued on the key's list behind others.
type queuedStore struct {
	list []Spend
	wait func()
}

func (q *queuedStore) UpdateSpends(ctx context.Context, pkh string, f func([]Spend) ([]Spend, error)) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	q.wait()
	next, err := f(slices.Clone(q.list))
	if err != nil {
		return err
	}
	q.list = next
	return nil
}

func (q *queuedStore) ListSpends(context.Context) (map[string][]Spend, error) {
	return map[string][]Spend{"k": q.list}, nil
}

// TestRecordAfterHangUp: a client that hangs up while its request is queued on the key's list
// gets its context's error, and nothing is recorded: its request will not be signed, so it must
// not use the window.
func TestRecordAfterHangUp(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(t.Context())
	q := &queuedStore{wait: cancel}
	w := Windows{Amount: 10e6, AmountPeriod: time.Hour}
	if _, err := Record(ctx, q, "k", Spend{ID: "a", Amount: 1e6, At: time.Now()}, w); !errors.Is(err, context.Canceled) {
		t.Fatalf("Record after the client hung up: %v", err)
	}
	if len(q.list) != 0 {
		t.Fatalf("a hung-up request was recorded: %+v", q.list)
	}
	q.wait = func() {}
	if _, err := Record(t.Context(), q, "k", Spend{ID: "b", Amount: 1e6, At: time.Now()}, w); err != nil || len(q.list) != 1 {
		t.Fatalf("Record: %v %+v", err, q.list)
	}
}

// TestDecodeEmpty: an empty stored value (a store's key created without a list yet) is an empty
// list, not a corrupt one; anything else must be a list.
func TestDecodeEmpty(t *testing.T) {
	t.Parallel()
	for _, b := range [][]byte{nil, {}} {
		if list, err := Decode(b); err != nil || len(list) != 0 {
			t.Fatalf("Decode(%q): %v %v", b, list, err)
		}
	}
	for _, b := range []string{" ", "{}", "null x", `[{"digest":"00"}]`, `[{"digest":"` + strings.Repeat("00", 32) + `","amount":-1}]`} {
		if _, err := Decode([]byte(b)); err == nil {
			t.Errorf("Decode(%q) accepted", b)
		}
	}
}
