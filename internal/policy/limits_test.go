package policy

import (
	"math/big"
	"strings"
	"testing"

	"github.com/signatory-go/signatory/internal/request"
	"github.com/signatory-go/signatory/internal/tezos"
)

func TestParseTez(t *testing.T) {
	for in, want := range map[string]int64{"0": 0, "100": 100_000_000, "0.5": 500_000, "1000.000001": 1_000_000_001,
		"0.000001": 1, "007": 7_000_000, "12.": 12_000_000} {
		if got, err := ParseTez(in); err != nil || got != want {
			t.Errorf("%q: %d %v, want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "-1", "+1", "1e3", "0.0000001", ".5", "1,5", "0x10", "NaN", "1 000", "99999999999999", "4611686018427.387904"} {
		if _, err := ParseTez(in); err == nil {
			t.Errorf("%q accepted", in)
		}
	}
}

// FuzzParseTez: no input panics; what is accepted prints back (FormatTez) to the same mutez.
func FuzzParseTez(f *testing.F) {
	for _, s := range []string{"0", "0.5", "1000.000001", "-1", "1e3", "4611686018427.387903"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		m, err := ParseTez(s)
		if err != nil {
			return
		}
		if m < 0 || m >= 1<<62 {
			t.Fatalf("%q: %d mutez", s, m)
		}
		back, err := ParseTez(tezos.FormatTez(m))
		if err != nil || back != m {
			t.Fatalf("%q → %d → %q → %d %v", s, m, tezos.FormatTez(m), back, err)
		}
	})
}

// TestCheckContentsHugeAmounts: amounts beyond int64 (zarith naturals are unbounded) are refused
// by max_amount and counted at the cap, never wrapped around.
func TestCheckContentsHugeAmounts(t *testing.T) {
	huge, _ := new(big.Int).SetString("123456789012345678901234567890", 10)
	l := &Limits{MaxAmount: big.NewInt(100_000_000)}
	err := l.CheckContents([]request.Content{{Kind: "transaction", Amount: huge, Fee: big.NewInt(0), Destination: "tz1", Entrypoint: "default"}})
	if err == nil || !strings.Contains(err.Error(), "123456789012345678901234.56789 tez") {
		t.Fatalf("%v", err)
	}
	if a := Amount([]request.Content{{Amount: huge}, {Amount: big.NewInt(1)}}); a != 1<<62 {
		t.Fatalf("capped amount %d", a)
	}
}

// TestCheckContentsDestinations: destinations bind every transfer to another account whatever
// its kind's name, not one to the key itself (stake), and an origination's balance (a new
// contract cannot be listed).
func TestCheckContentsDestinations(t *testing.T) {
	const self, payee, other = "tz1Ke2h7sDdakHJQh8WX4Z372du1KChsksyU", "tz1gjaF81ZRRvdzjobyfVNsAeSC6PScjfQwN", "KT1BEqzn5Wx8uJrZNvuS9DVHmLvG9td3fDLi"
	l := &Limits{Destinations: []string{payee}}
	one := big.NewInt(1)
	for _, c := range []struct {
		c    request.Content
		want string
	}{
		{request.Content{Kind: "transaction", Source: self, Destination: payee, Amount: one}, ""},
		{request.Content{Kind: "stake", Source: self, Destination: self, Amount: one}, ""},
		{request.Content{Kind: "transaction", Source: self, Destination: other, Amount: one, Entrypoint: "stake"}, "is not an allowed destination"},
		{request.Content{Kind: "origination", Source: self, Amount: big.NewInt(0)}, ""},
		{request.Content{Kind: "origination", Source: self, Amount: one}, "moves tez to a new contract"},
		{request.Content{Kind: "delegation", Source: self, Delegate: other}, ""},
	} {
		err := l.CheckContents([]request.Content{c.c})
		if c.want == "" && err != nil || c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)) {
			t.Errorf("%+v: %v, want %q", c.c, err, c.want)
		}
	}
}

// TestCheckContentsDelegates: delegates binds a delegation's new delegate and the delegate an
// origination gives its new contract; withdrawing a delegation, or an origination without one,
// passes.
func TestCheckContentsDelegates(t *testing.T) {
	const self, baker, other = "tz1Ke2h7sDdakHJQh8WX4Z372du1KChsksyU", "tz1gjaF81ZRRvdzjobyfVNsAeSC6PScjfQwN", "tz1WGcYos3hL7GXYXjKrMnSFdkT7FyXnFBvf"
	l := &Limits{Delegates: []string{baker}}
	zero := big.NewInt(0)
	for _, c := range []struct {
		c    request.Content
		want string
	}{
		{request.Content{Kind: "delegation", Source: self, Delegate: baker}, ""},
		{request.Content{Kind: "delegation", Source: self}, ""},
		{request.Content{Kind: "delegation", Source: self, Delegate: other}, "is not an allowed delegate"},
		{request.Content{Kind: "origination", Source: self, Amount: zero, Delegate: baker}, ""},
		{request.Content{Kind: "origination", Source: self, Amount: zero}, ""},
		{request.Content{Kind: "origination", Source: self, Amount: zero, Delegate: other}, "is not an allowed delegate"},
	} {
		err := l.CheckContents([]request.Content{c.c})
		if c.want == "" && err != nil || c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)) {
			t.Errorf("%+v: %v, want %q", c.c, err, c.want)
		}
	}
}
