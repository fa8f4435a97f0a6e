package vault

import (
	"context"
	"errors"
	"testing"

	blst "github.com/ecadlabs/goblst"
	"github.com/ecadlabs/goblst/minpk"
	"github.com/ecadlabs/gotez/v2/crypt"

	"github.com/signatory-go/signatory/internal/tezos"
)

func digestOf(msg []byte) *[32]byte {
	d := [32]byte(crypt.DigestFunc(msg))
	return &d
}

// TestSignChecked: Ed25519 and BLS software keys check their own signatures (which verify);
// ECDSA and ML-DSA-44 keys (randomized) leave verification to the signer, so their "sign twice
// and compare" never runs; a listed public key that is not the key's, or a corrupted public half
// inside an Ed25519 private key, is a fault and releases nothing.
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
				if _, _, err := k.SignChecked(context.Background(), msg, digestOf(msg), SignOptions{Version: version}, priv.Public()); err == nil {
					t.Fatalf("%s signed with version %d", c, version)
				}
				continue
			}
			sig, checked, err := k.SignChecked(context.Background(), msg, digestOf(msg), SignOptions{Version: version}, priv.Public())
			if err != nil {
				t.Fatalf("%s: %v", c, err)
			}
			deterministic := c == tezos.Ed25519 || c == tezos.BLS
			if checked != deterministic {
				t.Fatalf("%s: checked = %v", c, checked)
			}
			if !tezos.Verify(priv.Public(), tezos.LowS(sig), msg, version) {
				t.Fatalf("%s: the signature does not verify", c)
			}
		}
		other, _ := tezos.GenerateKey(c)
		if sig, _, err := k.SignChecked(context.Background(), msg, digestOf(msg), SignOptions{Version: 2}, other.Public()); (c == tezos.Ed25519 || c == tezos.BLS) && (!errors.Is(err, ErrFault) || sig != nil) {
			t.Fatalf("%s: another listed key: %v, %v", c, sig, err)
		}
	}
	priv, _ := tezos.GenerateKey(tezos.Ed25519)
	corrupted := append(crypt.Ed25519PrivateKey(nil), priv.(crypt.Ed25519PrivateKey)...)
	corrupted[40] ^= 1 // a bit of the public half
	k := &SoftwareKey{Priv: corrupted}
	if sig, _, err := k.SignChecked(context.Background(), msg, digestOf(msg), SignOptions{}, priv.Public()); !errors.Is(err, ErrFault) || sig != nil {
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
