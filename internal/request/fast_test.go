package request

import (
	"encoding/hex"
	"slices"
	"testing"

	tv "github.com/signatory-go/signatory/internal/testvectors"
)

// gotezOps decodes msg with gotez only (the oracle).
func gotezOps(msg []byte) ([]string, error) {
	req, err := decodeLatest(msg, false)
	if err != nil {
		return nil, err
	}
	return req.Ops, nil
}

// checkFast fails t when fastGeneric answers for msg and gotez does not agree.
func checkFast(t *testing.T, msg []byte) (answered bool) {
	t.Helper()
	ops, ok := fastGeneric(msg)
	if !ok {
		return false
	}
	want, err := gotezOps(msg)
	if err != nil {
		t.Fatalf("%x: the fast path accepted %v, gotez refuses: %v", msg, ops, err)
	}
	if !slices.Equal(ops, want) {
		t.Fatalf("%x: the fast path says %v, gotez %v", msg, ops, want)
	}
	return true
}

// fastSeeds are generic operations of the fast path's shape and near it.
func fastSeeds() [][]byte {
	var out [][]byte
	tx := func(tag byte) []byte { return unitTransaction(tag) }
	out = append(out, tx(0), tx(6), tx(7), tx(8), tx(9), tx(5), tx(200))
	out = append(out, namedTransaction("stake"), namedTransaction(""), namedTransaction("default"))
	plain := unitTransaction(0)
	plain = append(plain[:len(plain)-8], 0) // parameters: none
	out = append(out, plain)
	out = append(out, plain[:len(plain)-1]) // parameters absent at the end: not canonical
	long := append([]byte(nil), plain...)
	long[33+1+21] = 0x81 // fee: 0x81 0x00, a trailing zero byte: not canonical
	long = append(long[:33+1+21+1], append([]byte{0}, long[33+1+21+1:]...)...)
	out = append(out, long)
	opt := unitTransaction(6)
	opt[len(opt)-8] = 0x01 // parameters present, said with 0x01: not canonical
	out = append(out, opt)
	two := append(append([]byte(nil), plain...), plain[33:]...)
	out = append(out, two)
	kt := append([]byte(nil), plain...)
	kt[33+1+21+5] = 1 // destination: originated (KT1), 20 bytes and a padding byte follow
	out = append(out, kt)
	for _, h := range tv.LoadPolicyHex() {
		if b, err := hex.DecodeString(h); err == nil && len(b) > 0 && b[0] == MagicGeneric {
			out = append(out, b)
		}
	}
	return out
}

// TestFastGenericAgreesWithGotez: on the seeds, and on every one-byte change and every truncation
// of them, the fast path either declines or agrees with gotez; and it does answer for the plain
// shapes it is for.
func TestFastGenericAgreesWithGotez(t *testing.T) {
	t.Parallel()
	answered := 0
	for _, seed := range fastSeeds() {
		if checkFast(t, seed) {
			answered++
		}
		for i := range seed {
			for _, v := range []byte{0, 1, 2, 3, 4, 5, 0x7f, 0x80, 0xff, seed[i] ^ 1} {
				m := append([]byte(nil), seed...)
				m[i] = v
				checkFast(t, m)
			}
			checkFast(t, seed[:i])
		}
	}
	if answered < 6 {
		t.Fatalf("the fast path answered for %d seeds only", answered)
	}
	for _, tag := range []byte{6, 7, 8, 9} {
		ops, ok := fastGeneric(unitTransaction(tag))
		if !ok || len(ops) != 1 || ops[0] == "transaction" {
			t.Fatalf("entrypoint %d: %v %v, want its pseudo kind", tag, ops, ok)
		}
	}
}

// FuzzFastGeneric: whatever the input, the fast path either declines or agrees with gotez.
func FuzzFastGeneric(f *testing.F) {
	for _, s := range fastSeeds() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, msg []byte) {
		checkFast(t, msg)
	})
}

// TestPseudoOperationsByDestination: a transaction to the stake (or unstake, …) entrypoint of an
// implicit account is that operation, whoever the source (the protocol's apply.ml dispatches on
// the entrypoint: finalize_unstake of another account succeeds, stake to another fails); to a
// contract (which may name an entrypoint "stake") it is a plain transaction; for gotez's decoder
// and the fast path alike, so that `allow: generic: [transaction]` cannot pass a stake and
// `[stake]` cannot pass a transfer to a contract labelled "stake".
func TestPseudoOperationsByDestination(t *testing.T) {
	for tag, ep := range shortEntrypoints {
		self := unitTransaction(byte(tag))
		other := append([]byte{}, self...)
		other[1+32+1+1+20+5+2] = 0x01 // the destination's hash differs from the source's
		kt := append([]byte{}, self...)
		kt[1+32+1+1+20+5] = 0x01 // destination: KT1 (20 bytes, a padding byte)
		kt = append(kt[:1+32+1+1+20+5+1+20], append([]byte{0}, kt[1+32+1+1+20+5+1+21:]...)...)
		want := "transaction"
		if IsPseudoOp(ep) {
			want = ep
		}
		for name, c := range map[string]struct {
			msg  []byte
			kind string
		}{"self": {self, want}, "other": {other, want}, "contract": {kt, "transaction"}} {
			slow, err := decodeLatest(c.msg, false)
			if err != nil {
				t.Fatalf("%s to %s: %v", ep, name, err)
			}
			fast, ok := fastGeneric(c.msg)
			if !ok || len(fast) != 1 || fast[0] != c.kind || len(slow.Ops) != 1 || slow.Ops[0] != c.kind {
				t.Fatalf("entrypoint %s to %s: fast %v (%v), gotez %v, want %s", ep, name, fast, ok, slow.Ops, c.kind)
			}
			cs, err := Contents(c.msg, VersionLatest)
			if err != nil || len(cs) != 1 || cs[0].Kind != c.kind || cs[0].Entrypoint != ep {
				t.Fatalf("contents of %s to %s: %+v %v", ep, name, cs, err)
			}
		}
	}
}

// unitTransaction is a generic operation with one transaction to entrypoint tag with Unit.
func unitTransaction(tag byte) []byte {
	msg := make([]byte, 0, 80)
	msg = append(msg, MagicGeneric)
	msg = append(msg, make([]byte, 32)...)            // branch
	msg = append(msg, tagTransaction, 0)              // transaction, tz1 source
	msg = append(msg, make([]byte, 20)...)            //
	msg = append(msg, 1, 1, 1, 1, 0)                  // fee, counter, gas, storage, amount
	msg = append(msg, 0, 0)                           // destination: tz1
	msg = append(msg, make([]byte, 20)...)            //
	msg = append(msg, 0xff, tag, 0, 0, 0, 2, 3, 0x0b) // parameters: tag, Unit
	return msg
}

// namedTransaction is unitTransaction with its entrypoint written as a name (tag 255).
func namedTransaction(name string) []byte {
	msg := unitTransaction(0)
	msg = msg[:len(msg)-7]
	msg = append(msg, 0xff, byte(len(name)))
	msg = append(msg, name...)
	return append(msg, 0, 0, 0, 2, 3, 0x0b)
}
