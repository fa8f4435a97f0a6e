package policy

import (
	"math/big"
	"slices"
	"strings"
	"testing"

	"github.com/signatory-go/signatory/internal/request"
	tv "github.com/signatory-go/signatory/internal/testvectors"
	"github.com/signatory-go/signatory/internal/tezos"
)

// These tests hold rules that mutation testing found no test holding (docs/testing.md): each
// fails with its rule broken.

// TestAllowedChainsFromConfig: a key's allowed_chains, read from its config, binds its block and
// consensus requests to those chains.
func TestAllowedChainsFromConfig(t *testing.T) {
	t.Parallel()
	p, _, err := parse(t, "allow: {block: null}\nallowed_chains: [NetXdQprcVkpaWU]")
	if err != nil {
		t.Fatal(err)
	}
	block := func(chain string) *request.Request {
		id, err := tezos.ParseChainID(chain)
		if err != nil {
			t.Fatal(err)
		}
		return &request.Request{Kind: request.Block, Chain: id}
	}
	if err := p.Check(block("NetXdQprcVkpaWU"), ""); err != nil {
		t.Fatalf("the allowed chain: %v", err)
	}
	if err := p.Check(block("NetXnHfVqm9iesp"), ""); err == nil || !strings.Contains(err.Error(), "chain `NetXnHfVqm9iesp' is not allowed") {
		t.Fatalf("another chain: %v", err)
	}
}

// TestLegacyAllowFields: the reference's allowed_operations and allowed_kinds are read (with a
// warning) only when `allow:` is absent; with both, `allow:` alone applies; allowed_operations
// without allowed_kinds allows no generic operation.
func TestLegacyAllowFields(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		src      string
		requests []request.Kind
		ops      []string
		warning  string
	}{
		{"allowed_operations: [generic, block]\nallowed_kinds: [transaction]", []request.Kind{"block", "generic"}, []string{"transaction"}, "deprecated; use `allow:`"},
		{"allowed_operations: [block]", []request.Kind{"block"}, nil, "deprecated; use `allow:`"},
		{"allow: {block: null}\nallowed_kinds: [transaction]\nallowed_operations: [generic]", []request.Kind{"block"}, nil, ""},
	} {
		p, warnings, err := parse(t, c.src)
		if err != nil {
			t.Fatalf("%q: %v", c.src, err)
		}
		if !slices.Equal(p.Requests, c.requests) || !slices.Equal(p.Ops, c.ops) {
			t.Errorf("%q: requests %v ops %v, want %v %v", c.src, p.Requests, p.Ops, c.requests, c.ops)
		}
		if got := strings.Join(warnings, "; "); c.warning != "" && !strings.Contains(got, c.warning) || c.warning == "" && got != "" {
			t.Errorf("%q: warnings %q, want %q", c.src, got, c.warning)
		}
	}
}

// TestPolicyListsSorted: the request kinds and operations of a policy are kept sorted, whatever
// the config's order (they are printed by `decode --key` and the startup log).
func TestPolicyListsSorted(t *testing.T) {
	t.Parallel()
	p, _, err := parse(t, "allow: {generic: [transaction, ballot, delegation], block: null, attestation: null}")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(p.Requests, []request.Kind{"attestation", "block", "generic"}) || !slices.Equal(p.Ops, []string{"ballot", "delegation", "transaction"}) {
		t.Fatalf("requests %v, ops %v", p.Requests, p.Ops)
	}
}

// TestPolicyWarnings: settings that have no effect are said so.
func TestPolicyWarnings(t *testing.T) {
	t.Parallel()
	for src, want := range map[string]string{
		"vault: v1\nallow: {block: null}":                                           "`vault` under a key has no effect",
		"allow: {endorsement: null}":                                                "request kind `endorsement` is deprecated; use `attestation`",
		"allow: {block: null}\nlimits: {max_amount: 1}":                             "limits apply to generic operations, which this key may not sign",
		"allow: {block: null}\nallow_proof_of_possession: true":                     "proof of possession is not supported",
		"allow: {generic: [transaction]}\nlimits: {max_fee: 1}\nlog_payloads: true": "",
		"log_payloads: true":                                                        "",
	} {
		_, warnings, err := parse(t, src)
		if err != nil {
			t.Fatalf("%q: %v", src, err)
		}
		if got := strings.Join(warnings, "; "); want == "" && got != "" || !strings.Contains(got, want) {
			t.Errorf("%q: warnings %q, want %q", src, got, want)
		}
	}
}

// TestParseTezBounds: each bound of an amount at, and one past, its value.
func TestParseTezBounds(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]int64{
		"1.000001":             1_000_001,
		"4611686018427.387903": 1<<62 - 1, // 13 whole digits, the largest amount
		"1234567890123":        1_234_567_890_123_000_000,
	} {
		if got, err := ParseTez(in); err != nil || got != want {
			t.Errorf("%q: %d %v, want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"1.0000001", "4611686018427.387904", "12345678901234"} {
		if _, err := ParseTez(in); err == nil {
			t.Errorf("%q accepted", in)
		}
	}
}

// TestLimitsConfigBounds: max_operations needs both count and period (and count 1 is a limit);
// an entrypoints list is not empty and names entrypoints octez can read; each mistake is refused
// naming the line of its key, wherever the key is in `limits:`.
func TestLimitsConfigBounds(t *testing.T) {
	t.Parallel()
	const head = "allow: {generic: [transaction]}\nlimits:\n  max_fee: 1\n  max_amount: 2\n  destinations: [tz1burnburnburnburnburnburnburjAYjjX]\n"
	for _, c := range []struct{ src, want string }{
		{head + "  max_operations: {count: 5}\n", "line 6: limits.max_operations needs count and period"},
		{head + "  max_operations: {period: 1h}\n", "line 6: limits.max_operations needs count and period"},
		{head + "  max_operations: {count: 0, period: 1h}\n", "line 6: limits.max_operations.count must be at least 1"},
		{head + "  entrypoints: {KT1BEqzn5Wx8uJrZNvuS9DVHmLvG9td3fDLi: []}\n", "line 6: limits.entrypoints.KT1BEqzn5Wx8uJrZNvuS9DVHmLvG9td3fDLi lists no entrypoint"},
		{head + "  entrypoints: {KT1BEqzn5Wx8uJrZNvuS9DVHmLvG9td3fDLi: [\"\"]}\n", "is not an entrypoint name"},
		{head + "  entrypoints: {KT1BEqzn5Wx8uJrZNvuS9DVHmLvG9td3fDLi: [a-b]}\n", "is not an entrypoint name"},
		{head + "  entrypoints: {KT1BEqzn5Wx8uJrZNvuS9DVHmLvG9td3fDLi: [" + strings.Repeat("a", 32) + "]}\n", "is not an entrypoint name"},
	} {
		if _, _, err := parse(t, c.src); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: %v, want %q", c.src, err, c.want)
		}
	}
	p, _, err := parse(t, head+"  max_operations: {count: 1, period: 1h}\n  entrypoints: {KT1BEqzn5Wx8uJrZNvuS9DVHmLvG9td3fDLi: [\""+strings.Repeat("a", 31)+"\"]}\n")
	if err != nil {
		t.Fatal(err)
	}
	if p.Limits.Windows.Count != 1 {
		t.Fatalf("count %d", p.Limits.Windows.Count)
	}
}

// TestAmountBelowCap: an amount below the cap is counted as it is (the cap, 2^62 mutez, only
// replaces sums at or past it).
func TestAmountBelowCap(t *testing.T) {
	t.Parallel()
	for _, v := range []int64{1 << 61, 1<<62 - 1} {
		if got := Amount([]request.Content{{Amount: big.NewInt(v)}}); got != v {
			t.Errorf("%d counted as %d", v, got)
		}
	}
	if got := Amount([]request.Content{{Amount: big.NewInt(1 << 61)}, {Amount: big.NewInt(1 << 61)}}); got != 1<<62 {
		t.Errorf("2^62 counted as %d", got)
	}
}

// TestLimitsSummary: `limits show` and `decode --key` list every limit of a key.
func TestLimitsSummary(t *testing.T) {
	t.Parallel()
	p, _, err := parse(t, `allow: {generic: [transaction, delegation]}
limits:
  max_amount: 2.5
  max_fee: 0.1
  max_total: {amount: 100, period: 24h}
  max_operations: {count: 10, period: 1h}
  destinations: [tz1burnburnburnburnburnburnburjAYjjX]
  delegates: [tz1burnburnburnburnburnburnburjAYjjX]
  entrypoints: {KT1BEqzn5Wx8uJrZNvuS9DVHmLvG9td3fDLi: [mint, burn]}
`)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"max_amount 2.5 tez", "max_fee 0.1 tez", "max_total 100 tez per 24h0m0s", "max_operations 10 per 1h0m0s",
		"destinations tz1burnburnburnburnburnburnburjAYjjX", "delegates tz1burnburnburnburnburnburnburjAYjjX",
		"entrypoints KT1BEqzn5Wx8uJrZNvuS9DVHmLvG9td3fDLi: mint, burn"}
	if got := p.Limits.Summary(); !slices.Equal(got, want) {
		t.Fatalf("summary\n%q\nwant\n%q", got, want)
	}
	// A limit not set is not listed (no "max_total 0 tez per 0s").
	p, _, err = parse(t, "allow: {generic: [transaction]}\nlimits: {max_amount: 1}\n")
	if err != nil {
		t.Fatal(err)
	}
	if got := p.Limits.Summary(); !slices.Equal(got, []string{"max_amount 1 tez"}) {
		t.Fatalf("summary of max_amount alone: %q", got)
	}
}

// TestLimitMessages: what a refusal says, for amounts past 2^62 mutez (printed exactly) and for
// a contract with no allowed entrypoint.
func TestLimitMessages(t *testing.T) {
	t.Parallel()
	l := &Limits{MaxAmount: big.NewInt(1), Entrypoints: map[string][]string{"KT1BEqzn5Wx8uJrZNvuS9DVHmLvG9td3fDLi": {"mint"}}}
	for amount, want := range map[int64]string{
		5_000_000_000_000_000_000: "transaction of 5000000000000 tez exceeds",
		5_000_000_000_000_000_001: "transaction of 5000000000000.000001 tez exceeds",
	} {
		err := l.CheckContents([]request.Content{{Kind: "transaction", Amount: big.NewInt(amount), Destination: "tz1burnburnburnburnburnburnburjAYjjX"}})
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%d: %v, want %q", amount, err, want)
		}
	}
	l.MaxAmount = nil
	err := l.CheckContents([]request.Content{{Kind: "transaction", Amount: big.NewInt(1), Source: "tz1a", Destination: "KT1ThEdxfUcWUwqsdergy3QnbCWGHSUHeHJq", Entrypoint: "mint"}})
	if err == nil || !strings.Contains(err.Error(), "no entrypoint of KT1ThEdxfUcWUwqsdergy3QnbCWGHSUHeHJq is allowed") {
		t.Fatalf("%v", err)
	}
}

// TestShareOf: share_of names the group key of a tz4 share; on another curve, or with something
// that is not a BLS public key, it is refused.
func TestShareOf(t *testing.T) {
	t.Parallel()
	k, err := tezos.GenerateKey(tezos.BLS)
	if err != nil {
		t.Fatal(err)
	}
	group := k.Public().String()
	tz4 := k.Public().Hash().String()
	p, _, err := Parse(tz4, node(t, "allow: {attestation: null}\nshare_of: "+group))
	if err != nil || p.ShareOf != group {
		t.Fatalf("%v %+v", err, p)
	}
	for pkh, src := range map[string]string{
		tv.K1PKH: "share_of: " + group,
		tz4:      "share_of: " + tz4,
	} {
		if _, _, err := Parse(pkh, node(t, src)); err == nil || !strings.Contains(err.Error(), "share_of") {
			t.Errorf("%s %q: %v", pkh, src, err)
		}
	}
}
