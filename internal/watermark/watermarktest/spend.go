package watermarktest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/signatory-go/signatory/internal/fault"
	"github.com/signatory-go/signatory/internal/spending"
	"github.com/signatory-go/signatory/internal/watermark"
)

// SpendingStore is a watermark store that keeps the spending windows too, as every store here does.
type SpendingStore interface {
	watermark.Store
	spending.Store
}

// Tez is n tez in mutez.
func Tez(n int64) int64 { return n * 1_000_000 }

// SpendAt is a spend of amount mutez at t with a digest made from id.
func SpendAt(id string, t time.Time, amount int64) spending.Spend {
	var d [32]byte
	copy(d[:], id)
	return spending.Spend{ID: id, Digest: d, At: t, Amount: amount}
}

var spendEpoch = time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)

// RunSpends is the conformance suite of a store's spending lists (spending.Store). open
// returns a new store on a fresh backend; share, when not nil, returns another store instance on
// the same backend as s (another signer sharing it), for the concurrency check across instances;
// reopen, when not nil, closes s and opens it again (persistence).
func RunSpends(t *testing.T, open func(t *testing.T) spending.Store,
	share func(t *testing.T, s spending.Store) spending.Store,
	reopen func(t *testing.T, s spending.Store) spending.Store) {
	ctx := context.Background()
	w := spending.Windows{Amount: Tez(1000), AmountPeriod: 24 * time.Hour}

	t.Run("BudgetExactly", func(t *testing.T) {
		s := open(t)
		signed := 0
		for i := range 40 {
			_, err := spending.Record(ctx, s, PKH(1), SpendAt(fmt.Sprint("a", i), spendEpoch.Add(time.Duration(i)*time.Second), Tez(30)), w)
			switch {
			case err == nil:
				signed++
			case errors.Is(err, spending.ErrOverLimit):
			default:
				t.Fatal(err)
			}
		}
		if signed != 33 {
			t.Fatalf("%d spends of 30 tez within 1000 tez, want 33", signed)
		}
		// Another key has its own budget.
		if _, err := spending.Record(ctx, s, PKH(2), SpendAt("b", spendEpoch, Tez(1000)), w); err != nil {
			t.Fatal(err)
		}
		all, err := s.ListSpends(ctx)
		if err != nil || len(all[PKH(1)]) != 33 || len(all[PKH(2)]) != 1 {
			t.Fatalf("listed %d and %d spends (%v)", len(all[PKH(1)]), len(all[PKH(2)]), err)
		}
	})

	t.Run("Concurrent", func(t *testing.T) {
		s := open(t)
		stores := []spending.Store{s}
		if share != nil {
			stores = append(stores, share(t, s), share(t, s))
		}
		var mu sync.Mutex
		signed := 0
		var wg sync.WaitGroup
		for i := range 50 {
			wg.Go(func() {
				st := stores[i%len(stores)]
				_, err := spending.Record(ctx, st, PKH(3), SpendAt(fmt.Sprint("c", i), spendEpoch, Tez(30)), w)
				if err != nil && !errors.Is(err, spending.ErrOverLimit) {
					t.Error(err)
					return
				}
				if err == nil {
					mu.Lock()
					signed++
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		if signed != 33 {
			t.Fatalf("50 concurrent spends of 30 tez over %d store instances within 1000 tez: %d recorded, want 33", len(stores), signed)
		}
	})

	t.Run("RetryAndRefund", func(t *testing.T) {
		s := open(t)
		big := SpendAt("big", spendEpoch, Tez(990))
		if _, err := spending.Record(ctx, s, PKH(4), big, w); err != nil {
			t.Fatal(err)
		}
		// The same bytes again (another id): not counted twice.
		again := big
		again.ID = "big-retry"
		if u, err := spending.Record(ctx, s, PKH(4), again, w); err != nil || u.Amount != Tez(990) {
			t.Fatalf("identical retry: %v %+v", err, u)
		}
		over := SpendAt("over", spendEpoch.Add(time.Second), Tez(11))
		var le *spending.LimitError
		if _, err := spending.Record(ctx, s, PKH(4), over, w); !errors.As(err, &le) || le.Rule != "max_total" || le.Limit != Tez(1000) || le.Value != Tez(1001) {
			t.Fatalf("over the limit: %v", err)
		}
		// A refused request consumed nothing; a refunded one gives its amount back, once every
		// identical request it counted was refunded too (any of them may have been signed).
		if err := spending.Refund(ctx, s, PKH(4), "big"); err != nil {
			t.Fatal(err)
		}
		if _, err := spending.Record(ctx, s, PKH(4), over, w); !errors.As(err, &le) {
			t.Fatalf("the identical retry may have been signed: its amount must still count: %v", err)
		}
		if err := spending.Refund(ctx, s, PKH(4), "big-retry"); err != nil {
			t.Fatal(err)
		}
		if _, err := spending.Record(ctx, s, PKH(4), over, w); err != nil {
			t.Fatalf("after the refund: %v", err)
		}
		all, err := s.ListSpends(ctx)
		if err != nil || len(all[PKH(4)]) != 1 || all[PKH(4)][0].ID != "over" || all[PKH(4)][0].Amount != Tez(11) ||
			!all[PKH(4)][0].At.Equal(over.At) || all[PKH(4)][0].Digest != over.Digest {
			t.Fatalf("%v %+v", err, all[PKH(4)])
		}
	})

	t.Run("WindowRolls", func(t *testing.T) {
		s := open(t)
		w := spending.Windows{Amount: Tez(100), AmountPeriod: time.Hour, Count: 3, CountPeriod: 10 * time.Minute}
		if _, err := spending.Record(ctx, s, PKH(5), SpendAt("r1", spendEpoch, Tez(60)), w); err != nil {
			t.Fatal(err)
		}
		var le *spending.LimitError
		if _, err := spending.Record(ctx, s, PKH(5), SpendAt("r2", spendEpoch.Add(59*time.Minute), Tez(60)), w); !errors.As(err, &le) || le.Rule != "max_total" {
			t.Fatalf("inside the hour: %v", err)
		}
		// An hour later the first spend has left the window.
		if _, err := spending.Record(ctx, s, PKH(5), SpendAt("r2", spendEpoch.Add(time.Hour), Tez(60)), w); err != nil {
			t.Fatalf("once the first left the window: %v", err)
		}
		for i := range 2 {
			if _, err := spending.Record(ctx, s, PKH(5), SpendAt(fmt.Sprint("z", i), spendEpoch.Add(time.Hour+time.Duration(i+1)*time.Second), 0), w); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := spending.Record(ctx, s, PKH(5), SpendAt("z2", spendEpoch.Add(time.Hour+3*time.Second), 0), w); !errors.As(err, &le) || le.Rule != "max_operations" || le.Value != 4 {
			t.Fatalf("a fourth request in ten minutes: %v", err)
		}
		if _, err := spending.Record(ctx, s, PKH(5), SpendAt("z2", spendEpoch.Add(time.Hour+10*time.Minute+time.Second), 0), w); err != nil {
			t.Fatalf("ten minutes later: %v", err)
		}
		// Entries are dropped, not at the end of their window (a signer whose clock is ahead
		// would drop what others still count), but twice the longest window and an hour later.
		all, _ := s.ListSpends(ctx)
		if len(all[PKH(5)]) != 5 {
			t.Fatalf("%d entries kept, want 5", len(all[PKH(5)]))
		}
		if _, err := spending.Record(ctx, s, PKH(5), SpendAt("late", spendEpoch.Add(3*time.Hour+time.Second), 0), w); err != nil {
			t.Fatal(err)
		}
		all, _ = s.ListSpends(ctx)
		if len(all[PKH(5)]) != 5 || all[PKH(5)][0].ID == "r1" {
			t.Fatalf("three hours later: %d entries, want r1 dropped", len(all[PKH(5)]))
		}
	})

	// The model-based run: fixed seeds, so that every run checks the same sequences (a test that
	// passes or fails by the luck of a seed is a flaky test).
	for _, seed := range []uint64{1, 2, 3} {
		t.Run(fmt.Sprint("Model", seed), func(t *testing.T) {
			s := open(t)
			var shared []spending.Store
			if share != nil {
				shared = append(shared, share(t, s), share(t, s))
			}
			SpendModel(t, seed, 200, s, shared, reopen)
		})
	}

	if reopen != nil {
		t.Run("Persistence", func(t *testing.T) {
			s := open(t)
			if _, err := spending.Record(ctx, s, PKH(6), SpendAt("p", spendEpoch, Tez(700)), w); err != nil {
				t.Fatal(err)
			}
			s = reopen(t, s)
			var le *spending.LimitError
			if _, err := spending.Record(ctx, s, PKH(6), SpendAt("q", spendEpoch.Add(time.Minute), Tez(301)), w); !errors.As(err, &le) {
				t.Fatalf("after reopening, 700 + 301 tez: %v", err)
			}
		})
	}
}

// SpendStoreDown: a spend recorded, then the backend stopped (stop): UpdateSpends and ListSpends
// fail with an error of kind (never a spending refusal, f never called); after start, the spend
// recorded before still counts (60 + 41 tez over a 100 tez window is refused, 60 + 40 is not).
func SpendStoreDown(t *testing.T, s SpendingStore, stop, start func(), kind fault.Kind) {
	t.Helper()
	ctx := context.Background()
	pkh := PKH(1)
	w := spending.Windows{Amount: Tez(100), AmountPeriod: time.Hour}
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	if _, err := spending.Record(ctx, s, pkh, SpendAt("a", at, Tez(60)), w); err != nil {
		t.Fatal(err)
	}
	stop()
	called := false
	err := s.UpdateSpends(ctx, pkh, func(l []spending.Spend) ([]spending.Spend, error) { called = true; return l, nil })
	if err == nil || fault.KindOf(err) != kind || errors.Is(err, spending.ErrOverLimit) || called {
		t.Fatalf("UpdateSpends with the backend stopped = %v (f called: %v), want a %v error", err, called, kind)
	}
	t.Logf("store down: %v", err)
	if _, err := s.ListSpends(ctx); err == nil || fault.KindOf(err) != kind {
		t.Fatalf("ListSpends with the backend stopped = %v, want a %v error", err, kind)
	}
	start()
	var le *spending.LimitError
	if _, err := spending.Record(ctx, s, pkh, SpendAt("b", at.Add(time.Minute), Tez(41)), w); !errors.As(err, &le) {
		t.Fatalf("60 + 41 tez after a restart: %v", err)
	}
	if _, err := spending.Record(ctx, s, pkh, SpendAt("c", at.Add(time.Minute), Tez(40)), w); err != nil {
		t.Fatalf("60 + 40 tez after a restart: %v", err)
	}
}

// SpendRecords: f's refusal comes back as it is and writes nothing (stored tells whether the
// backend holds a record for a key); a record that does not decode (corrupt writes one for a key)
// is an Internal error for UpdateSpends, f never being called, and for ListSpends: never read as
// an empty list.
func SpendRecords(t *testing.T, s SpendingStore, stored func(pkh string) bool, corrupt func(pkh string)) {
	t.Helper()
	ctx := context.Background()
	refusal := errors.New("refused")
	if err := s.UpdateSpends(ctx, PKH(2), func([]spending.Spend) ([]spending.Spend, error) { return nil, refusal }); err != refusal {
		t.Fatalf("f's error came back as %v", err)
	}
	if stored(PKH(2)) {
		t.Fatal("a refusal wrote a record")
	}
	corrupt(PKH(3))
	called := false
	err := s.UpdateSpends(ctx, PKH(3), func(l []spending.Spend) ([]spending.Spend, error) { called = true; return l, nil })
	if err == nil || fault.KindOf(err) != fault.Internal || called {
		t.Fatalf("UpdateSpends over a corrupt record = %v (f called: %v), want Internal", err, called)
	}
	if _, err := s.ListSpends(ctx); err == nil || fault.KindOf(err) != fault.Internal {
		t.Fatalf("ListSpends over a corrupt record = %v, want Internal", err)
	}
}
