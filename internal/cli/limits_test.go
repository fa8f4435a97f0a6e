package cli

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/signatory-go/signatory/internal/request/requesttest"
	"github.com/signatory-go/signatory/internal/spending"
	tv "github.com/signatory-go/signatory/internal/testvectors"
	wmfile "github.com/signatory-go/signatory/internal/watermark/file"
)

// TestLimitsShowAndDecode: `limits show` prints each key's rules and what its windows hold (from
// the store, read-only), and `decode --key` explains a transfer's verdict with what would remain.
func TestLimitsShowAndDecode(t *testing.T) {
	const payee = "tz1gjaF81ZRRvdzjobyfVNsAeSC6PScjfQwN"
	cfg, dir := tempConfig(t, "  "+tv.K1PKH+":\n    allow: {generic: [transaction]}\n    limits:\n"+
		"      max_amount: 100\n      max_total: {amount: 1000, period: 24h}\n      max_operations: {count: 10, period: 1h}\n"+
		"      destinations: ["+payee+"]\n  "+tv.K2PKH+":\n")
	// 900 tez spent ten minutes ago, as a signer would have recorded it.
	st, err := wmfile.Open(filepath.Join(dir, "data"))
	if err != nil {
		t.Fatal(err)
	}
	w := spending.Windows{Amount: 1000e6, AmountPeriod: 24 * time.Hour, Count: 10, CountPeriod: time.Hour}
	if _, err := spending.Record(t.Context(), st, tv.K1PKH, spending.Spend{ID: "a", At: time.Now().Add(-10 * time.Minute), Amount: 900e6}, w); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}

	out, _, err := run(t, "limits", "show", "-c", cfg, "--json")
	if err != nil {
		t.Fatal(err)
	}
	var shown []keyLimitsJSON
	if err := json.Unmarshal([]byte(out), &shown); err != nil || len(shown) != 1 || shown[0].PKH != tv.K1PKH || len(shown[0].Windows) != 2 {
		t.Fatalf("%v\n%s", err, out)
	}
	if w := shown[0].Windows[0]; w.Rule != "max_total" || w.Used != "900 tez" || w.Left != "100 tez" || w.Limit != "1000 tez" || w.Frees == "" {
		t.Fatalf("%+v", w)
	}
	if w := shown[0].Windows[1]; w.Rule != "max_operations" || w.Used != "1" || w.Left != "9" {
		t.Fatalf("%+v", w)
	}
	if got := strings.Join(shown[0].Rules, "; "); got != "max_amount 100 tez; max_total 1000 tez per 24h0m0s; max_operations 10 per 1h0m0s; destinations "+payee {
		t.Fatalf("rules: %s", got)
	}
	text, _, err := run(t, "limits", "show", "-c", cfg)
	if err != nil || !strings.Contains(text, "max_total: 900 tez used of 1000 tez in the last 24h0m0s, 100 tez left") {
		t.Fatalf("%v\n%s", err, text)
	}

	tx := func(counter, tez uint64, dest string) requesttest.Op {
		return requesttest.Op{Kind: "transaction", Counter: counter, Amount: tez * 1e6, Dest: dest}
	}
	for _, c := range []struct {
		ops    []requesttest.Op
		ok     bool
		reason string
		left   string
	}{
		{[]requesttest.Op{tx(1, 100, payee)}, true, "", "0 tez"},
		{[]requesttest.Op{tx(1, 60, payee)}, true, "", "40 tez"},
		{[]requesttest.Op{tx(1, 60, payee), tx(2, 41, payee)}, false, "max_total: 1001 tez in 24h0m0s would exceed the limit of 1000 tez", "100 tez"},
		{[]requesttest.Op{tx(1, 1, tv.K2PKH)}, false, "destinations: " + tv.K2PKH + " is not an allowed destination", ""},
		{[]requesttest.Op{tx(1, 101, payee)}, false, "max_amount: transaction of 101 tez exceeds the limit of 100 tez", ""},
	} {
		out, _, err := run(t, "decode", requesttest.Operation(c.ops...), "--key", tv.K1PKH, "-c", cfg, "--json")
		if err != nil {
			t.Fatal(err)
		}
		var d decodeJSON
		if err := json.Unmarshal([]byte(out), &d); err != nil || d.Allowed == nil || *d.Allowed != c.ok || !strings.Contains(d.Reason, c.reason) {
			t.Fatalf("%+v: %v\n%s", c.ops, err, out)
		}
		if c.left != "" && (d.Limits == nil || d.Limits.Windows[0].Left != c.left) {
			t.Fatalf("%+v: %s", c.ops, out)
		}
	}
	text, _, err = run(t, "decode", requesttest.Operation(tx(1, 60, payee)), "--key", tv.K1PKH, "-c", cfg)
	if err != nil || !strings.Contains(text, "Policy:      allowed for "+tv.K1PKH) ||
		!strings.Contains(text, "max_total: 960 tez used of 1000 tez in the last 24h0m0s, 40 tez left") {
		t.Fatalf("%v\n%s", err, text)
	}
	// decode changes nothing: the window still holds 900 tez.
	if out, _, _ := run(t, "limits", "show", "-c", cfg); !strings.Contains(out, "900 tez used") {
		t.Fatalf("decode recorded something:\n%s", out)
	}
}
