package vault

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"testing"

	"filippo.io/edwards25519"
	"filippo.io/edwards25519/field"

	tv "github.com/signatory-go/signatory/internal/testvectors"
)

// TestEd25519CheckedMatchesTheLibrary: ed25519Checked gives crypto/ed25519's bytes for random
// keys and messages of every length up to 300 bytes, and the RFC 8032 vectors' keys sign as there.
func TestEd25519CheckedMatchesTheLibrary(t *testing.T) {
	t.Parallel()
	for i := range 600 {
		_, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		msg := make([]byte, i/2)
		rand.Read(msg)
		got, err := ed25519Checked(priv, msg)
		if err != nil {
			t.Fatal(err)
		}
		if want := ed25519.Sign(priv, msg); !bytes.Equal(got, want) {
			t.Fatalf("key %x message %x: %x, crypto/ed25519 %x", priv.Seed(), msg, got, want)
		}
	}
	// RFC 8032, 7.1, TEST 1 (empty message) and TEST 2 (one byte).
	for _, v := range []struct{ seed, msg, sig string }{
		{"9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60", "",
			"e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"},
		{"4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb", "72",
			"92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00"},
	} {
		priv := ed25519.NewKeyFromSeed(tv.Hex(v.seed))
		got, err := ed25519Checked(priv, tv.Hex(v.msg))
		if err != nil || !bytes.Equal(got, tv.Hex(v.sig)) {
			t.Fatalf("RFC 8032 vector %s: %x %v", v.seed, got, err)
		}
	}
	if _, err := ed25519Checked(make([]byte, 32), nil); err == nil {
		t.Fatal("a 32-byte private key signed")
	}
}

// TestEd25519CheckedCatchesFaults: a fault at any step of either computation, the shared
// inversion included, returns ErrFault and no signature. Not parallel: the faults are global.
func TestEd25519CheckedCatchesFaults(t *testing.T) {
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	msg := []byte("\x13attestation")
	var one field.Element
	one.One()
	flip := func(b []byte) { b[7] ^= 0x10 }
	for name, f := range map[string]*edFaults{
		"inverse": {inverse: func(z field.Element) field.Element {
			var w field.Element
			return *w.Add(&z, &one)
		}},
		"second R": {second: func(p edwards25519.Point) edwards25519.Point {
			var q edwards25519.Point
			return *q.Add(&p, edwards25519.NewGeneratorPoint())
		}},
		"second R negated": {second: func(p edwards25519.Point) edwards25519.Point {
			var q edwards25519.Point
			return *q.Negate(&p)
		}},
		"first R's encoding": {encoding: flip},
		"first R's sign bit": {encoding: func(b []byte) { b[31] ^= 0x80 }},
		"R in the output":    {output: flip},
		"S in the output":    {output: func(b []byte) { b[40] ^= 1 }},
		"first S":            faultS(1, flip),
		"second S":           faultS(2, flip),
	} {
		edTestFaults = f
		sig, err := ed25519Checked(priv, msg)
		edTestFaults = nil
		if !errors.Is(err, ErrFault) || sig != nil {
			t.Fatalf("%s: %x, %v", name, sig, err)
		}
	}
	// A fault that leaves the value as it was is no fault: the check passes.
	edTestFaults = &edFaults{inverse: func(z field.Element) field.Element { return z }}
	sig, err := ed25519Checked(priv, msg)
	edTestFaults = nil
	if err != nil || !bytes.Equal(sig, ed25519.Sign(priv, msg)) {
		t.Fatalf("no fault: %x, %v", sig, err)
	}
}

// faultS corrupts the n-th computation's S (1 or 2).
func faultS(n int, flip func([]byte)) *edFaults {
	calls := 0
	return &edFaults{s: func(s edwards25519.Scalar) edwards25519.Scalar {
		calls++
		if calls != n {
			return s
		}
		b := s.Bytes()
		flip(b)
		var out edwards25519.Scalar
		if _, err := out.SetCanonicalBytes(b); err != nil {
			panic(err)
		}
		return out
	}}
}

func BenchmarkEd25519Checked(b *testing.B) {
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	msg := make([]byte, 32)
	b.Run("sign-twice", func(b *testing.B) {
		for b.Loop() {
			s1 := ed25519.Sign(priv, msg)
			s2 := ed25519.Sign(priv, msg)
			if !bytes.Equal(s1, s2) {
				b.Fatal("differ")
			}
		}
	})
	b.Run("checked", func(b *testing.B) {
		for b.Loop() {
			if _, err := ed25519Checked(priv, msg); err != nil {
				b.Fatal(err)
			}
		}
	})
}
