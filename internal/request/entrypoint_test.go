package request

import (
	"encoding/hex"
	"math/big"
	"slices"
	"strings"
	"testing"

	"github.com/signatory-go/signatory/internal/fault"
)

// TestNamedEntrypointsReadAsProtocol: an entrypoint written as a name (tag 255) is the
// protocol's entrypoint of that name (Entrypoint_repr.smart_encoding reads it with
// of_string_lax): the name "stake" is tag 6, the empty name and "default" are tag 0. Whichever
// encoding a client picks, the policy sees the same kind and spending limits the same entrypoint.
func TestNamedEntrypointsReadAsProtocol(t *testing.T) {
	t.Parallel()
	for tag, ep := range shortEntrypoints {
		short, err := DecodeFull(unitTransaction(byte(tag)), VersionLatest)
		if err != nil {
			t.Fatalf("tag %d: %v", tag, err)
		}
		names := []string{ep}
		if ep == "default" {
			names = append(names, "")
		}
		for _, name := range names {
			for _, full := range []bool{false, true} {
				req, err := decode(namedTransaction(name), VersionLatest, full)
				if err != nil {
					t.Fatalf("named %q: %v", name, err)
				}
				if len(req.Ops) != 1 || req.Ops[0] != short.Ops[0] {
					t.Fatalf("named %q reads as %v, tag %d as %v", name, req.Ops, tag, short.Ops)
				}
				if full && (req.Contents[0].Entrypoint != ep || req.Contents[0].Kind != short.Contents[0].Kind) {
					t.Fatalf("named %q: contents %+v, want entrypoint %s", name, req.Contents[0], ep)
				}
			}
		}
	}
	// A name that is not reserved is itself.
	req, err := DecodeFull(namedTransaction("mint"), VersionLatest)
	if err != nil || req.Ops[0] != "transaction" || req.Contents[0].Entrypoint != "mint" {
		t.Fatalf("named mint: %+v %v", req, err)
	}
}

// TestEntrypointLength: the protocol reads names of at most 31 bytes; a longer one is refused
// (400) by every path, whatever the policy.
func TestEntrypointLength(t *testing.T) {
	t.Parallel()
	ok := strings.Repeat("a", MaxEntrypointLen)
	for _, full := range []bool{false, true} {
		if _, err := decode(namedTransaction(ok), VersionLatest, full); err != nil {
			t.Fatalf("a %d-byte name: %v", len(ok), err)
		}
		for _, n := range []int{MaxEntrypointLen + 1, 100, 255} {
			_, err := decode(namedTransaction(strings.Repeat("a", n)), VersionLatest, full)
			if fault.KindOf(err) != fault.BadRequest || !strings.Contains(err.Error(), "entrypoint name") {
				t.Fatalf("a %d-byte name: %v, want a bad request", n, err)
			}
		}
	}
	for _, name := range []string{"", "default", "stake", ok} {
		if got, err := Entrypoint(name); err != nil || got == "" {
			t.Fatalf("Entrypoint(%q) = %q, %v", name, got, err)
		}
	}
}

// TestNonCanonicalRefused: forms gotez reads but does not write (a trailing zero byte in a
// number, a missing presence byte at the end, a presence byte of 0x01) are refused by both
// paths; the canonical form of the same operation is accepted.
func TestNonCanonicalRefused(t *testing.T) {
	t.Parallel()
	plain := unitTransaction(0)
	plain = append(plain[:len(plain)-8], 0) // no parameters
	if _, err := Decode(plain, VersionLatest); err != nil {
		t.Fatalf("canonical: %v", err)
	}
	fee := 33 + 1 + 21
	trailingZero := append(append(append([]byte(nil), plain[:fee]...), 0x81, 0x00), plain[fee+1:]...)
	presence01 := unitTransaction(6)
	presence01[len(presence01)-8] = 0x01
	missing := plain[:len(plain)-1]
	for name, msg := range map[string][]byte{"trailing zero": trailingZero, "presence 0x01": presence01, "presence missing": missing} {
		if _, ok := fastGeneric(msg); ok {
			t.Fatalf("%s: the fast path accepts it", name)
		}
		for _, v := range []Version{0, 1, 2, VersionLatest} {
			for _, full := range []bool{false, true} {
				if _, err := decode(msg, v, full); fault.KindOf(err) != fault.BadRequest {
					t.Fatalf("%s (version %d, full %v): %v, want a bad request", name, v, full, err)
				}
			}
		}
	}
}

// zarithOf is n's minimal encoding as a natural.
func zarithOf(n *big.Int) []byte {
	var out []byte
	n = new(big.Int).Set(n)
	for {
		b := byte(new(big.Int).And(n, big.NewInt(0x7f)).Uint64())
		n.Rsh(n, 7)
		if n.Sign() == 0 {
			return append(out, b)
		}
		out = append(out, b|0x80)
	}
}

// transfer is a generic operation with one transaction of the given numbers to a tz1 account,
// without parameters.
func transfer(fee, counter, gas, storage, amount *big.Int) []byte {
	msg := append([]byte{MagicGeneric}, make([]byte, 32)...)
	msg = append(msg, tagTransaction, 0)
	msg = append(msg, make([]byte, 20)...)
	for _, n := range []*big.Int{fee, counter, gas, storage, amount} {
		msg = append(msg, zarithOf(n)...)
	}
	msg = append(msg, 0, 0)
	msg = append(msg, make([]byte, 20)...)
	return append(msg, 0)
}

// TestNumberSizes: the protocol reads fee, counter, gas and storage limits of at most 10 bytes,
// and a fee or an amount below 2^63 (tez_repr.ml); anything larger is refused by both paths.
func TestNumberSizes(t *testing.T) {
	t.Parallel()
	one := big.NewInt(1)
	maxTez := new(big.Int).Sub(new(big.Int).Lsh(one, 63), one) // 2^63 − 1: 9 bytes
	tooBigTez := new(big.Int).Lsh(one, 63)                     // 10 bytes
	maxN := new(big.Int).Sub(new(big.Int).Lsh(one, 70), one)   // 10 bytes
	tooBigN := new(big.Int).Lsh(one, 70)                       // 11 bytes
	for _, c := range []struct {
		name string
		msg  []byte
		ok   bool
	}{
		{"every number at its largest", transfer(maxTez, maxN, maxN, maxN, maxTez), true},
		{"a fee of 2^63", transfer(tooBigTez, one, one, one, one), false},
		{"an amount of 2^63", transfer(one, one, one, one, tooBigTez), false},
		{"a counter of 11 bytes", transfer(one, tooBigN, one, one, one), false},
		{"a gas limit of 11 bytes", transfer(one, one, tooBigN, one, one), false},
		{"a storage limit of 11 bytes", transfer(one, one, one, tooBigN, one), false},
	} {
		for _, v := range []Version{1, VersionLatest} {
			for _, full := range []bool{false, true} {
				_, err := decode(c.msg, v, full)
				if c.ok != (err == nil) || err != nil && fault.KindOf(err) != fault.BadRequest {
					t.Errorf("%s (version %d, full %v): %v", c.name, v, full, err)
				}
			}
		}
		if _, ok := fastGeneric(c.msg); ok != c.ok {
			t.Errorf("%s: the fast path says %v", c.name, ok)
		}
	}
}

// TestOneSpelling: a ballot value the protocol does not know, a contract's padding byte other
// than 0 and a Micheline integer written -0 are refused: each is a second spelling of an
// operation, or none.
func TestOneSpelling(t *testing.T) {
	t.Parallel()
	ballot := func(v byte) []byte {
		msg := append([]byte{MagicGeneric}, make([]byte, 32)...)
		msg = append(msg, 6, 0)                     // ballot, tz1 source
		msg = append(msg, make([]byte, 20+4+32)...) // hash, period, proposal
		return append(msg, v)
	}
	for v := range byte(3) {
		if _, err := Decode(ballot(v), VersionLatest); err != nil {
			t.Fatalf("ballot %d: %v", v, err)
		}
	}
	if _, err := Decode(ballot(3), VersionLatest); fault.KindOf(err) != fault.BadRequest {
		t.Fatalf("ballot 3: %v", err)
	}
	kt := transfer(big.NewInt(1), big.NewInt(1), big.NewInt(1), big.NewInt(1), big.NewInt(1))
	dst := len(kt) - 23
	kt[dst] = 1 // destination: KT1, 20 bytes, padding
	if _, err := Decode(kt, VersionLatest); err != nil {
		t.Fatalf("a contract destination: %v", err)
	}
	kt[len(kt)-2] = 7 // the padding byte
	if _, ok := fastGeneric(kt); ok {
		t.Fatal("the fast path accepts a padding byte of 7")
	}
	for _, full := range []bool{false, true} {
		if _, err := decode(kt, VersionLatest, full); fault.KindOf(err) != fault.BadRequest {
			t.Fatalf("a padding byte of 7: %v", err)
		}
	}
	minusZero := namedTransaction("mint")
	minusZero = append(minusZero[:len(minusZero)-6], 0, 0, 0, 2, 0x00, 0x40) // the value: the integer -0
	if _, err := Decode(minusZero, VersionLatest); fault.KindOf(err) != fault.BadRequest {
		t.Fatalf("the integer -0: %v", err)
	}
	minusZero[len(minusZero)-1] = 0 // 0
	if _, err := Decode(minusZero, VersionLatest); err != nil {
		t.Fatalf("the integer 0: %v", err)
	}
}

// TestVersion1ReadAsLive: under signing version 1, a generic operation that protocol 022's
// encoding and the live one read differently is refused: 022's reveal followed by 0x11 and 96
// bytes reads as a reveal and a failing_noop, the live protocol's as a reveal with a proof.
func TestVersion1ReadAsLive(t *testing.T) {
	t.Parallel()
	reveal := append([]byte{MagicGeneric}, make([]byte, 32)...)
	reveal = append(reveal, 107, 0) // reveal, tz1 source
	reveal = append(reveal, make([]byte, 20)...)
	reveal = append(reveal, 1, 1, 1, 1) // fee, counter, gas, storage
	reveal = append(reveal, 0)          // an Ed25519 public key
	reveal = append(reveal, make([]byte, 32)...)
	ambiguous := append(append(append([]byte{}, reveal...), 0x11, 0, 0, 0, 0x60), make([]byte, 96)...)
	if _, err := Decode(ambiguous, 1); fault.KindOf(err) != fault.BadRequest || !strings.Contains(err.Error(), "read differently") {
		t.Fatalf("version 1: %v", err)
	}
	// 022's reveal then a transaction, which the live encoding cannot read at all (it takes the
	// transaction's tag for the presence of a proof, and runs out of bytes), keeps its 022
	// reading under version 1, and is refused under the live one.
	only022 := append(append([]byte{}, reveal...), unitTransaction(0)[33:]...)
	if req, err := Decode(only022, 1); err != nil || !slices.Equal(req.Ops, []string{"reveal", "transaction"}) {
		t.Fatalf("022's reveal and a transaction under version 1: %+v %v", req, err)
	}
	if _, err := Decode(only022, VersionLatest); fault.KindOf(err) != fault.BadRequest {
		t.Fatalf("022's reveal and a transaction under the live version: %v", err)
	}
	// Its 022 reading is held to 022's canonical encoding: a fee written 0x81 0x00 (a trailing
	// zero byte) is refused (with the live encoding's error: version 1 tries it when 022's fails).
	padded := append(append([]byte{}, only022[:1+32+1+21]...), 0x81, 0x00)
	padded = append(padded, only022[1+32+1+21+1:]...)
	if _, err := Decode(padded, 1); fault.KindOf(err) != fault.BadRequest {
		t.Fatalf("022's reading of a fee with a trailing zero byte: %v", err)
	}
	// The same reveal, canonical for the live protocol (no proof), is accepted under both.
	live := append(append([]byte{}, reveal...), 0)
	for _, v := range []Version{1, VersionLatest} {
		if req, err := Decode(live, v); err != nil || req.Ops[0] != "reveal" {
			t.Fatalf("version %d: %+v %v", v, req, err)
		}
	}
}

// TestOriginationContents: what spending limits see of an origination is its balance (moved out
// of the account) and the delegate it gives the new contract. The payload was forged by Taquito's
// LocalForger (protocol 024), which reads it back as balance 123456789 and that delegate.
func TestOriginationContents(t *testing.T) {
	t.Parallel()
	const forged = "038fcf233671b6a04fcf679d2a381c2544ea6c1ea29ba6157776ed8424c7ccd00b6d0002298c03ed7d454a101eb7022bc95f7e5f41ac78d80a07e807f403959aef3aff00e7670f32038107a59a2b9cfefae36ea21f5aa63c0000001c02000000170500036c0501036c050202000000080317053d036d034200000002030b"
	msg, err := hex.DecodeString(forged)
	if err != nil {
		t.Fatal(err)
	}
	cs, err := Contents(msg, VersionLatest)
	if err != nil || len(cs) != 1 {
		t.Fatalf("%+v %v", cs, err)
	}
	c := cs[0]
	if c.Kind != "origination" || c.Amount == nil || c.Amount.Int64() != 123456789 || c.Delegate != "tz1gjaF81ZRRvdzjobyfVNsAeSC6PScjfQwN" ||
		c.Source != "tz1KqTpEZ7Yob7QbPE4Hy4Wo8fHG8LhKxZSx" || c.Fee.Int64() != 1368 || c.StorageLimit.Int64() != 500 || c.GasLimit.Int64() != 1000 {
		t.Fatalf("%+v", c)
	}
	// The same origination with a balance of 2^63 mutez, which the protocol cannot read (tez).
	balance := hex.EncodeToString(zarithOf(big.NewInt(123456789)))
	huge := hex.EncodeToString(zarithOf(new(big.Int).Lsh(big.NewInt(1), 63)))
	if !strings.Contains(forged, balance) {
		t.Fatal("the balance is not where the test looks")
	}
	over, _ := hex.DecodeString(strings.Replace(forged, balance, huge, 1))
	if _, err := Contents(over, VersionLatest); fault.KindOf(err) != fault.BadRequest {
		t.Fatalf("a balance of 2^63: %v", err)
	}
}

// TestShortestPack: packed data of one byte after the magic byte is a pack request; the magic
// byte alone is refused.
func TestShortestPack(t *testing.T) {
	t.Parallel()
	if req, err := Decode([]byte{MagicPack, 0x00}, VersionLatest); err != nil || req.Kind != Pack {
		t.Fatalf("%+v %v", req, err)
	}
	if _, err := Decode([]byte{MagicPack}, VersionLatest); fault.KindOf(err) != fault.BadRequest {
		t.Fatalf("the magic byte alone: %v", err)
	}
}
