package vault

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha512"
	"fmt"

	"filippo.io/edwards25519"
	"filippo.io/edwards25519/field"
)

// ed25519Checked returns the Ed25519 signature (RFC 8032) of msg by priv (a 64-byte
// crypto/ed25519 private key: seed, then public key), computed twice and compared, as signTwice
// does, at one inversion less.
//
// Signing twice with crypto/ed25519 computes the nonce point R = r·B twice and encodes it twice;
// the encoding's field inversion costs nearly half of the scalar multiplication. Here every value
// of the signature is still computed twice, from the seed on, each computation independent of the
// other: the hash of the seed (the secret scalar a and the nonce prefix), the nonce r, the point
// R = r·B, the challenge k = H(R || A || msg) and S = r + k·a. Only the inversion 1/Z of R's first
// computation (X : Y : Z) is done once, and its result is checked instead of recomputed: the
// affine coordinates x = X/Z and y = Y/Z it gave must satisfy x·Z' = X' and y·Z' = Y' for the
// second computation (X' : Y' : Z') of R, whose Z' is never 0. A fault anywhere in one computation
// (the inversion included) makes them disagree, and nothing is returned: a faulty Ed25519
// signature beside a correct one of the same message would give away the secret scalar.
// crypto/ed25519 gives the same bytes (TestEd25519CheckedMatchesTheLibrary); faults injected at
// each step are caught (TestEd25519CheckedCatchesFaults).
func ed25519Checked(priv ed25519.PrivateKey, msg []byte) ([]byte, error) {
	if len(priv) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("ed25519: private key of %d bytes", len(priv))
	}
	pub := priv[32:]
	var first, second edPass
	first.nonce(priv, msg)
	var zInv, x, y field.Element
	X, Y, Z, _ := first.R.ExtendedCoordinates()
	zInv.Invert(Z)
	if edTestFaults != nil && edTestFaults.inverse != nil {
		zInv = edTestFaults.inverse(zInv)
	}
	x.Multiply(X, &zInv)
	y.Multiply(Y, &zInv)
	sig := make([]byte, 64)
	encodePoint(sig[:32], &x, &y)
	if edTestFaults != nil && edTestFaults.encoding != nil {
		edTestFaults.encoding(sig[:32])
	}
	first.finish(sig[:32], pub, msg)
	copy(sig[32:], first.S.Bytes())
	if edTestFaults != nil && edTestFaults.output != nil {
		edTestFaults.output(sig)
	}

	second.nonce(priv, msg)
	if edTestFaults != nil && edTestFaults.second != nil {
		second.R = edTestFaults.second(second.R)
	}
	X2, Y2, Z2, _ := second.R.ExtendedCoordinates()
	var xz, yz field.Element
	xz.Multiply(&x, Z2)
	yz.Multiply(&y, Z2)
	var R2 [32]byte
	encodePoint(R2[:], &x, &y)
	if xz.Equal(X2) != 1 || yz.Equal(Y2) != 1 || [32]byte(sig[:32]) != R2 {
		return nil, fmt.Errorf("%w: two computations of one deterministic signature differ", ErrFault)
	}
	second.finish(R2[:], pub, msg)
	if !bytes.Equal(sig[32:], second.S.Bytes()) {
		return nil, fmt.Errorf("%w: two computations of one deterministic signature differ", ErrFault)
	}
	return sig, nil
}

// edPass is one computation of a signature.
type edPass struct {
	a, r, S edwards25519.Scalar
	R       edwards25519.Point
}

// The scalar setters below fail only for inputs of another length (32 and 64 bytes here).

// nonce derives the secret scalar and the nonce prefix from the seed, the nonce r, and R = r·B.
func (p *edPass) nonce(priv ed25519.PrivateKey, msg []byte) {
	h := sha512.Sum512(priv[:32])
	_, _ = p.a.SetBytesWithClamping(h[:32])
	d := sha512.New()
	d.Write(h[32:])
	d.Write(msg)
	var rh [64]byte
	_, _ = p.r.SetUniformBytes(d.Sum(rh[:0]))
	p.R.ScalarBaseMult(&p.r)
}

// finish computes the challenge k = H(R || A || msg) and S = k·a + r.
func (p *edPass) finish(encR, pub, msg []byte) {
	d := sha512.New()
	d.Write(encR)
	d.Write(pub)
	d.Write(msg)
	var kh [64]byte
	var k edwards25519.Scalar
	_, _ = k.SetUniformBytes(d.Sum(kh[:0]))
	p.S.MultiplyAdd(&k, &p.a, &p.r)
	if edTestFaults != nil && edTestFaults.s != nil {
		p.S = edTestFaults.s(p.S)
	}
}

// encodePoint writes the RFC 8032 encoding of the affine point (x, y): y, little-endian, with x's
// sign in the top bit.
func encodePoint(dst []byte, x, y *field.Element) {
	copy(dst, y.Bytes())
	dst[31] |= byte(x.IsNegative() << 7)
}

// edTestFaults, set by tests only, corrupts values at steps of ed25519Checked.
var edTestFaults *edFaults

type edFaults struct {
	inverse  func(field.Element) field.Element             // the first computation's 1/Z
	encoding func([]byte)                                  // the first computation's encoded R
	output   func([]byte)                                  // the signature, once computed
	second   func(edwards25519.Point) edwards25519.Point   // the second computation's R
	s        func(edwards25519.Scalar) edwards25519.Scalar // each computation's S, in turn
}
