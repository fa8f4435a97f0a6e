package tezos

import (
	"crypto/ecdsa"
	crand "crypto/rand"
	"math/big"
	"math/rand/v2"
	"testing"

	"github.com/ecadlabs/gotez/v2/crypt"
)

// secpCase is one verification input: a public key, a signature and a digest.
type secpCase struct {
	pub    *crypt.ECDSAPublicKey
	sig    *crypt.ECDSASignature
	digest []byte
}

// agree fails t when libsecp256k1 and decred (the oracle) disagree on c, and returns the verdict.
func agree(t testing.TB, what string, c secpCase) bool {
	t.Helper()
	fast, oracle := verifySecp256k1(c.pub, c.sig, c.digest), verifySecp256k1Decred(c.pub, c.sig, c.digest)
	if fast != oracle {
		t.Fatalf("%s: libsecp256k1 says %v, decred says %v (pub %x,%x r %x s %x digest %x)",
			what, fast, oracle, c.pub.X, c.pub.Y, c.sig.R, c.sig.S, c.digest)
	}
	return fast
}

// TestSecp256k1AgreesWithDecred compares the libsecp256k1 verification with decred's on random
// valid signatures (low-S and high-S), and on each of them altered: another digest, another key,
// r or s off by one, swapped, zero, n, above n, and a public key off the curve.
func TestSecp256k1AgreesWithDecred(t *testing.T) {
	t.Parallel()
	n := crypt.S256().Params().N
	for i := range 64 {
		priv, _ := GenerateKey(Secp256k1)
		ep := (*ecdsa.PrivateKey)(priv.(*crypt.ECDSAPrivateKey))
		pub := priv.Public().(*crypt.ECDSAPublicKey)
		digest := make([]byte, 32)
		crand.Read(digest)
		r, s, err := ecdsa.Sign(crand.Reader, ep, digest)
		if err != nil {
			t.Fatal(err)
		}
		sig := &crypt.ECDSASignature{R: r, S: s, Curve: crypt.S256()}
		high := &crypt.ECDSASignature{R: r, S: new(big.Int).Sub(n, s), Curve: crypt.S256()}
		if !agree(t, "valid", secpCase{pub, sig, digest}) || !agree(t, "valid, other S", secpCase{pub, high, digest}) {
			t.Fatalf("case %d: a valid signature is refused", i)
		}
		other, _ := GenerateKey(Secp256k1)
		otherDigest := append([]byte(nil), digest...)
		otherDigest[i%32] ^= 1
		bad := []struct {
			what string
			c    secpCase
		}{
			{"other digest", secpCase{pub, sig, otherDigest}},
			{"other key", secpCase{other.Public().(*crypt.ECDSAPublicKey), sig, digest}},
			{"r+1", secpCase{pub, &crypt.ECDSASignature{R: new(big.Int).Add(r, big.NewInt(1)), S: s, Curve: crypt.S256()}, digest}},
			{"s+1", secpCase{pub, &crypt.ECDSASignature{R: r, S: new(big.Int).Add(s, big.NewInt(1)), Curve: crypt.S256()}, digest}},
			{"swapped", secpCase{pub, &crypt.ECDSASignature{R: s, S: r, Curve: crypt.S256()}, digest}},
			{"r = 0", secpCase{pub, &crypt.ECDSASignature{R: big.NewInt(0), S: s, Curve: crypt.S256()}, digest}},
			{"s = 0", secpCase{pub, &crypt.ECDSASignature{R: r, S: big.NewInt(0), Curve: crypt.S256()}, digest}},
			{"r = n", secpCase{pub, &crypt.ECDSASignature{R: n, S: s, Curve: crypt.S256()}, digest}},
			{"s + n", secpCase{pub, &crypt.ECDSASignature{R: r, S: new(big.Int).Add(s, n), Curve: crypt.S256()}, digest}},
			{"r + n", secpCase{pub, &crypt.ECDSASignature{R: new(big.Int).Add(r, n), S: s, Curve: crypt.S256()}, digest}},
			{"negative s", secpCase{pub, &crypt.ECDSASignature{R: r, S: new(big.Int).Neg(s), Curve: crypt.S256()}, digest}},
			{"off-curve key", secpCase{&crypt.ECDSAPublicKey{Curve: crypt.S256(), X: pub.X, Y: new(big.Int).Add(pub.Y, big.NewInt(1))}, sig, digest}},
			{"short digest", secpCase{pub, sig, digest[:31]}},
		}
		for _, b := range bad {
			if agree(t, b.what, b.c) {
				t.Fatalf("case %d: %s accepted", i, b.what)
			}
		}
	}
}

// FuzzSecp256k1Verify: on any key, signature and digest bytes, libsecp256k1 and decred agree.
// The seeds are valid signatures, so that mutations stay near the interesting cases.
func FuzzSecp256k1Verify(f *testing.F) {
	rng := rand.New(rand.NewPCG(1, 2))
	for range 4 {
		priv, _ := GenerateKey(Secp256k1)
		ep := (*ecdsa.PrivateKey)(priv.(*crypt.ECDSAPrivateKey))
		digest := make([]byte, 32)
		for i := range digest {
			digest[i] = byte(rng.Uint32())
		}
		r, s, _ := ecdsa.Sign(crand.Reader, ep, digest)
		pub := priv.Public().(*crypt.ECDSAPublicKey)
		f.Add(pub.X.FillBytes(make([]byte, 32)), pub.Y.FillBytes(make([]byte, 32)),
			r.FillBytes(make([]byte, 32)), s.FillBytes(make([]byte, 32)), digest)
	}
	f.Fuzz(func(t *testing.T, x, y, r, s, digest []byte) {
		c := secpCase{
			pub:    &crypt.ECDSAPublicKey{Curve: crypt.S256(), X: new(big.Int).SetBytes(x), Y: new(big.Int).SetBytes(y)},
			sig:    &crypt.ECDSASignature{R: new(big.Int).SetBytes(r), S: new(big.Int).SetBytes(s), Curve: crypt.S256()},
			digest: digest,
		}
		agree(t, "fuzz", c)
	})
}
