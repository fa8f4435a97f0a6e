package request

import (
	"bytes"
	"encoding/hex"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/ecadlabs/gotez/v2/b58"

	"github.com/signatory-go/signatory/internal/fault"
	tv "github.com/signatory-go/signatory/internal/testvectors"
)

func TestDecodeReferenceVectors(t *testing.T) {
	t.Parallel()
	ph := tv.LoadPolicyHex()
	d := tv.LoadDerived()
	type want struct {
		kind         Kind
		chain        string
		level, round int32
		slot         int32
		tag          uint8
		ops          []string
	}
	cases := []struct {
		name string
		hex  string
		want want
	}{
		// P1..P5 (request_test.go of the reference)
		{"P1 preattestation", "12ed9d217c2f50673bab6b20dfb0a88ca93b4a0c72a34c807af5dffbece2cba3d2b509835f14006000000002000000041f1ebb39759cc957216f88fb4d005abc206fb00a53f8d57ac01be00c084cba97",
			want{kind: Preattestation, chain: "NetXxkAx4woPLyu", level: 2, round: 4, slot: 96, tag: 20}},
		{"P2 attestation", ph["endorsement ok"], want{kind: Attestation, chain: "NetXxkAx4woPLyu", level: 20877, round: 0, slot: 18, tag: 21}},
		{"P3 block", ph["block ok"], want{kind: Block, chain: "NetXxkAx4woPLyu", level: 20878, round: 0, slot: -1}},
		{"P4 transaction", ph["generic ok"], want{kind: Generic, slot: -1, ops: []string{"transaction"}}},
		{"C6 delegation", ph["delegation ok"], want{kind: Generic, slot: -1, ops: []string{"delegation"}}},
		{"C8 origination", ph["origination ok"], want{kind: Generic, slot: -1, ops: []string{"origination"}}},
		{"C10 reveal+delegation", ph["reveal not allowed"], want{kind: Generic, slot: -1, ops: []string{"reveal", "delegation"}}},
		{"C12 increase_paid_storage", ph["increase paid storage not allowed"], want{kind: Generic, slot: -1, ops: []string{"increase_paid_storage"}}},
		{"C13 vdf", ph["VDF Revelation ok"], want{kind: Generic, slot: -1, ops: []string{"vdf_revelation"}}},
		{"C14 update_consensus_key", tv.WithProofAbsent(ph["Update consensus key"]), want{kind: Generic, slot: -1, ops: []string{"update_consensus_key"}}},
		{"C15 drain_delegate", ph["Drain delegate"], want{kind: Generic, slot: -1, ops: []string{"drain_delegate"}}},
		{"C16 reveal+delegation+ucK", tv.WithProofAbsent(ph["Delegate with consesus key"]), want{kind: Generic, slot: -1, ops: []string{"reveal", "delegation", "update_consensus_key"}}},
		{"C17 pack", d.Pack, want{kind: Pack, slot: -1}},
		{"C18 stake", d.Constructed["stake"], want{kind: Generic, slot: -1, ops: []string{"stake"}}},
		{"C19 ballot nay", d.Constructed["ballot_nay"], want{kind: Generic, slot: -1, ops: []string{"ballot:nay"}}},
		{"C20 ballot yay", d.Constructed["ballot_yay"], want{kind: Generic, slot: -1, ops: []string{"ballot:yay"}}},
		{"W A1", d.W["A1"], want{kind: Block, chain: "NetXo5iVw1vBoxM", level: 2, round: 0, slot: -1}},
		{"W B1", d.W["B1"], want{kind: Block, chain: "NetXo5iVw1vBoxM", level: 7, round: 2, slot: -1}},
		{"W C1", d.W["C1"], want{kind: Block, chain: "NetXo5iVw1vBoxM", level: 34, round: 4, slot: -1}},
		{"W C2", d.W["C2"], want{kind: Preattestation, chain: "NetXo5iVw1vBoxM", level: 34, round: 4, slot: 20, tag: 20}},
		{"W C3", d.W["C3"], want{kind: Attestation, chain: "NetXo5iVw1vBoxM", level: 34, round: 4, slot: 21, tag: 21}},
		{"tag 41", d.DerivedPayloads["bls_attestation_tag41"], want{kind: Attestation, chain: "NetXo5iVw1vBoxM", level: 34, round: 4, slot: -1, tag: 41}},
		{"tag 40", d.DerivedPayloads["bls_preattestation_tag40"], want{kind: Preattestation, chain: "NetXo5iVw1vBoxM", level: 34, round: 4, slot: -1, tag: 40}},
		{"tag 23", d.DerivedPayloads["attestation_with_dal_tag23"], want{kind: AttestationWithDAL, chain: "NetXo5iVw1vBoxM", level: 34, round: 4, slot: 21, tag: 23}},
		{"auth msg", d.Auth.Msg, want{kind: Generic, slot: -1, ops: []string{"transaction"}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.hex == "" {
				t.Fatal("missing vector")
			}
			req, err := Decode(tv.Hex(c.hex), VersionLatest)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			got := want{kind: req.Kind, chain: req.ChainID(), level: req.Level, round: req.Round, slot: req.Slot, tag: req.Tag, ops: req.Ops}
			if got.kind != c.want.kind || got.chain != c.want.chain || got.level != c.want.level ||
				got.round != c.want.round || got.slot != c.want.slot || got.tag != c.want.tag || !slices.Equal(got.ops, c.want.ops) {
				t.Fatalf("got %+v, want %+v", got, c.want)
			}
		})
	}
}

func TestDigestMatchesReferenceHashes(t *testing.T) {
	t.Parallel()
	d := tv.LoadDerived()
	check := func(name, payload, hash string) {
		req, err := Decode(tv.Hex(payload), VersionLatest)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		want, err := b58.ParseBlockPayloadHash([]byte(hash))
		if err != nil {
			t.Fatal(err)
		}
		if req.Digest != *want {
			t.Errorf("%s: digest %x, want %s", name, req.Digest, hash)
		}
	}
	for name, h := range d.WHash {
		check(name, d.W[name], h)
	}
	for name, h := range d.DerivedHash {
		check(name, d.DerivedPayloads[name], h)
	}
}

func TestWatermarkClass(t *testing.T) {
	t.Parallel()
	d := tv.LoadDerived()
	for name, want := range map[string]Kind{
		"attestation_with_dal_tag23": AttestationWithDAL, // shares attestation's watermark class (watermark.ClassOf)
		"bls_attestation_tag41":      Attestation,
		"bls_preattestation_tag40":   Preattestation,
	} {
		req, err := Decode(tv.Hex(d.DerivedPayloads[name]), VersionLatest)
		if err != nil {
			t.Fatal(err)
		}
		if req.Kind != want {
			t.Errorf("%s: kind %q, want %q", name, req.Kind, want)
		}
	}
}

func TestDecodeErrors(t *testing.T) {
	t.Parallel()
	d := tv.LoadDerived()
	ph := tv.LoadPolicyHex()
	cases := []struct {
		name, hex, contains string
	}{
		{"empty", "", "empty"},
		{"legacy block", "01ed9d217c", "legacy"},
		{"legacy endorsement N1", "02ed9d217c1eb156f3fd57a942ee8d53781c849220309d5d2928c64672fd1c87359174e4360000001035", "legacy"},
		{"authentication prefix", "0401006b82", "authentication"},
		{"unknown magic", "07aabbcc", "unknown magic byte 0x07"},
		{"unknown magic ff", "ff", "unknown magic byte 0xff"},
		{"pack empty", "05", "empty"},
		{"generic branch too short N3", "03123453", "generic"},
		{"generic no contents", "03" + strings.Repeat("00", 32), "no contents"},
		{"generic unknown op tag", "03" + strings.Repeat("00", 32) + "07", "generic"},
		{"generic consensus tag inside", "03" + strings.Repeat("00", 32) + "15" + strings.Repeat("00", 42), "generic"},
		{"block truncated", d.W["A1"][:100], "block"},
		{"block trailing byte", d.W["A1"] + "00", "trailing"},
		{"attestation trailing", d.W["C3"] + "ff", "trailing"},
		{"preattestation truncated", d.W["C2"][:60], "preattestation"},
		{"attestation unknown tag", d.W["C3"][:74] + "16" + d.W["C3"][76:], "attestation"},
		{"generic truncated", ph["generic ok"][:len(ph["generic ok"])-4], "generic"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			msg, err := hex.DecodeString(c.hex)
			if err != nil {
				t.Fatal(err)
			}
			req, err := Decode(msg, VersionLatest)
			if err == nil {
				t.Fatalf("decoded %+v, want error", req)
			}
			if fault.KindOf(err) != fault.BadRequest {
				t.Errorf("kind %v, want BadRequest", fault.KindOf(err))
			}
			if !strings.Contains(err.Error(), c.contains) {
				t.Errorf("error %q does not contain %q", err, c.contains)
			}
		})
	}
}

func TestBlockRoundFromFitnessNotPayloadRound(t *testing.T) {
	t.Parallel()
	// A1 with its fitness round (last 4 bytes of the fitness) changed to 9 and its payload round left at 0.
	a1 := tv.LoadDerived().W["A1"]
	fit := "0000000400000000" + "ecbf5c99" // round len + round, followed by the context hash start
	i := strings.Index(a1, fit)
	if i < 0 {
		t.Fatal("fitness round not found")
	}
	changed := a1[:i] + "0000000400000009" + a1[i+16:]
	req, err := Decode(tv.Hex(changed), VersionLatest)
	if err != nil {
		t.Fatal(err)
	}
	if req.Round != 9 {
		t.Fatalf("round %d, want 9 (from the fitness)", req.Round)
	}
	// A fitness too short to be Tenderbake's gives no round: the block is refused, never read
	// with a round of 0 or of whatever its last bytes say.
	short := make([]byte, 32)
	short[31] = 7
	if r, err := FitnessRound(short); fault.KindOf(err) != fault.BadRequest || r != 0 {
		t.Fatalf("a 32-byte fitness: round %d, %v", r, err)
	}
	if req, err := block(MagicBlock, nil, 5, short, nil); fault.KindOf(err) != fault.BadRequest || req != nil {
		t.Fatalf("a block with a 32-byte fitness: %+v, %v", req, err)
	}
}

func TestValidOpKind(t *testing.T) {
	t.Parallel()
	for _, k := range []string{"transaction", "delegation", "origination", "reveal", "stake", "unstake",
		"finalize_unstake", "set_delegate_parameters", "ballot", "ballot:yay", "ballot:nay", "ballot:pass",
		"update_companion_key", "signature_prefix", "dal_entrapment_evidence", "attestations_aggregate"} {
		if !ValidOpKind(k) {
			t.Errorf("%s should be valid", k)
		}
	}
	for _, k := range []string{"attestation", "preattestation", "attestation_with_dal", "ballot:invalid",
		"transaction:foo", "endorsement", "invalid_op", ""} {
		if ValidOpKind(k) {
			t.Errorf("%s should be invalid", k)
		}
	}
}

// TestContentsGenericOnly: spending-limit contents are read from generic operations only; a
// block, a consensus operation or an empty message is refused, never read as no contents.
func TestContentsGenericOnly(t *testing.T) {
	t.Parallel()
	d := tv.LoadDerived()
	for name, msg := range map[string][]byte{"block": tv.Hex(d.W["A1"]), "attestation": tv.Hex(d.W["C3"]), "empty": nil} {
		if c, err := Contents(msg, VersionLatest); err == nil || !strings.Contains(err.Error(), "generic operations only") {
			t.Errorf("%s: %v %v", name, c, err)
		}
	}
	if c, err := Contents(tv.Hex(tv.LoadPolicyHex()["transaction ok"]), VersionLatest); err != nil || len(c) == 0 {
		t.Fatalf("a transaction: %v %v", c, err)
	}
}

// TestTruncatedSaysSo: a generic operation cut short is refused as truncated, one with a wrong
// byte as invalid, so a client can tell which.
func TestTruncatedSaysSo(t *testing.T) {
	t.Parallel()
	msg := tv.Hex(tv.LoadPolicyHex()["transaction ok"])
	if _, err := DecodeFull(msg[:len(msg)-3], VersionLatest); err == nil || !strings.Contains(err.Error(), "truncated generic operation payload") {
		t.Fatalf("cut short: %v", err)
	}
	bad := bytes.Clone(msg)
	bad[1+32] = 0xfe // an unknown operation tag
	if _, err := DecodeFull(bad, VersionLatest); err == nil || !strings.Contains(err.Error(), "invalid generic operation payload") {
		t.Fatalf("a wrong tag: %v", err)
	}
}

// TestOpCounts: the operations counted for metrics are a generic request's, by kind, and a block's
// or consensus operation's own kind once.
func TestOpCounts(t *testing.T) {
	t.Parallel()
	d := tv.LoadDerived()
	for name, c := range map[string]struct {
		msg  []byte
		want map[string]int
	}{
		"attestation": {tv.Hex(d.W["C3"]), map[string]int{"attestation": 1}},
		"block":       {tv.Hex(d.W["A1"]), map[string]int{"block": 1}},
		"two transactions": {append(unitTransaction(0), unitTransaction(0)[33:]...),
			map[string]int{"transaction": 2}},
		"stake and a transaction": {append(unitTransaction(6), unitTransaction(0)[33:]...),
			map[string]int{"stake": 1, "transaction": 1}},
	} {
		req, err := Decode(c.msg, VersionLatest)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if got := req.OpCounts(); !maps.Equal(got, c.want) {
			t.Errorf("%s: %v, want %v", name, got, c.want)
		}
	}
}

// TestField: a field is read only from a struct (through any pointers or interfaces), by its
// exported name and type; anything else is no field.
func TestField(t *testing.T) {
	t.Parallel()
	type op struct {
		Fee    int
		hidden int
	}
	var nilOp *op
	var iface any = &op{Fee: 7}
	if v, ok := field[int](&iface, "Fee"); !ok || v != 7 {
		t.Fatalf("through a pointer to an interface: %v %v", v, ok)
	}
	for name, c := range map[string]struct {
		op   any
		name string
	}{
		"not a struct": {42, "Fee"}, "a nil pointer": {nilOp, "Fee"}, "nil": {nil, "Fee"},
		"no such field": {&op{}, "Amount"}, "unexported": {&op{hidden: 1}, "hidden"},
	} {
		if v, ok := field[int](c.op, c.name); ok || v != 0 {
			t.Errorf("%s: %v %v", name, v, ok)
		}
	}
	if v, ok := field[string](&op{Fee: 7}, "Fee"); ok || v != "" {
		t.Fatalf("another type: %q %v", v, ok)
	}
}
