package signer

import (
	"encoding/hex"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"gopkg.in/yaml.v3"

	"github.com/signatory-go/signatory/internal/fault"
	"github.com/signatory-go/signatory/internal/metrics"
	"github.com/signatory-go/signatory/internal/policy"
	"github.com/signatory-go/signatory/internal/request/requesttest"
	"github.com/signatory-go/signatory/internal/testdaemon"
	"github.com/signatory-go/signatory/internal/tezos"
)

func batch(t *testing.T, cs ...requesttest.Op) []byte {
	t.Helper()
	b, err := hex.DecodeString(requesttest.Operation(cs...))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func tx(counter uint64, tez float64, dest string) requesttest.Op {
	return requesttest.Op{Kind: "transaction", Counter: counter, Amount: uint64(tez * 1e6), Dest: dest} // no fee: amounts are exact
}

const (
	payee   = "tz1WGcYos3hL7GXYXjKrMnSFdkT7FyXnFBvf"
	other   = "tz1gjaF81ZRRvdzjobyfVNsAeSC6PScjfQwN"
	token   = "KT1BEqzn5Wx8uJrZNvuS9DVHmLvG9td3fDLi"
	baker   = "tz3ZbCsUveF3Q6WUNkThT1wyJyhPunanaAXK"
	limitsY = `allow:
  generic: [transaction, delegation]
limits:
  max_amount: 100
  max_fee: 0.5
  max_total: { amount: 1000, period: 24h }
  max_operations: { count: 40, period: 1h }
  destinations: [` + payee + `, ` + token + `]
  delegates: [` + baker + `]
  entrypoints: { ` + token + `: [transfer] }
`
)

// limitsFixture is a signer over one key with limitsY, a mem store and a clock the test moves.
type limitsFixture struct {
	*fixture
	mu  sync.Mutex
	now time.Time
}

// parsePolicy is the policy of pkh written in src (one key's YAML mapping).
func parsePolicy(t *testing.T, pkh, src string) *policy.Policy {
	t.Helper()
	var node yaml.Node
	if err := yaml.Unmarshal([]byte(src), &node); err != nil {
		t.Fatal(err)
	}
	p, _, err := policy.Parse(pkh, node.Content[0])
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func newLimitsFixture(t *testing.T, src string, mode string) *limitsFixture {
	t.Helper()
	lf := &limitsFixture{now: time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)}
	lf.fixture = newFixture(t, tezos.Ed25519, mode, func(c *Config) {
		var pkh string
		for k := range c.Policies {
			pkh = k
		}
		c.Policies[pkh] = parsePolicy(t, pkh, src)
		c.Now = func() time.Time { lf.mu.Lock(); defer lf.mu.Unlock(); return lf.now }
	})
	return lf
}

func (lf *limitsFixture) advance(d time.Duration) {
	lf.mu.Lock()
	lf.now = lf.now.Add(d)
	lf.mu.Unlock()
}

// TestLimitsPerContent: each per-content rule at, just below and just above its value; a batch is
// judged as a whole; refusals are 403 naming the rule, the limit and the value, and counted under
// the rule.
func TestLimitsPerContent(t *testing.T) {
	t.Parallel()
	f := newLimitsFixture(t, limitsY, "")
	counter := uint64(0)
	next := func() uint64 { counter++; return counter }
	for _, c := range []struct {
		name string
		cs   []requesttest.Op
		want string // "" signed, else in the 403 message
	}{
		{"amount below", []requesttest.Op{tx(next(), 99.999999, payee)}, ""},
		{"amount at", []requesttest.Op{tx(next(), 100, payee)}, ""},
		{"amount above", []requesttest.Op{tx(next(), 100.000001, payee)}, "max_amount: transaction of 100.000001 tez exceeds the limit of 100 tez"},
		{"fee at", []requesttest.Op{{Kind: "transaction", Counter: next(), Fee: 500000, Amount: 1, Dest: payee}}, ""},
		{"fee above", []requesttest.Op{{Kind: "transaction", Counter: next(), Fee: 500001, Amount: 1, Dest: payee}}, "max_fee: a fee of 0.500001 tez exceeds the limit of 0.5 tez"},
		{"delegation fee above", []requesttest.Op{{Kind: "delegation", Counter: next(), Fee: 500001, Delegate: baker}}, "max_fee"},
		{"other destination", []requesttest.Op{tx(next(), 1, other)}, "destinations: " + other + " is not an allowed destination"},
		{"allowed entrypoint", []requesttest.Op{{Kind: "transaction", Counter: next(), Fee: 1, Dest: token, Entry: "transfer"}}, ""},
		{"other entrypoint", []requesttest.Op{{Kind: "transaction", Counter: next(), Fee: 1, Dest: token, Entry: "mint"}}, "entrypoints: " + token + "%mint is not allowed (allowed: transfer)"},
		{"default entrypoint of a listed contract", []requesttest.Op{{Kind: "transaction", Counter: next(), Fee: 1, Dest: token}}, "%default is not allowed"},
		{"allowed delegate", []requesttest.Op{{Kind: "delegation", Counter: next(), Fee: 1, Delegate: baker}}, ""},
		{"withdrawn delegation", []requesttest.Op{{Kind: "delegation", Counter: next(), Fee: 1}}, ""},
		{"other delegate", []requesttest.Op{{Kind: "delegation", Counter: next(), Fee: 1, Delegate: other}}, "delegates: " + other + " is not an allowed delegate"},
		{"batch with one bad content", []requesttest.Op{tx(next(), 1, payee), tx(next(), 1, other)}, "(content 2 of 2)"},
	} {
		_, err := f.sign(t.Context(), batch(t, c.cs...))
		if c.want == "" {
			if err != nil {
				t.Errorf("%s: %v", c.name, err)
			}
			continue
		}
		if fault.Status(err) != 403 || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v (status %d), want 403 with %q", c.name, err, fault.Status(err), c.want)
		}
	}
	if n := testutil.ToFloat64(f.s.obs.(*metrics.Metrics).PolicyViolations.WithLabelValues("max_amount", f.pkh, "request")); n != 1 {
		t.Errorf("policy_violation_total{violation_type=max_amount} = %v", n)
	}
	// Only signed requests were counted: 6 signed, none of the refused.
	all, _ := f.store.ListSpends(t.Context())
	if len(all[f.pkh]) != 6 {
		t.Errorf("%d requests in the window, want the 6 signed", len(all[f.pkh]))
	}
}

// TestLimitsWindows: 30 tez transfers against max_total 1000 tez in 24 h: exactly 33 signed, the
// 34th refused naming the rule, limit and value; an identical retry of a signed transfer is not
// counted twice; a failed signing spends nothing; the budget returns once the transfers leave the
// window (the clock is the test's: no sleeping).
func TestLimitsWindows(t *testing.T) {
	t.Parallel()
	f := newLimitsFixture(t, strings.Replace(limitsY, "count: 40", "count: 100", 1), "")
	signed := 0
	var first []byte
	for i := range 40 {
		msg := batch(t, tx(uint64(i+1), 30, payee))
		if i == 0 {
			first = msg
		}
		_, err := f.sign(t.Context(), msg)
		switch {
		case err == nil:
			signed++
		case fault.Status(err) == 403 && strings.Contains(err.Error(), "max_total: 1020 tez in 24h0m0s would exceed the limit of 1000 tez"):
		default:
			t.Fatalf("transfer %d: %v", i, err)
		}
		f.advance(time.Minute)
	}
	if signed != 33 {
		t.Fatalf("%d transfers of 30 tez signed against 1000 tez, want 33", signed)
	}
	if _, err := f.sign(t.Context(), first); err != nil {
		t.Fatalf("an identical retry of a signed transfer: %v", err)
	}
	// A batch is counted whole: 5 + 5 tez do not fit in the 10 left.
	if _, err := f.sign(t.Context(), batch(t, tx(100, 5, payee), tx(101, 5.000001, payee))); fault.Status(err) != 403 {
		t.Fatalf("a batch over the 10 tez left: %v", err)
	}
	if _, err := f.sign(t.Context(), batch(t, tx(102, 5, payee), tx(103, 5, payee))); err != nil {
		t.Fatalf("a batch of exactly the 10 tez left: %v", err)
	}
	// Fees and the storage a transfer may burn (storage_limit × 250 mutez) count too: nothing
	// is left, so 1 mutez of fee is refused, as is 1 byte of storage.
	for _, op := range []requesttest.Op{{Kind: "transaction", Counter: 300, Fee: 1, Dest: payee}, {Kind: "transaction", Counter: 301, Storage: 1, Dest: payee}} {
		if _, err := f.sign(t.Context(), batch(t, op)); fault.Status(err) != 403 || !strings.Contains(err.Error(), "max_total: 1000.000") {
			t.Fatalf("fee %d, storage %d with nothing left: %v", op.Fee, op.Storage, err)
		}
	}
	// The first transfer, at 12:00, was signed again at 12:40: its entry counts until 12:40 + 24 h
	// (the copy may reach the chain later). The second, at 12:01, leaves the window at
	// 12:01 + 24 h and its 30 tez return.
	f.advance(24*time.Hour - 39*time.Minute - time.Second) // the clock is at 12:40
	if _, err := f.sign(t.Context(), batch(t, tx(200, 30, payee))); fault.Status(err) != 403 {
		t.Fatalf("one second before the second transfer leaves the window: %v", err)
	}
	f.advance(time.Second)
	if _, err := f.sign(t.Context(), batch(t, tx(201, 30, payee))); err != nil {
		t.Fatalf("once the second transfer left the window: %v", err)
	}

	// A signing that fails spends nothing.
	g := newLimitsFixture(t, limitsY, "error")
	for i := range 5 {
		if _, err := g.sign(t.Context(), batch(t, tx(uint64(i+1), 100, payee))); err == nil || fault.Status(err) == 403 {
			t.Fatalf("the vault fails: %v", err)
		}
	}
	all, _ := g.store.ListSpends(t.Context())
	if len(all[g.pkh]) != 0 {
		t.Fatalf("%d failed signings left in the window", len(all[g.pkh]))
	}
}

// TestLimitsOperationsAndConcurrency: max_operations counts requests (a batch as one); 50
// concurrent 30 tez transfers against 1000 tez sign exactly 33.
func TestLimitsOperationsAndConcurrency(t *testing.T) {
	t.Parallel()
	f := newLimitsFixture(t, strings.Replace(limitsY, "count: 40", "count: 3", 1), "")
	for i := range 3 {
		if _, err := f.sign(t.Context(), batch(t, tx(uint64(2*i+1), 1, payee), tx(uint64(2*i+2), 1, payee))); err != nil {
			t.Fatal(err)
		}
	}
	_, err := f.sign(t.Context(), batch(t, tx(10, 1, payee)))
	if fault.Status(err) != 403 || !strings.Contains(err.Error(), "max_operations: 4 operations in 1h0m0s would exceed the limit of 3") {
		t.Fatalf("a fourth request in the hour: %v", err)
	}

	c := newLimitsFixture(t, strings.Replace(limitsY, "count: 40", "count: 1000", 1), "")
	signed, _ := testdaemon.SignAtOnce(t, 50, func(i int) (int, string) {
		_, err := c.sign(t.Context(), batch(t, tx(uint64(i+1), 30, payee)))
		if v := (*policy.Violation)(nil); errors.As(err, &v) && v.Type == "max_total" {
			return 403, "max_total"
		} else if err != nil {
			return fault.Status(err), err.Error()
		}
		return 200, ""
	}, func(status int, body string) bool { return status == 403 && body == "max_total" })
	if signed != 33 {
		t.Fatalf("50 concurrent transfers of 30 tez against 1000 tez: %d signed, want 33", signed)
	}
	if n := testutil.ToFloat64(c.s.obs.(*metrics.Metrics).PolicyViolations.WithLabelValues("max_total", c.pkh, "request")); n != 17 {
		t.Fatalf("policy_violation_total{violation_type=max_total} = %v, want 17", n)
	}
}
