package remote

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"

	"github.com/decred/dcrd/dcrec/secp256k1/v4"
	"github.com/ecadlabs/gotez/v2/crypt"

	"github.com/signatory-go/signatory/internal/tezos"
	"github.com/signatory-go/signatory/internal/vault"
)

var (
	oidECPublicKey = asn1.ObjectIdentifier{1, 2, 840, 10045, 2, 1}
	oidP256        = asn1.ObjectIdentifier{1, 2, 840, 10045, 3, 1, 7}
	oidSecp256k1   = asn1.ObjectIdentifier{1, 3, 132, 0, 10}
	oidEd25519     = asn1.ObjectIdentifier{1, 3, 101, 112} // RFC 8410
)

// Elliptic returns the curve of a tz2 or tz3 key type.
func Elliptic(c tezos.Curve) (elliptic.Curve, error) {
	switch c {
	case tezos.P256:
		return elliptic.P256(), nil
	case tezos.Secp256k1:
		return crypt.S256(), nil
	}
	return nil, fmt.Errorf("not an ECDSA key type: %q", c)
}

// ECDSAPublicKey builds a P-256 or secp256k1 public key from its affine coordinates (big-endian,
// as in a JWK), checking that the point is on the curve.
func ECDSAPublicKey(c tezos.Curve, x, y []byte) (*crypt.ECDSAPublicKey, error) {
	if len(x) > 32 || len(y) > 32 {
		return nil, errors.New("invalid EC public key: coordinate longer than 32 bytes")
	}
	point := make([]byte, 65)
	point[0] = 4
	copy(point[33-len(x):33], x)
	copy(point[65-len(y):], y)
	return ParsePoint(c, point)
}

// ParsePoint parses an uncompressed (0x04 ‖ X ‖ Y) point on a P-256 or secp256k1 curve.
func ParsePoint(c tezos.Curve, point []byte) (*crypt.ECDSAPublicKey, error) {
	switch c {
	case tezos.P256:
		pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), point)
		if err != nil {
			return nil, fmt.Errorf("invalid P-256 public key: %w", err)
		}
		return (*crypt.ECDSAPublicKey)(pub), nil
	case tezos.Secp256k1:
		if len(point) != 65 || point[0] != 4 {
			return nil, errors.New("invalid secp256k1 public key: not an uncompressed point")
		}
		pub, err := secp256k1.ParsePubKey(point)
		if err != nil {
			return nil, fmt.Errorf("invalid secp256k1 public key: %w", err)
		}
		return &crypt.ECDSAPublicKey{Curve: crypt.S256(), X: pub.X(), Y: pub.Y()}, nil
	}
	return nil, fmt.Errorf("not an ECDSA key type: %q", c)
}

type spki struct {
	Algorithm pkix.AlgorithmIdentifier
	PublicKey asn1.BitString
}

// ParseSPKI parses a DER SubjectPublicKeyInfo holding a P-256 or secp256k1 key. The secp256k1
// OID (1.3.132.0.10) is parsed here because crypto/x509 does not know it.
func ParseSPKI(der []byte) (*crypt.ECDSAPublicKey, error) {
	var info spki
	rest, err := asn1.Unmarshal(der, &info)
	if err != nil {
		return nil, fmt.Errorf("invalid public key info: %w", err)
	}
	if len(rest) != 0 {
		return nil, errors.New("invalid public key info: trailing data")
	}
	if !info.Algorithm.Algorithm.Equal(oidECPublicKey) {
		return nil, fmt.Errorf("not an EC public key (algorithm %v)", info.Algorithm.Algorithm)
	}
	var curveOID asn1.ObjectIdentifier
	if _, err := asn1.Unmarshal(info.Algorithm.Parameters.FullBytes, &curveOID); err != nil {
		return nil, fmt.Errorf("invalid EC curve parameters: %w", err)
	}
	switch {
	case curveOID.Equal(oidP256):
		return ParsePoint(tezos.P256, info.PublicKey.RightAlign())
	case curveOID.Equal(oidSecp256k1):
		return ParsePoint(tezos.Secp256k1, info.PublicKey.RightAlign())
	}
	return nil, fmt.Errorf("unsupported EC curve %v", curveOID)
}

// ParsePEMPublicKey parses a PEM "PUBLIC KEY" block with ParseSPKI.
func ParsePEMPublicKey(data []byte) (*crypt.ECDSAPublicKey, error) {
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "PUBLIC KEY" {
		return nil, errors.New("public key is not a PEM PUBLIC KEY block")
	}
	return ParseSPKI(block.Bytes)
}

// ParsePEMSigningKey parses a PEM "PUBLIC KEY" block holding an Ed25519 (RFC 8410), P-256 or
// secp256k1 SubjectPublicKeyInfo.
func ParsePEMSigningKey(data []byte) (crypt.PublicKey, error) {
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "PUBLIC KEY" {
		return nil, errors.New("public key is not a PEM PUBLIC KEY block")
	}
	var info spki
	if rest, err := asn1.Unmarshal(block.Bytes, &info); err == nil && len(rest) == 0 && info.Algorithm.Algorithm.Equal(oidEd25519) {
		if len(info.Algorithm.Parameters.FullBytes) != 0 {
			return nil, errors.New("invalid Ed25519 public key info: parameters must be absent")
		}
		if info.PublicKey.BitLength != 8*ed25519.PublicKeySize {
			return nil, fmt.Errorf("invalid Ed25519 public key: %d bits, want %d", info.PublicKey.BitLength, 8*ed25519.PublicKeySize)
		}
		return crypt.Ed25519PublicKey(info.PublicKey.Bytes), nil
	}
	return ParseSPKI(block.Bytes)
}

// MarshalSPKI encodes a P-256 or secp256k1 public key as a DER SubjectPublicKeyInfo.
func MarshalSPKI(pub *ecdsa.PublicKey) ([]byte, error) {
	var curveOID asn1.ObjectIdentifier
	switch pub.Curve {
	case elliptic.P256():
		curveOID = oidP256
	case crypt.S256():
		curveOID = oidSecp256k1
	default:
		return nil, errors.New("unsupported curve")
	}
	params, err := asn1.Marshal(curveOID)
	if err != nil {
		return nil, err
	}
	point := make([]byte, 65)
	point[0] = 4
	// secp256k1 has no encoding in crypto/ecdsa: the coordinates are read, never set.
	//lint:ignore SA1019 see above
	pub.X.FillBytes(point[1:33])
	//lint:ignore SA1019 see above
	pub.Y.FillBytes(point[33:])
	return asn1.Marshal(spki{
		Algorithm: pkix.AlgorithmIdentifier{Algorithm: oidECPublicKey, Parameters: asn1.RawValue{FullBytes: params}},
		PublicKey: asn1.BitString{Bytes: point, BitLength: 8 * len(point)},
	})
}

type derSignature struct{ R, S *big.Int }

// SignatureFromDER parses an ASN.1 DER ECDSA signature (SEQUENCE{r, s}) on the curve.
// The signature is returned as is; the signer normalises it to low-S.
func SignatureFromDER(der []byte, c tezos.Curve) (*crypt.ECDSASignature, error) {
	curve, err := Elliptic(c)
	if err != nil {
		return nil, err
	}
	var sig derSignature
	rest, err := asn1.Unmarshal(der, &sig)
	if err != nil {
		return nil, fmt.Errorf("invalid DER signature: %w", err)
	}
	if len(rest) != 0 {
		return nil, errors.New("invalid DER signature: trailing data")
	}
	return checkRS(sig.R, sig.S, curve)
}

// MarshalDER encodes r and s as an ASN.1 DER ECDSA signature.
func MarshalDER(r, s *big.Int) ([]byte, error) { return asn1.Marshal(derSignature{r, s}) }

// SignatureFromRaw parses a 64-byte r ‖ s ECDSA signature (JWS form) on the curve.
func SignatureFromRaw(rs []byte, c tezos.Curve) (*crypt.ECDSASignature, error) {
	curve, err := Elliptic(c)
	if err != nil {
		return nil, err
	}
	if len(rs) != 64 {
		return nil, fmt.Errorf("%w: %d bytes, want 64 (r ‖ s)", vault.ErrInvalidSignature, len(rs))
	}
	return checkRS(new(big.Int).SetBytes(rs[:32]), new(big.Int).SetBytes(rs[32:]), curve)
}

func checkRS(r, s *big.Int, curve elliptic.Curve) (*crypt.ECDSASignature, error) {
	n := curve.Params().N
	if r.Sign() <= 0 || s.Sign() <= 0 || r.Cmp(n) >= 0 || s.Cmp(n) >= 0 {
		return nil, fmt.Errorf("%w: r or s out of range", vault.ErrInvalidSignature)
	}
	return &crypt.ECDSASignature{R: r, S: s, Curve: curve}, nil
}
