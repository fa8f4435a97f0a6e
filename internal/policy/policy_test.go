package policy

import (
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/signatory-go/signatory/internal/fault"
	"github.com/signatory-go/signatory/internal/request"
	tv "github.com/signatory-go/signatory/internal/testvectors"
)

// policyA is POLICY_A of the reference TestPolicy ("endorsement" is a literal that never matches).
func policyA(extraOps ...string) *Policy {
	return &Policy{PKH: tv.K1PKH,
		Requests: []request.Kind{"generic", "block", "endorsement"},
		Ops:      append([]string{"endorsement", "seed_nonce_revelation", "activate_account", "ballot", "reveal", "transaction", "origination", "delegation"}, extraOps...)}
}

func without(p *Policy, op string) *Policy {
	var ops []string
	for _, o := range p.Ops {
		if o != op {
			ops = append(ops, o)
		}
	}
	p.Ops = ops
	return p
}

func TestReferencePolicyVectors(t *testing.T) {
	t.Parallel()
	ph := tv.LoadPolicyHex()
	d := tv.LoadDerived()
	cases := []struct {
		name    string
		payload string
		policy  *Policy
		want    string // "" for allowed
	}{
		{"C1 block ok", ph["block ok"], policyA(), ""},
		{"C2 block not allowed", ph["block ok"], &Policy{Requests: []request.Kind{"generic", "endorsement"}}, "request kind `block' is not allowed"},
		{"C3 attestation ok", ph["endorsement ok"], &Policy{Requests: []request.Kind{"generic", "block", "endorsement", "attestation"}}, ""},
		{"C4 generic ok", ph["generic ok"], policyA(), ""},
		{"C5 generic not allowed", ph["generic not allowed"], &Policy{Requests: []request.Kind{"block", "endorsement"}}, "request kind `generic' is not allowed"},
		{"C6 delegation ok", ph["delegation ok"], policyA(), ""},
		{"C7 delegation not allowed", ph["delegation ok"], without(policyA(), "delegation"), "operation `delegation' is not allowed"},
		{"C8 origination ok", ph["origination ok"], policyA(), ""},
		{"C9 origination not allowed", ph["origination ok"], without(policyA(), "origination"), "operation `origination' is not allowed"},
		{"C10 reveal not allowed", ph["reveal not allowed"], without(policyA(), "reveal"), "operation `reveal' is not allowed"},
		{"C11 transaction ok", ph["transaction ok"], policyA(), ""},
		{"C11 transaction not allowed", ph["transaction ok"], without(policyA(), "transaction"), "operation `transaction' is not allowed"},
		{"C12 increase paid storage ok", ph["increase paid storage not allowed"], policyA("increase_paid_storage"), ""},
		{"C12 increase paid storage not allowed", ph["increase paid storage not allowed"], policyA(), "operation `increase_paid_storage' is not allowed"},
		{"C13 vdf ok", ph["VDF Revelation ok"], policyA("vdf_revelation"), ""},
		{"C13 vdf not allowed", ph["VDF Revelation ok"], policyA(), "operation `vdf_revelation' is not allowed"},
		{"C14 ucK ok", tv.WithProofAbsent(ph["Update consensus key"]), policyA("update_consensus_key"), ""},
		{"C14 ucK not allowed", tv.WithProofAbsent(ph["Update consensus key"]), policyA(), "operation `update_consensus_key' is not allowed"},
		{"C15 drain ok", ph["Drain delegate"], policyA("drain_delegate"), ""},
		{"C15 drain not allowed", ph["Drain delegate"], policyA("update_consensus_key"), "operation `drain_delegate' is not allowed"},
		{"C16 ok", tv.WithProofAbsent(ph["Delegate with consesus key"]), policyA("update_consensus_key"), ""},
		{"C16 not allowed", tv.WithProofAbsent(ph["Delegate with consesus key"]), policyA(), "operation `update_consensus_key' is not allowed"},
		{"C17 pack", d.Pack, &Policy{Requests: []request.Kind{"pack"}}, ""},
		{"C18 stake", d.Constructed["stake"], &Policy{Requests: []request.Kind{"generic"}, Ops: []string{"stake"}}, ""},
		{"stake refused as transaction", d.Constructed["stake"], &Policy{Requests: []request.Kind{"generic"}, Ops: []string{"transaction"}}, "operation `stake' is not allowed"},
		{"C19 ballot", d.Constructed["ballot_nay"], &Policy{Requests: []request.Kind{"generic"}, Ops: []string{"ballot"}}, ""},
		{"C19 ballot:nay", d.Constructed["ballot_nay"], &Policy{Requests: []request.Kind{"generic"}, Ops: []string{"ballot:nay"}}, ""},
		{"C20 ballot:yay refused", d.Constructed["ballot_yay"], &Policy{Requests: []request.Kind{"generic"}, Ops: []string{"ballot:nay", "ballot:pass"}}, "operation `ballot:yay' is not allowed"},
		{"C22 chain ok", ph["block ok"], &Policy{Requests: []request.Kind{"block"}, AllowedChains: []string{"NetXxkAx4woPLyu"}}, ""},
		{"C22 chain refused", ph["block ok"], &Policy{Requests: []request.Kind{"block"}, AllowedChains: []string{"NetXH12Aer3be93"}}, "chain `NetXxkAx4woPLyu' is not allowed"},
		{"C22 attestation chain refused", ph["endorsement ok"], &Policy{Requests: []request.Kind{"attestation"}, AllowedChains: []string{"NetXH12Aer3be93"}}, "chain `NetXxkAx4woPLyu' is not allowed"},
		{"C22 generic ignores chains", ph["transaction ok"], &Policy{Requests: []request.Kind{"generic"}, Ops: []string{"transaction"}, AllowedChains: []string{"NetXH12Aer3be93"}}, ""},
		{"default allows attestation", ph["endorsement ok"], Default(tv.K1PKH), ""},
		{"default refuses generic", ph["generic ok"], Default(tv.K1PKH), "request kind `generic' is not allowed"},
		{"dal needs its own kind", d.DerivedPayloads["attestation_with_dal_tag23"], Default(tv.K1PKH), "request kind `attestation_with_dal' is not allowed"},
		{"empty generic list refuses every op", ph["generic ok"], &Policy{Requests: []request.Kind{"generic"}}, "operation `transaction' is not allowed"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			req, err := request.Decode(tv.Hex(c.payload), request.VersionLatest)
			if err != nil {
				t.Fatal(err)
			}
			err = c.policy.Check(req, "")
			if c.want == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if err == nil || err.Error() != c.want {
				t.Fatalf("got %v, want %q", err, c.want)
			}
			if fault.KindOf(err) != fault.Forbidden {
				t.Fatalf("kind %v, want Forbidden", fault.KindOf(err))
			}
		})
	}
}

func TestClientRestriction(t *testing.T) {
	t.Parallel()
	req, _ := request.Decode(tv.Hex(tv.LoadDerived().Auth.Msg), request.VersionLatest)
	p := &Policy{Requests: []request.Kind{"generic"}, Ops: []string{"transaction"}, AuthorizedKeys: []string{tv.K3PKH}}
	if err := p.Check(req, ""); err == nil || err.Error() != "authentication required" {
		t.Fatalf("unauthenticated: %v", err)
	}
	if err := p.Check(req, tv.K4PKH); err == nil || err.Error() != "client `"+tv.K4PKH+"' is not allowed" {
		t.Fatalf("other client: %v", err)
	}
	if err := p.Check(req, tv.K3PKH); err != nil {
		t.Fatalf("authorized client: %v", err)
	}
}

// node is src's YAML mapping.
func node(t *testing.T, src string) *yaml.Node {
	t.Helper()
	var n yaml.Node
	if err := yaml.Unmarshal([]byte(src), &n); err != nil {
		t.Fatal(err)
	}
	return n.Content[0]
}

func parse(t *testing.T, src string) (*Policy, []string, error) {
	t.Helper()
	var n yaml.Node
	if err := yaml.Unmarshal([]byte(src), &n); err != nil {
		t.Fatal(err)
	}
	if len(n.Content) == 0 {
		return Parse(tv.K1PKH, nil)
	}
	return Parse(tv.K1PKH, n.Content[0])
}

func TestParse(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, src, err string
	}{
		{"C23 foo", "allow: {block: , foo: }", "invalid request kind `foo` in `allow` list"},
		{"C23 valid kinds", "allow: {attestation: , generic: , block: , preendorsement: , attestation_with_dal: }", ""},
		{"C23 invalid op", "allow: {generic: [transaction, invalid_op]}", "invalid operation kind `invalid_op` in `allow.generic` list"},
		{"C23 valid ops", "allow: {generic: [transaction, delegation, origination, reveal, stake, unstake, finalize_unstake, ballot]}", ""},
		{"C23 ballot subkinds", "allow: {generic: ['ballot:yay', 'ballot:nay', 'ballot:pass']}", ""},
		{"C23 ballot:invalid", "allow: {generic: ['ballot:invalid']}", "invalid operation kind `ballot:invalid`"},
		{"C23 transaction:foo", "allow: {generic: ['transaction:foo']}", "invalid operation kind `transaction:foo`"},
		{"C23 endorsement:foo", "allow: {generic: ['endorsement:foo']}", "invalid operation kind `attestation:foo`"},
		{"C23 preendorsement:foo", "allow: {generic: ['preendorsement:foo']}", "invalid operation kind `preattestation:foo`"},
		{"C23 attestation in generic", "allow: {generic: [attestation]}", "invalid operation kind `attestation`"},
		{"C23 dal in generic", "allow: {generic: [attestation_with_dal]}", "invalid operation kind `attestation_with_dal`"},
		{"C23 preattestation in generic", "allow: {generic: [preattestation]}", "invalid operation kind `preattestation`"},
		{"bad chain", "allowed_chains: [NetXnope]", "allowed_chains"},
		{"bad authorized key", "authorized_keys: [edpkNOPE]", "authorized_keys"},
		{"PoP for a tz1 key", "allow_proof_of_possession_for: [" + tv.K8PK + "]", "allow_proof_of_possession_for: " + tv.K1PKH + " is not a tz4 key"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, _, err := parse(t, c.src)
			if c.err == "" && err != nil {
				t.Fatal(err)
			}
			if c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)) {
				t.Fatalf("got %v, want %q", err, c.err)
			}
		})
	}
}

func TestParseSemantics(t *testing.T) {
	t.Parallel()
	p, _, err := parse(t, "")
	if err != nil || len(p.Requests) != 3 {
		t.Fatalf("null policy: %+v %v", p, err)
	}
	p, _, _ = parse(t, "log_payloads: true")
	if len(p.Requests) != 0 || !p.LogPayloads {
		t.Fatalf("mapping without allow must allow nothing: %+v", p)
	}
	p, w, _ := parse(t, "allowed_operations: [generic, block]\nallowed_kinds: [transaction]")
	if len(w) == 0 || len(p.Requests) != 2 || len(p.Ops) != 1 {
		t.Fatalf("deprecated fields: %+v %v", p, w)
	}
	p, w, _ = parse(t, "allow: {block: }\nallow_proof_of_possession: true")
	if p.AllowPoP || len(w) != 1 {
		t.Fatalf("PoP on tz1 must be ignored with a warning: %+v %v", p, w)
	}
	for _, bad := range []string{tv.K1PK, "BLpkNOPE", tv.K8PKH} {
		if _, _, err := Parse(tv.K7PKH, node(t, "allow_proof_of_possession_for: ["+bad+"]")); err == nil || !strings.Contains(err.Error(), "not a BLS public key") {
			t.Fatalf("allow_proof_of_possession_for: [%s]: %v", bad, err)
		}
	}
	p, _, err = Parse(tv.K7PKH, node(t, "allow_proof_of_possession_for: ["+tv.K8PK+", "+tv.K8PK+"]"))
	if err != nil || !slices.Equal(p.AllowPoPFor, []string{tv.K8PK}) || p.AllowPoP {
		t.Fatalf("allow_proof_of_possession_for: %+v %v", p, err)
	}
	p, _, _ = parse(t, "authorized_keys: ["+tv.K3PK+"]\nallow: {generic: [transaction]}")
	if len(p.AuthorizedKeys) != 1 || p.AuthorizedKeys[0] != tv.K3PKH {
		t.Fatalf("authorized_keys not hashed: %+v", p.AuthorizedKeys)
	}
}

// TestTz5Policies: a tz5 (ML-DSA-44) key may be allowed generic operations and packed data only,
// since the protocol lets no tz5 key bake or attest; the default policy does not fit it, and a
// proof of possession is ignored with a warning as for every non-tz4 key.
func TestTz5Policies(t *testing.T) {
	t.Parallel()
	tz5 := tv.OctezTz5PKH
	node := func(src string) *yaml.Node {
		var n yaml.Node
		if err := yaml.Unmarshal([]byte(src), &n); err != nil {
			t.Fatal(err)
		}
		return n.Content[0]
	}
	p, w, err := Parse(tz5, node("allow: {generic: [transaction, reveal], pack: }\nallow_proof_of_possession: true"))
	if err != nil || len(p.Requests) != 2 || len(p.Ops) != 2 || p.AllowPoP || len(w) != 1 {
		t.Fatalf("generic and pack: %+v %v %v", p, w, err)
	}
	const why = " for a tz5 (ML-DSA-44) key: tz5 keys cannot be delegates or consensus keys, so they sign generic operations and packed data only (allow: {generic: [...]} or pack)"
	for src, want := range map[string]string{
		"": "the default policy (block, preattestation, attestation) does not fit" + why,
		"allow: {generic: [transaction], block: }":   "request kind `block` cannot be allowed" + why,
		"allow: {attestation: }":                     "request kind `attestation` cannot be allowed" + why,
		"allow: {preendorsement: }":                  "request kind `preattestation` cannot be allowed" + why,
		"allow: {attestation_with_dal: , generic: }": "request kind `attestation_with_dal` cannot be allowed" + why,
	} {
		var n *yaml.Node
		if src != "" {
			n = node(src)
		}
		if p, _, err := Parse(tz5, n); err == nil || err.Error() != want {
			t.Errorf("%q: %+v, %v; want %q", src, p, err, want)
		}
	}
}

// TestBatchEveryOperationChecked: every operation of a batch must be allowed, also after one
// allowed through its base kind (ballot:yay under `ballot`).
func TestBatchEveryOperationChecked(t *testing.T) {
	t.Parallel()
	p := &Policy{PKH: tv.K1PKH, Requests: []request.Kind{request.Generic}, Ops: []string{"ballot", "transaction"}}
	for _, c := range []struct {
		ops  []string
		want string
	}{
		{[]string{"ballot:yay", "transaction"}, ""},
		{[]string{"ballot:yay", "delegation"}, "operation `delegation' is not allowed"},
		{[]string{"transaction", "ballot:nay", "stake"}, "operation `stake' is not allowed"},
		{[]string{"stake", "ballot:yay"}, "operation `stake' is not allowed"},
	} {
		err := p.Check(&request.Request{Kind: request.Generic, Ops: c.ops}, "")
		if c.want == "" && err != nil || c.want != "" && (err == nil || err.Error() != c.want) {
			t.Errorf("%v: %v, want %q", c.ops, err, c.want)
		}
	}
}

// TestConfigMistakesRefused: settings that would silently widen or void a key's rules stop
// start-up: a window of no length, an empty destinations or delegates list, operations under a
// request kind that takes none.
func TestConfigMistakesRefused(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ src, want string }{
		{"allow: {generic: [transaction]}\nlimits: {max_total: {amount: 10, period: 0s}}", "period must be more than 0"},
		{"allow: {generic: [transaction]}\nlimits: {max_operations: {count: 10, period: 0s}}", "period must be more than 0"},
		{"allow: {generic: [transaction]}\nlimits: {destinations: []}", "destinations is empty"},
		{"allow: {generic: [delegation]}\nlimits: {delegates: []}", "delegates is empty"},
		{"allow: {block: [transaction]}", "takes no operation list"},
	} {
		if _, _, err := parse(t, c.src); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: %v, want %q", c.src, err, c.want)
		}
	}
}
