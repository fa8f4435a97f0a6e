package tezos

import (
	"math/big"

	"github.com/decred/dcrd/dcrec/secp256k1/v4"
	secpecdsa "github.com/decred/dcrd/dcrec/secp256k1/v4/ecdsa"
	"github.com/ecadlabs/gotez/v2/crypt"
	libsecp "github.com/ethereum/go-ethereum/crypto/secp256k1"
)

// secp256k1 verification is the most expensive check of every tz2 signature the signer releases.
// gotez's curve goes through crypto/ecdsa's generic math/big path; decred's pure-Go verification
// is faster; libsecp256k1 (Bitcoin Core's C library, through go-ethereum's maintained cgo binding)
// is about four times faster again (38 µs against 155 µs on the project's machine:
// BenchmarkSecp256k1Verify). verifySecp256k1 uses libsecp256k1; verifySecp256k1Decred is kept as
// the oracle that the tests compare it with on random and corrupted inputs. Signing stays on
// crypto/ecdsa.

// halfN is the secp256k1 group order divided by two.
var halfN = new(big.Int).Rsh(crypt.S256().Params().N, 1)

// verifySecp256k1 checks an ECDSA signature over a 32-byte digest with libsecp256k1. libsecp256k1
// accepts only low-S signatures; (r, s) and (r, n−s) are both valid ECDSA signatures of the same
// digest, so a high-S signature is checked in its low-S form, as decred (and crypto/ecdsa) accept
// both.
func verifySecp256k1(pub *crypt.ECDSAPublicKey, sig *crypt.ECDSASignature, digest []byte) bool {
	n := crypt.S256().Params().N
	if len(digest) != 32 || sig.R.Sign() <= 0 || sig.S.Sign() <= 0 || sig.R.Cmp(n) >= 0 || sig.S.Cmp(n) >= 0 ||
		pub.X.Sign() < 0 || pub.Y.Sign() < 0 || pub.X.BitLen() > 256 || pub.Y.BitLen() > 256 {
		return false
	}
	s := sig.S
	if s.Cmp(halfN) > 0 {
		s = new(big.Int).Sub(n, s)
	}
	var point [65]byte
	point[0] = 4
	pub.X.FillBytes(point[1:33])
	pub.Y.FillBytes(point[33:])
	var rs [64]byte
	sig.R.FillBytes(rs[:32])
	s.FillBytes(rs[32:])
	return libsecp.VerifySignature(point[:], digest, rs[:])
}

func scalar(x *big.Int) (secp256k1.ModNScalar, bool) {
	var s secp256k1.ModNScalar
	if x.Sign() <= 0 || x.BitLen() > 256 {
		return s, false
	}
	overflow := s.SetByteSlice(x.Bytes())
	return s, !overflow && !s.IsZero()
}

// verifySecp256k1Decred is verifySecp256k1 with decred's secp256k1: the oracle of the tests.
func verifySecp256k1Decred(pub *crypt.ECDSAPublicKey, sig *crypt.ECDSASignature, digest []byte) bool {
	if len(digest) != 32 {
		return false // the contract of both: a blake2b-256 digest
	}
	r, ok1 := scalar(sig.R)
	s, ok2 := scalar(sig.S)
	if !ok1 || !ok2 {
		return false
	}
	if pub.X.Sign() < 0 || pub.Y.Sign() < 0 || pub.X.BitLen() > 256 || pub.Y.BitLen() > 256 {
		return false
	}
	var x, y secp256k1.FieldVal
	if x.SetByteSlice(pub.X.Bytes()) || y.SetByteSlice(pub.Y.Bytes()) {
		return false
	}
	pk := secp256k1.NewPublicKey(&x, &y)
	if !pk.IsOnCurve() {
		return false
	}
	return secpecdsa.NewSignature(&r, &s).Verify(digest, pk)
}
