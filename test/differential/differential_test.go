// Package differential holds the differential suite: generic operations of every kind the live
// protocol has, encoded by Taquito's LocalForger and as hand-built variants, are read by Taquito
// (an independent decoder) and by Signatory, and every field a policy depends on must agree.
// Where Taquito and octez differ, octez decides (docs/protocol.md lists each rule).
package differential

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/big"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	tz "github.com/ecadlabs/gotez/v2"
	"github.com/ecadlabs/gotez/v2/crypt"

	"github.com/signatory-go/signatory/internal/request"
	"github.com/signatory-go/signatory/internal/testdaemon"
	"github.com/signatory-go/signatory/internal/tezos"
)

// defaultSeed makes every run of the suite the same cases (a test that passes or fails by the
// luck of a seed is a flaky test); SIGNATORY_DIFF_SEED explores others.
const defaultSeed = 20261204

// expect is what octez does with a case, and so what Signatory must do.
type expect int

const (
	valid    expect = iota // octez reads it: Signatory accepts it and reads it as Taquito does (octez's rules applied)
	refused                // octez cannot read it: Signatory refuses it
	stricter               // octez reads it, Signatory refuses it by design (docs/protocol.md)
)

type testCase struct {
	name   string
	hex    string // without the magic byte
	expect expect
}

// TestDifferentialTaquito generates SIGNATORY_DIFF_CASES (default 3000) operations, has Taquito
// forge them, adds hand-built variants of the transactions, and compares Signatory's reading of
// each with Taquito's. A failure names the seed and the bytes.
func TestDifferentialTaquito(t *testing.T) {
	nodeBin := testdaemon.RequireNode(t, "test/differential")
	seed := uint64(defaultSeed)
	if s := os.Getenv("SIGNATORY_DIFF_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("SIGNATORY_DIFF_SEED: %v", err)
		}
		seed = v
	}
	n := 3000
	if s := os.Getenv("SIGNATORY_DIFF_CASES"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v < 1 {
			t.Fatalf("SIGNATORY_DIFF_CASES: %q", s)
		}
		n = v
	}
	t.Logf("seed %d (SIGNATORY_DIFF_SEED), %d generated operations", seed, n)
	g := newGen(t, rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)))

	ops := make([]map[string]any, n)
	inputs := make([]any, n)
	for i := range ops {
		ops[i] = g.operation()
		inputs[i] = map[string]any{"forge": ops[i]}
	}
	forged := runForger(t, nodeBin, inputs)
	var cases []testCase
	for i, f := range forged {
		if f.Error != "" {
			js, _ := json.Marshal(ops[i])
			t.Fatalf("seed %d: Taquito cannot forge operation %d: %s\n%s", seed, i, f.Error, js)
		}
		e := valid
		if !readable(ops[i]) {
			e = refused
		}
		cases = append(cases, testCase{name: fmt.Sprintf("forged %d", i), hex: f.Hex, expect: e})
	}
	cases = append(cases, g.variants()...)

	inputs = make([]any, len(cases))
	for i, c := range cases {
		inputs[i] = map[string]any{"parse": c.hex}
	}
	parsed := runForger(t, nodeBin, inputs)
	counts := map[expect]int{}
	for i, c := range cases {
		counts[c.expect]++
		if err := check(c, parsed[i]); err != nil {
			t.Errorf("seed %d, %s: %v\nbytes: 03%s", seed, c.name, err, c.hex)
		}
	}
	t.Logf("%d cases: %d valid, %d that octez refuses, %d refused by design", len(cases), counts[valid], counts[refused], counts[stricter])
}

// check compares Signatory's reading of c with Taquito's (p).
func check(c testCase, p result) error {
	msg, err := hex.DecodeString("03" + c.hex)
	if err != nil {
		return err
	}
	ours, ourErr := request.DecodeFull(msg, request.VersionLatest)
	if ourErr == nil {
		// The fast path (no contents) must read the same kinds.
		fast, err := request.Decode(msg, request.VersionLatest)
		if err != nil {
			return fmt.Errorf("DecodeFull accepts, Decode refuses: %v", err)
		}
		if strings.Join(fast.Ops, ",") != strings.Join(ours.Ops, ",") {
			return fmt.Errorf("Decode reads %v, DecodeFull %v", fast.Ops, ours.Ops)
		}
	}
	switch c.expect {
	case refused, stricter:
		if ourErr == nil {
			return fmt.Errorf("accepted as %v; octez %s", ours.Ops, map[expect]string{refused: "cannot read it", stricter: "reads it, but it is not canonical"}[c.expect])
		}
		return nil
	}
	if ourErr != nil {
		return fmt.Errorf("refused (%v); octez and Taquito (%s) read it", ourErr, p.errOr("ok"))
	}
	if p.Error != "" {
		return fmt.Errorf("accepted, Taquito refuses: %s", p.Error)
	}
	if len(p.Parsed.Contents) != len(ours.Contents) {
		return fmt.Errorf("%d contents, Taquito %d", len(ours.Contents), len(p.Parsed.Contents))
	}
	for i, tc := range p.Parsed.Contents {
		if err := compare(ours.Contents[i], tc); err != nil {
			js, _ := json.Marshal(tc)
			return fmt.Errorf("content %d: %v\nTaquito: %s", i, err, js)
		}
	}
	return nil
}

// compare checks one content: its kind as the protocol applies it, and every field a policy or a
// spending limit reads.
func compare(ours request.Content, tc map[string]any) error {
	str := func(k string) string { s, _ := tc[k].(string); return s }
	kind := str("kind")
	want := kind
	entrypoint := ""
	switch kind {
	case "transaction":
		entrypoint = "default"
		if p, ok := tc["parameters"].(map[string]any); ok {
			entrypoint, _ = p["entrypoint"].(string)
			if entrypoint == "" { // of_string_lax: the empty name is default (Taquito keeps "")
				entrypoint = "default"
			}
		}
		if isImplicit(str("destination")) && request.IsPseudoOp(entrypoint) {
			want = entrypoint // apply.ml dispatches a transaction to an implicit account on its entrypoint
		}
	case "ballot":
		want = "ballot:" + str("ballot")
	}
	if ours.Kind != want {
		return fmt.Errorf("kind %s, the protocol's %s", ours.Kind, want)
	}
	if ours.Entrypoint != entrypoint {
		return fmt.Errorf("entrypoint %q, the protocol's %q", ours.Entrypoint, entrypoint)
	}
	num := func(what string, got *big.Int, k string) error {
		s, present := tc[k].(string)
		if !present {
			if got != nil {
				return fmt.Errorf("%s %v, Taquito none", what, got)
			}
			return nil
		}
		// Taquito writes numbers past 10^21 in exponent notation ("1.5e+30"): compared exactly.
		want, ok := new(big.Rat).SetString(s)
		if got == nil || !ok || new(big.Rat).SetInt(got).Cmp(want) != 0 {
			return fmt.Errorf("%s %v, Taquito %s", what, got, s)
		}
		return nil
	}
	manager := tc["fee"] != nil
	if manager {
		if ours.Source != str("source") {
			return fmt.Errorf("source %s, Taquito %s", ours.Source, str("source"))
		}
		for _, f := range []struct {
			what string
			got  *big.Int
			key  string
		}{{"fee", ours.Fee, "fee"}, {"gas limit", ours.GasLimit, "gas_limit"}, {"storage limit", ours.StorageLimit, "storage_limit"}} {
			if err := num(f.what, f.got, f.key); err != nil {
				return err
			}
		}
	} else if ours.Fee != nil || ours.Source != "" {
		return fmt.Errorf("a fee (%v) or a source (%q) for a content without one", ours.Fee, ours.Source)
	}
	switch kind {
	case "transaction":
		if ours.Destination != str("destination") {
			return fmt.Errorf("destination %s, Taquito %s", ours.Destination, str("destination"))
		}
		return num("amount", ours.Amount, "amount")
	case "origination":
		if ours.Delegate != str("delegate") {
			return fmt.Errorf("delegate %q, Taquito %q", ours.Delegate, str("delegate"))
		}
		return num("balance", ours.Amount, "balance")
	case "delegation":
		if ours.Delegate != str("delegate") {
			return fmt.Errorf("delegate %q, Taquito %q", ours.Delegate, str("delegate"))
		}
	}
	if kind != "transaction" && kind != "origination" && (ours.Amount != nil || ours.Destination != "") {
		return fmt.Errorf("an amount (%v) or a destination (%q) for a %s", ours.Amount, ours.Destination, kind)
	}
	return nil
}

// readable reports whether octez can read op's numbers (operation_repr.ml): a fee, a transaction's
// amount and an origination's balance are tez, below 2^63 (tez_repr.ml); a counter, gas limit and
// storage limit are `check_size 10` naturals, below 2^70.
func readable(op map[string]any) bool {
	tez := new(big.Int).Lsh(big.NewInt(1), 63)
	n10 := new(big.Int).Lsh(big.NewInt(1), 70)
	for _, c := range op["contents"].([]any) {
		c := c.(map[string]any)
		if _, manager := c["fee"]; !manager {
			continue
		}
		bounds := map[string]*big.Int{"fee": tez, "counter": n10, "gas_limit": n10, "storage_limit": n10}
		switch c["kind"] {
		case "transaction":
			bounds["amount"] = tez
		case "origination":
			bounds["balance"] = tez
		}
		for k, limit := range bounds {
			v, ok := new(big.Int).SetString(c[k].(string), 10)
			if !ok || v.Cmp(limit) >= 0 {
				return false
			}
		}
	}
	return true
}

func isImplicit(addr string) bool {
	return len(addr) == 36 && strings.HasPrefix(addr, "tz") && addr[2] >= '1' && addr[2] <= '5'
}

// result is one answer of forger.mjs.
type result struct {
	Hex    string `json:"hex"`
	Parsed struct {
		Contents []map[string]any `json:"contents"`
	} `json:"parsed"`
	Error string `json:"error"`
}

func (r result) errOr(s string) string {
	if r.Error != "" {
		return r.Error
	}
	return s
}

// runForger runs forger.mjs on inputs (one JSON line each) and returns its answers, in order.
func runForger(t *testing.T, nodeBin string, inputs []any) []result {
	t.Helper()
	var in bytes.Buffer
	enc := json.NewEncoder(&in)
	for _, v := range inputs {
		if err := enc.Encode(v); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, nodeBin, "forger.mjs")
	cmd.Stdin = &in
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("forger.mjs: %v\n%s", err, stderr.String())
	}
	var res []result
	sc := bufio.NewScanner(&out)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	for sc.Scan() {
		var r result
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("forger.mjs answered %q: %v", sc.Text(), err)
		}
		res = append(res, r)
	}
	if len(res) != len(inputs) {
		t.Fatalf("forger.mjs answered %d lines for %d inputs\n%s", len(res), len(inputs), stderr.String())
	}
	return res
}

// gen makes random operations in Taquito's JSON and hand-built variants.
type gen struct {
	t    *testing.T
	r    *rand.Rand
	keys []crypt.PrivateKey // one of each curve; the last is BLS
}

func newGen(t *testing.T, r *rand.Rand) *gen {
	g := &gen{t: t, r: r}
	for _, c := range []tezos.Curve{tezos.Ed25519, tezos.Secp256k1, tezos.P256, tezos.BLS} {
		k, err := tezos.GenerateKey(c)
		if err != nil {
			t.Fatal(err)
		}
		g.keys = append(g.keys, k)
	}
	return g
}

func (g *gen) bytes(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(g.r.UintN(256))
	}
	return b
}

func (g *gen) branch() string {
	var h tz.BlockHash
	copy(h[:], g.bytes(32))
	return string(h.ToBase58())
}

// pkh is a random tz1…tz4 address.
func (g *gen) pkh() string {
	var b [20]byte
	copy(b[:], g.bytes(20))
	switch g.r.IntN(4) {
	case 0:
		return string((*tz.Ed25519PublicKeyHash)(&b).ToBase58())
	case 1:
		return string((*tz.Secp256k1PublicKeyHash)(&b).ToBase58())
	case 2:
		return string((*tz.P256PublicKeyHash)(&b).ToBase58())
	}
	return string((*tz.BLSPublicKeyHash)(&b).ToBase58())
}

func (g *gen) kt1() string {
	var b tz.ContractHash
	copy(b[:], g.bytes(20))
	return string(b.ToBase58())
}

// zarith is a natural of a random size: small, a few bytes, up to the largest tez (2^63 − 1),
// and now and then far beyond what the protocol reads (such an operation is expected refused).
func (g *gen) zarith() string {
	switch n := g.r.IntN(40); {
	case n < 8:
		return strconv.Itoa(g.r.IntN(128))
	case n < 16:
		return strconv.Itoa(g.r.IntN(1 << 14))
	case n < 30:
		return strconv.FormatUint(g.r.Uint64N(1<<50), 10)
	case n < 38:
		return strconv.FormatUint(g.r.Uint64N(1<<63), 10)
	case n < 39:
		return new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), 63), big.NewInt(int64(g.r.IntN(2)))).String() // 2^63 − 1 or 2^63
	}
	return new(big.Int).SetBytes(g.bytes(1 + g.r.IntN(40))).String()
}

func (g *gen) manager(kind string) map[string]any {
	return map[string]any{"kind": kind, "source": g.pkh(), "fee": g.zarith(), "counter": g.zarith(),
		"gas_limit": g.zarith(), "storage_limit": g.zarith()}
}

// name is an entrypoint name: a reserved one, or random letters of 1 to 31 bytes.
func (g *gen) name() string {
	if g.r.IntN(2) == 0 {
		return []string{"default", "root", "do", "set_delegate", "remove_delegate", "deposit", "stake",
			"unstake", "finalize_unstake", "set_delegate_parameters"}[g.r.IntN(10)]
	}
	const letters = "abcdefghijklmnopqrstuvwxyz_ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789%@."
	b := make([]byte, 1+g.r.IntN(31))
	for i := range b {
		b[i] = letters[g.r.IntN(len(letters))]
	}
	return string(b)
}

// value is a small Micheline value.
func (g *gen) value(depth int) map[string]any {
	switch n := g.r.IntN(6); {
	case n == 0 || depth > 2:
		return map[string]any{"prim": "Unit"}
	case n == 1:
		return map[string]any{"int": new(big.Int).Sub(new(big.Int).SetBytes(g.bytes(1+g.r.IntN(12))), big.NewInt(1<<20)).String()}
	case n == 2:
		return map[string]any{"string": "abc" + strconv.Itoa(g.r.IntN(1000))}
	case n == 3:
		return map[string]any{"bytes": hex.EncodeToString(g.bytes(g.r.IntN(20)))}
	}
	return map[string]any{"prim": "Pair", "args": []any{g.value(depth + 1), g.value(depth + 1)}}
}

// transaction is a transaction to an implicit account (often the source itself) or a contract,
// with or without parameters.
func (g *gen) transaction() map[string]any {
	op := g.manager("transaction")
	op["amount"] = g.zarith()
	switch g.r.IntN(3) {
	case 0:
		op["destination"] = op["source"]
	case 1:
		op["destination"] = g.pkh()
	default:
		op["destination"] = g.kt1()
	}
	if g.r.IntN(4) > 0 {
		op["parameters"] = map[string]any{"entrypoint": g.name(), "value": g.value(0)}
	}
	return op
}

func (g *gen) key() crypt.PrivateKey { return g.keys[g.r.IntN(len(g.keys))] }

// withKey sets field to a public key and, for a BLS key, proof to its proof of possession.
func (g *gen) withKey(op map[string]any, field string, k crypt.PrivateKey) map[string]any {
	op[field] = k.Public().String()
	if b, ok := k.(*crypt.BLSPrivateKey); ok {
		op["proof"] = tezos.ProvePossessionOver(b, b.Public().(*crypt.BLSPublicKey)).String()
	}
	return op
}

func (g *gen) protocolHash() string {
	var h tz.ProtocolHash
	copy(h[:], g.bytes(32))
	return string(h.ToBase58())
}

// content is one content of a random kind.
func (g *gen) content() map[string]any {
	switch g.r.IntN(13) {
	case 0, 1, 2, 3:
		return g.transaction()
	case 12:
		return g.rollupContent()
	case 4:
		return g.withKey(g.manager("reveal"), "public_key", g.key())
	case 5:
		op := g.manager("delegation")
		if g.r.IntN(3) > 0 {
			op["delegate"] = g.pkh()
		}
		return op
	case 6:
		op := g.manager("origination")
		op["balance"] = g.zarith()
		if g.r.IntN(2) == 0 {
			op["delegate"] = g.pkh()
		}
		op["script"] = map[string]any{
			"code": []any{
				map[string]any{"prim": "parameter", "args": []any{map[string]any{"prim": "unit"}}},
				map[string]any{"prim": "storage", "args": []any{map[string]any{"prim": "unit"}}},
				map[string]any{"prim": "code", "args": []any{[]any{map[string]any{"prim": "CDR"},
					map[string]any{"prim": "NIL", "args": []any{map[string]any{"prim": "operation"}}},
					map[string]any{"prim": "PAIR"}}}},
			},
			"storage": map[string]any{"prim": "Unit"},
		}
		return op
	case 7:
		op := g.manager("increase_paid_storage")
		// Taquito 25 writes this amount as a natural; octez reads a signed number
		// (operation_repr.ml, `Data_encoding.z`): the two agree below 64 only.
		op["amount"] = strconv.Itoa(1 + g.r.IntN(63))
		op["destination"] = g.kt1()
		return op
	case 8:
		return g.withKey(g.manager("update_consensus_key"), "pk", g.key())
	case 9:
		return g.withKey(g.manager("update_companion_key"), "pk", g.keys[len(g.keys)-1])
	case 10:
		op := g.manager("register_global_constant")
		op["value"] = g.value(0)
		return op
	}
	op := g.manager("transfer_ticket")
	op["ticket_contents"] = map[string]any{"string": "t"}
	op["ticket_ty"] = map[string]any{"prim": "string"}
	op["ticket_ticketer"] = g.kt1()
	op["ticket_amount"] = strconv.Itoa(1 + g.r.IntN(1000))
	op["destination"] = g.kt1()
	op["entrypoint"] = g.name()
	return op
}

// rollupContent is a smart-rollup or DAL manager operation.
func (g *gen) rollupContent() map[string]any {
	var sr tz.SmartRollupAddress
	copy(sr[:], g.bytes(len(sr)))
	switch g.r.IntN(4) {
	case 0:
		op := g.manager("smart_rollup_add_messages")
		var msgs []any
		for range 1 + g.r.IntN(3) {
			msgs = append(msgs, hex.EncodeToString(g.bytes(g.r.IntN(40))))
		}
		op["message"] = msgs
		return op
	case 1:
		op := g.manager("smart_rollup_originate")
		op["pvm_kind"] = []string{"arith", "wasm_2_0_0", "riscv"}[g.r.IntN(3)]
		op["kernel"] = hex.EncodeToString(g.bytes(g.r.IntN(64)))
		op["parameters_ty"] = map[string]any{"prim": "bytes"}
		return op
	case 2:
		var c tz.SmartRollupCommitmentHash
		copy(c[:], g.bytes(len(c)))
		op := g.manager("smart_rollup_execute_outbox_message")
		op["rollup"] = string(sr.ToBase58())
		op["cemented_commitment"] = string(c.ToBase58())
		op["output_proof"] = hex.EncodeToString(g.bytes(g.r.IntN(64)))
		return op
	}
	var c tz.DALCommitment
	copy(c[:], g.bytes(len(c)))
	op := g.manager("dal_publish_commitment")
	op["slot_header"] = map[string]any{"slot_index": g.r.IntN(32), "commitment": string(c.ToBase58()),
		"commitment_proof": hex.EncodeToString(g.bytes(96))}
	return op
}

// operation is a batch of 1 to 4 manager operations, or one operation of another kind.
func (g *gen) operation() map[string]any {
	var contents []any
	switch g.r.IntN(14) {
	case 0:
		contents = []any{map[string]any{"kind": "ballot", "source": g.pkh(), "period": g.r.IntN(1000),
			"proposal": g.protocolHash(), "ballot": []string{"yay", "nay", "pass"}[g.r.IntN(3)]}}
	case 1:
		var ps []any
		for range 1 + g.r.IntN(3) {
			ps = append(ps, g.protocolHash())
		}
		contents = []any{map[string]any{"kind": "proposals", "source": g.pkh(), "period": g.r.IntN(1000), "proposals": ps}}
	case 2:
		contents = []any{map[string]any{"kind": "drain_delegate", "consensus_key": g.pkh(), "delegate": g.pkh(), "destination": g.pkh()}}
	case 3:
		var h tz.Ed25519PublicKeyHash
		copy(h[:], g.bytes(20))
		contents = []any{map[string]any{"kind": "activate_account", "pkh": string(h.ToBase58()), "secret": hex.EncodeToString(g.bytes(20))}}
	case 4:
		contents = []any{map[string]any{"kind": "seed_nonce_revelation", "level": g.r.IntN(1 << 30), "nonce": hex.EncodeToString(g.bytes(32))}}
	case 5:
		contents = []any{map[string]any{"kind": "failing_noop", "arbitrary": hex.EncodeToString(g.bytes(g.r.IntN(100)))}}
	default:
		n := 1 + g.r.IntN(4)
		for i := range n {
			c := g.content()
			// Taquito 25 reads a proof (a BLS reveal, update_consensus_key or
			// update_companion_key) only as the payload's last bytes: its signatureV1Decoder
			// checks the bytes left in the whole payload, not the proof's length prefix.
			for _, proof := c["proof"]; proof && i < n-1; _, proof = c["proof"] {
				c = g.content()
			}
			contents = append(contents, c)
		}
	}
	return map[string]any{"branch": g.branch(), "contents": contents}
}

// zarithHex is n's encoding as a natural, in hex.
func zarithHex(n uint64) string {
	var b []byte
	for n >= 0x80 {
		b = append(b, byte(n)|0x80)
		n >>= 7
	}
	return hex.EncodeToString(append(b, byte(n)))
}

// variants are hand-built forms of transactions the protocol reads in a way a decoder may miss:
// each entrypoint written as a name (reserved names included), the empty name, the longest name
// and one byte more, tags no entrypoint has, numbers with a trailing zero byte, a presence byte
// missing at the end or written 0x01, trailing bytes.
func (g *gen) variants() []testCase {
	var out []testCase
	add := func(name, h string, e expect) { out = append(out, testCase{name: name, hex: h, expect: e}) }
	const branch = "00000000000000000000000000000000000000000000000000000000000000ff"
	tzSelf := "00" + hex.EncodeToString(make([]byte, 20)) // tz1 of 20 zero bytes: the source below
	other := "00" + hex.EncodeToString(g.bytes(20))
	kt := "01" + hex.EncodeToString(g.bytes(20)) + "00"
	unit := "00000002030b"
	// tx is a transaction from tz1(0…0) with fee, counter, gas, storage and amount, to dest,
	// with params (the hex after the destination: "00" for none).
	tx := func(fee uint64, dest, params string) string {
		return "6c" + tzSelf + zarithHex(fee) + zarithHex(7) + zarithHex(10400) + zarithHex(300) + zarithHex(1000000) + dest + params
	}
	names := []string{"default", "root", "do", "set_delegate", "remove_delegate", "deposit", "stake", "unstake",
		"finalize_unstake", "set_delegate_parameters", "mint", "Stake", "stake ", strings.Repeat("x", 31)}
	// A destination is a contract id: 0 and a key hash (itself a tag and 20 bytes), or 1, a
	// contract hash and a padding byte.
	for _, dest := range []struct{ name, hex string }{{"self", "00" + tzSelf}, {"another account", "00" + other}, {"a contract", kt}} {
		for tag := range 10 {
			add(fmt.Sprintf("tag %d to %s", tag, dest.name), branch+tx(1000, dest.hex, fmt.Sprintf("ff%02x", tag)+unit), valid)
		}
		for _, n := range names {
			add(fmt.Sprintf("named %q to %s", n, dest.name), branch+tx(1000, dest.hex, fmt.Sprintf("ffff%02x", len(n))+hex.EncodeToString([]byte(n))+unit), valid)
		}
		add("the empty name to "+dest.name, branch+tx(1000, dest.hex, "ffff00"+unit), valid)
		add("a 32-byte name to "+dest.name, branch+tx(1000, dest.hex, "ffff20"+hex.EncodeToString(bytes.Repeat([]byte("y"), 32))+unit), refused)
		for _, tag := range []int{10, 11, 100, 200, 254} {
			add(fmt.Sprintf("entrypoint tag %d to %s", tag, dest.name), branch+tx(1000, dest.hex, fmt.Sprintf("ff%02x", tag)+unit), refused)
		}
		add("presence byte 0x01 to "+dest.name, branch+tx(1000, dest.hex, "0106"+unit), stricter)
		add("presence byte 0x80 to "+dest.name, branch+tx(1000, dest.hex, "8006"+unit), stricter)
	}
	plain := tx(1000, "00"+other, "00")
	add("no parameters", branch+plain, valid)
	add("a batch of two", branch+plain+tx(5, "00"+tzSelf, "ff06"+unit), valid)
	add("the presence byte missing at the end", branch+strings.TrimSuffix(plain, "00"), refused)
	add("the presence byte missing, then another content", branch+strings.TrimSuffix(plain, "00")+tx(5, "00"+tzSelf, "00"), refused)
	add("a fee with a trailing zero byte", branch+strings.Replace(plain, zarithHex(1000), nonMinimal(zarithHex(1000)), 1), refused)
	zero := tx(0, "00"+other, "00")
	add("a zero fee written 0x80 0x00", branch+zero[:2+42]+nonMinimal("00")+zero[2+42+2:], refused)
	amount := zarithHex(1000000)
	add("an amount with two trailing zero bytes", branch+strings.Replace(plain, amount, nonMinimal(nonMinimal(amount)), 1), refused)
	for _, junk := range []string{"00", "ff", "6c", plain[:len(plain)/4*2]} {
		add("trailing bytes "+junk[:2], branch+plain+junk, refused)
	}
	return out
}

// nonMinimal is the zarith number h (hex) with one more, zero, byte: the same value, not minimal.
func nonMinimal(h string) string {
	b, err := hex.DecodeString(h)
	if err != nil || len(b) == 0 {
		panic(h)
	}
	b[len(b)-1] |= 0x80
	return hex.EncodeToString(append(b, 0))
}
