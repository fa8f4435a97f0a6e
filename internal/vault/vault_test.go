package vault

import (
	"bytes"
	"errors"
	"testing"

	"github.com/decred/dcrd/dcrec/secp256k1/v4"
	dcrecdsa "github.com/decred/dcrd/dcrec/secp256k1/v4/ecdsa"
	blst "github.com/ecadlabs/goblst"
	"github.com/ecadlabs/goblst/minpk"
	"github.com/ecadlabs/gotez/v2/crypt"

	"github.com/signatory-go/signatory/internal/tezos"
)

func digestOf(msg []byte) *[32]byte {
	d := [32]byte(crypt.DigestFunc(msg))
	return &d
}

// TestSignChecked: Ed25519, BLS and ECDSA software keys (ECDSA with RFC 6979 nonces) check their
// own signatures (which verify, ECDSA's low-S); ML-DSA-44 keys (randomized) leave verification to
// the signer, so their "sign twice and compare" never runs; a listed public key that is not the
// key's, or a corrupted public half inside an Ed25519 private key, is a fault and releases
// nothing.
func TestSignChecked(t *testing.T) {
	t.Parallel()
	msg := []byte("\x03payload")
	for _, c := range tezos.Curves {
		priv, err := tezos.GenerateKey(c)
		if err != nil {
			t.Fatal(err)
		}
		k := &SoftwareKey{Priv: priv}
		for _, version := range []int{1, 2, 3} {
			if tezos.CheckVersion(c, version) != nil {
				if _, _, err := k.SignChecked(t.Context(), msg, digestOf(msg), SignOptions{Version: version}, priv.Public()); err == nil {
					t.Fatalf("%s signed with version %d", c, version)
				}
				continue
			}
			sig, checked, err := k.SignChecked(t.Context(), msg, digestOf(msg), SignOptions{Version: version}, priv.Public())
			if err != nil {
				t.Fatalf("%s: %v", c, err)
			}
			deterministic := c != tezos.MLDSA44
			if checked != deterministic {
				t.Fatalf("%s: checked = %v", c, checked)
			}
			if !tezos.Verify(priv.Public(), sig, msg, version) || !tezos.IsLowS(sig) {
				t.Fatalf("%s: the signature does not verify, or is high-S", c)
			}
			if deterministic {
				again, _ := k.Sign(t.Context(), msg, digestOf(msg), SignOptions{Version: version})
				if !bytes.Equal(signatureBytes(again), signatureBytes(sig)) {
					t.Fatalf("%s: two signatures of one message differ", c)
				}
			}
		}
		other, _ := tezos.GenerateKey(c)
		if sig, _, err := k.SignChecked(t.Context(), msg, digestOf(msg), SignOptions{Version: 2}, other.Public()); c != tezos.MLDSA44 && (!errors.Is(err, ErrFault) || sig != nil) {
			t.Fatalf("%s: another listed key: %v, %v", c, sig, err)
		}
	}
	priv, _ := tezos.GenerateKey(tezos.Ed25519)
	corrupted := append(crypt.Ed25519PrivateKey(nil), priv.(crypt.Ed25519PrivateKey)...)
	corrupted[40] ^= 1 // a bit of the public half
	k := &SoftwareKey{Priv: corrupted}
	if sig, _, err := k.SignChecked(t.Context(), msg, digestOf(msg), SignOptions{}, priv.Public()); !errors.Is(err, ErrFault) || sig != nil {
		t.Fatalf("corrupted public half: %v, %v", sig, err)
	}
}

// TestSignTwiceCatchesADifference: when the two computations differ (a transient fault in one),
// nothing is returned.
func TestSignTwiceCatchesADifference(t *testing.T) {
	t.Parallel()
	priv, _ := tezos.GenerateKey(tezos.BLS)
	sk := (*minpk.PrivateKey)(priv.(*crypt.BLSPrivateKey))
	n := 0
	faulty := func() (crypt.Signature, error) {
		n++
		msg := []byte("\x03payload")
		if n == 2 {
			msg = []byte("\x03paylaod") // the second computation went wrong
		}
		return (*crypt.BLSSignature)(minpk.Sign(sk, msg, blst.ProofOfPossession)), nil
	}
	if sig, err := signTwice(faulty); !errors.Is(err, ErrFault) || sig != nil {
		t.Fatalf("%v, %v", sig, err)
	}
	ed := func() (crypt.Signature, error) { return crypt.Ed25519Signature(make([]byte, 64)), nil }
	if sig, err := signTwice(ed); err != nil || sig == nil {
		t.Fatalf("identical signatures refused: %v", err)
	}
	ecdsa := func() (crypt.Signature, error) { return &crypt.ECDSASignature{}, nil }
	if _, err := signTwice(ecdsa); !errors.Is(err, ErrFault) {
		t.Fatalf("a scheme without a byte form passed: %v", err)
	}
}

// TestECDSADeterministic: in-process ECDSA signatures use RFC 6979 nonces: secp256k1's are
// decred's (the library's own deterministic signer, which Bitcoin's tools share), P-256's are
// crypto/ecdsa's deterministic mode over the Blake2b-256 digest; both are the same bytes for the
// same key and digest, differ between digests and keys, verify, and are low-S for 200 digests
// each (about half of P-256's raw signatures are high-S: normalised).
func TestECDSADeterministic(t *testing.T) {
	t.Parallel()
	for _, c := range []tezos.Curve{tezos.Secp256k1, tezos.P256} {
		priv, _ := tezos.GenerateKey(c)
		other, _ := tezos.GenerateKey(c)
		k, o := &SoftwareKey{Priv: priv}, &SoftwareKey{Priv: other}
		seen := map[string]bool{}
		for i := range 200 {
			msg := []byte{0x03, byte(i), byte(i >> 8)}
			a, err := k.Sign(t.Context(), msg, digestOf(msg), SignOptions{Version: 2})
			if err != nil {
				t.Fatal(err)
			}
			b, _ := k.Sign(t.Context(), msg, digestOf(msg), SignOptions{Version: 2})
			x, _ := o.Sign(t.Context(), msg, digestOf(msg), SignOptions{Version: 2})
			ab := string(signatureBytes(a))
			if ab != string(signatureBytes(b)) || ab == string(signatureBytes(x)) || seen[ab] {
				t.Fatalf("%s, digest %d: not one signature per key and digest", c, i)
			}
			seen[ab] = true
			if !tezos.Verify(priv.Public(), a, msg, 2) || !tezos.IsLowS(a) {
				t.Fatalf("%s, digest %d: does not verify, or high-S", c, i)
			}
		}
	}
	// secp256k1's is decred's signer's own answer.
	priv, _ := tezos.GenerateKey(tezos.Secp256k1)
	msg := []byte("\x03payload")
	d := digestOf(msg)
	sig, _ := (&SoftwareKey{Priv: priv}).Sign(t.Context(), msg, d, SignOptions{Version: 2})
	var sk secp256k1.ModNScalar
	sk.SetByteSlice(priv.(*crypt.ECDSAPrivateKey).D.Bytes())
	want := dcrecdsa.Sign(secp256k1.NewPrivateKey(&sk), d[:])
	r, s := want.R(), want.S()
	rb, sb := r.Bytes(), s.Bytes()
	if !bytes.Equal(signatureBytes(sig), append(rb[:], sb[:]...)) {
		t.Fatal("the secp256k1 signature is not decred's RFC 6979 signature")
	}
}
