package tezos

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"testing"

	blst "github.com/ecadlabs/goblst"
	"github.com/ecadlabs/goblst/minpk"
	"github.com/ecadlabs/gotez/v2/crypt"
	"golang.org/x/crypto/blake2b"
)

// BenchmarkFloor measures the raw operations a sign request cannot avoid on this machine, for the
// benchmark page's ratios: the curve operation over a 32-byte digest, its verification, and
// blake2b of a typical 200-byte payload.
func BenchmarkFloor(b *testing.B) {
	digest := blake2b.Sum256([]byte("a typical payload"))
	payload := make([]byte, 200)
	b.Run("blake2b-256/200B", func(b *testing.B) {
		for b.Loop() {
			_ = blake2b.Sum256(payload)
		}
	})
	edPub, edPriv, _ := ed25519.GenerateKey(rand.Reader)
	b.Run("sign/ed25519", func(b *testing.B) {
		for b.Loop() {
			_ = ed25519.Sign(edPriv, digest[:])
		}
	})
	sig := ed25519.Sign(edPriv, digest[:])
	b.Run("verify/ed25519", func(b *testing.B) {
		for b.Loop() {
			_ = ed25519.Verify(edPub, digest[:], sig)
		}
	})
	for _, c := range []Curve{Secp256k1, P256} {
		priv, _ := GenerateKey(c)
		ep := (*ecdsa.PrivateKey)(priv.(*crypt.ECDSAPrivateKey))
		b.Run("sign/"+string(c), func(b *testing.B) {
			for b.Loop() {
				_, _, _ = ecdsa.Sign(rand.Reader, ep, digest[:])
			}
		})
		r, s, _ := ecdsa.Sign(rand.Reader, ep, digest[:])
		b.Run("verify/"+string(c), func(b *testing.B) {
			for b.Loop() {
				_ = ecdsa.Verify(&ep.PublicKey, digest[:], r, s)
			}
		})
		if c == Secp256k1 {
			pub, sig := priv.Public().(*crypt.ECDSAPublicKey), &crypt.ECDSASignature{R: r, S: s, Curve: crypt.S256()}
			b.Run("verify/secp256k1-decred", func(b *testing.B) {
				for b.Loop() {
					_ = verifySecp256k1Decred(pub, sig, digest[:])
				}
			})
			b.Run("verify/secp256k1-libsecp256k1", func(b *testing.B) {
				for b.Loop() {
					_ = verifySecp256k1(pub, sig, digest[:])
				}
			})
		}
	}
	bk, _ := minpk.GenerateKey(rand.Reader)
	b.Run("sign/bls", func(b *testing.B) {
		for b.Loop() {
			_ = minpk.Sign(bk, payload, blst.ProofOfPossession)
		}
	})
	bsig := minpk.Sign(bk, payload, blst.ProofOfPossession)
	b.Run("verify/bls", func(b *testing.B) {
		for b.Loop() {
			_ = minpk.Verify(bk.PublicKey(), payload, bsig, blst.ProofOfPossession)
		}
	})
}
