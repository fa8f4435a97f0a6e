package tezos

import (
	"math/big"

	"github.com/decred/dcrd/dcrec/secp256k1/v4"
	secpecdsa "github.com/decred/dcrd/dcrec/secp256k1/v4/ecdsa"
	"github.com/ecadlabs/gotez/v2/crypt"
)

// Verifying over gotez's secp256k1 curve goes through crypto/ecdsa's generic math/big path;
// decred's native implementation is faster (BenchmarkFloor: 129 µs against 171 µs on the project's
// machine). Signing stays on crypto/ecdsa, which is faster than decred's RFC 6979 signing.

func scalar(x *big.Int) (secp256k1.ModNScalar, bool) {
	var s secp256k1.ModNScalar
	if x.Sign() <= 0 || x.BitLen() > 256 {
		return s, false
	}
	overflow := s.SetByteSlice(x.Bytes())
	return s, !overflow && !s.IsZero()
}

// verifySecp256k1 checks an ECDSA signature over a 32-byte digest with decred's secp256k1.
func verifySecp256k1(pub *crypt.ECDSAPublicKey, sig *crypt.ECDSASignature, digest []byte) bool {
	r, ok1 := scalar(sig.R)
	s, ok2 := scalar(sig.S)
	if !ok1 || !ok2 {
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
