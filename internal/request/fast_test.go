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
	plain := unitTransaction(0)
	plain = append(plain[:len(plain)-8], 0) // parameters: none
	out = append(out, plain)
	out = append(out, plain[:len(plain)-1]) // parameters absent at the end
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

// TestPseudoOperationsOnlyToSelf: a transaction to the stake (or unstake, …) entrypoint is the
// pseudo operation only from an account to itself; to another account (a contract may have an
// entrypoint of that number) it is a plain transaction, for gotez's decoder and the fast path
// alike, so that `allow: generic: [stake]` or limits on transactions cannot be passed by a
// transfer to someone else labelled "stake".
func TestPseudoOperationsOnlyToSelf(t *testing.T) {
	for tag := range 255 {
		self := unitTransaction(byte(tag))
		want, ok := entrypointKind(byte(tag))
		if !ok {
			continue
		}
		other := append([]byte{}, self...)
		other[1+32+1+1+20+5+2] = 0x01 // the destination's hash differs from the source's
		for name, c := range map[string]struct {
			msg  []byte
			kind string
		}{"self": {self, want}, "other": {other, "transaction"}} {
			slow, err := decodeLatest(c.msg, false)
			if err != nil {
				t.Fatal(err)
			}
			fast, ok := fastGeneric(c.msg)
			if !ok || len(fast) != 1 || fast[0] != c.kind || len(slow.Ops) != 1 || slow.Ops[0] != c.kind {
				t.Fatalf("entrypoint %d to %s: fast %v (%v), gotez %v, want %s", tag, name, fast, ok, slow.Ops, c.kind)
			}
		}
		if want == "stake" {
			cs, err := Contents(other, VersionLatest)
			if err != nil || cs[0].Kind != "transaction" || cs[0].Destination == cs[0].Source {
				t.Fatalf("contents of a stake-entrypoint transfer to another account: %+v %v", cs, err)
			}
		}
	}
}
