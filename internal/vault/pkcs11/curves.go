package pkcs11

import (
	"crypto/ed25519"
	"crypto/elliptic"
	"encoding/asn1"
	"fmt"

	"github.com/ecadlabs/gotez/v2/crypt"
	p11 "github.com/miekg/pkcs11"

	"github.com/signatory-go/signatory/internal/tezos"
	"github.com/signatory-go/signatory/internal/vault/remote"
)

// PKCS#11 3.0 names the binding (miekg/pkcs11 v1.1.2) does not define.
const (
	ckkECEdwards           = 0x40
	ckmECEdwardsKeyPairGen = 0x1055
	ckmEdDSA               = 0x1057
)

var (
	oidP256      = asn1.ObjectIdentifier{1, 2, 840, 10045, 3, 1, 7}
	oidSecp256k1 = asn1.ObjectIdentifier{1, 3, 132, 0, 10}
	oidEd25519   = asn1.ObjectIdentifier{1, 3, 101, 112}
)

// curveParams maps CKA_EC_PARAMS to a curve. Ed25519 may be named by the PrintableString
// "edwards25519" (PKCS#11 3.0, SoftHSM, OpenSC) or by its OID (RFC 8410). name describes an
// unsupported curve for messages.
func curveParams(params []byte) (c tezos.Curve, name string) {
	var oid asn1.ObjectIdentifier
	if rest, err := asn1.Unmarshal(params, &oid); err == nil && len(rest) == 0 {
		switch {
		case oid.Equal(oidP256):
			return tezos.P256, "P-256"
		case oid.Equal(oidSecp256k1):
			return tezos.Secp256k1, "secp256k1"
		case oid.Equal(oidEd25519):
			return tezos.Ed25519, "Ed25519"
		}
		if n, ok := otherCurves[oid.String()]; ok {
			return "", n
		}
		return "", "OID " + oid.String()
	}
	var s string
	if rest, err := asn1.Unmarshal(params, &s); err == nil && len(rest) == 0 {
		if s == "edwards25519" {
			return tezos.Ed25519, "Ed25519"
		}
		return "", s
	}
	return "", "explicit or unreadable EC parameters"
}

var otherCurves = map[string]string{
	"1.3.132.0.34": "P-384", "1.3.132.0.35": "P-521", "1.3.101.113": "Ed448",
	"1.3.36.3.3.2.8.1.1.7": "brainpoolP256r1",
}

// ecParams returns the CKA_EC_PARAMS to create a key on c; Ed25519 has two accepted forms.
func ecParams(c tezos.Curve) [][]byte {
	mustOID := func(oid asn1.ObjectIdentifier) []byte { b, _ := asn1.Marshal(oid); return b }
	switch c {
	case tezos.P256:
		return [][]byte{mustOID(oidP256)}
	case tezos.Secp256k1:
		return [][]byte{mustOID(oidSecp256k1)}
	case tezos.Ed25519:
		printable, _ := asn1.MarshalWithParams("edwards25519", "printable")
		return [][]byte{printable, mustOID(oidEd25519)}
	}
	return nil
}

// keyType and mechanism are the CKA_KEY_TYPE and the signing mechanism of a curve.
func keyType(c tezos.Curve) uint {
	if c == tezos.Ed25519 {
		return ckkECEdwards
	}
	return p11.CKK_EC
}

func mechanism(c tezos.Curve) uint {
	if c == tezos.Ed25519 {
		return ckmEdDSA
	}
	return p11.CKM_ECDSA
}

func ellipticCurve(c tezos.Curve) elliptic.Curve {
	if c == tezos.P256 {
		return elliptic.P256()
	}
	return crypt.S256()
}

// parsePoint reads CKA_EC_POINT: a DER OCTET STRING around the point (the standard), or the bare
// point (some modules). ECDSA points may be uncompressed or compressed.
func parsePoint(c tezos.Curve, raw []byte) (crypt.PublicKey, error) {
	valid := func(n int) bool {
		if c == tezos.Ed25519 {
			return n == ed25519.PublicKeySize
		}
		return n == 65 || n == 33
	}
	pt := raw
	var inner []byte
	if rest, err := asn1.Unmarshal(raw, &inner); err == nil && len(rest) == 0 && valid(len(inner)) {
		pt = inner
	}
	if !valid(len(pt)) {
		return nil, fmt.Errorf("CKA_EC_POINT of %d bytes is not a %s public key", len(raw), c)
	}
	if c == tezos.Ed25519 {
		return crypt.Ed25519PublicKey(append([]byte(nil), pt...)), nil
	}
	curve := ellipticCurve(c)
	if len(pt) == 33 {
		pub, err := crypt.UnmarshalECDSAPublicKey(pt, curve)
		if err != nil {
			return nil, fmt.Errorf("CKA_EC_POINT is not a point on %s", c)
		}
		return pub, nil
	}
	if pt[0] != 4 {
		return nil, fmt.Errorf("CKA_EC_POINT has an unknown point format 0x%02x", pt[0])
	}
	pub, err := remote.ParsePoint(c, pt)
	if err != nil {
		return nil, fmt.Errorf("CKA_EC_POINT is not a point on %s", c)
	}
	return pub, nil
}

// encodePoint is the CKA_EC_POINT of pub: a DER OCTET STRING around the uncompressed point or
// the 32-byte Ed25519 key.
func encodePoint(pub crypt.PublicKey) []byte {
	var pt []byte
	switch k := pub.(type) {
	case crypt.Ed25519PublicKey:
		pt = k
	case *crypt.ECDSAPublicKey:
		pt = make([]byte, 65)
		pt[0] = 4
		k.X.FillBytes(pt[1:33])
		k.Y.FillBytes(pt[33:])
	}
	b, _ := asn1.Marshal(pt)
	return b
}

// signature turns a token's signature into a Tezos one. ECDSA signatures may come as raw r‖s
// (the PKCS#11 format) or DER; they are returned as the token made them (the signer normalises
// them to low-S, as for every vault).
func signature(c tezos.Curve, raw []byte) (crypt.Signature, error) {
	if c == tezos.Ed25519 {
		if len(raw) != ed25519.SignatureSize {
			return nil, fmt.Errorf("the token returned a %d-byte Ed25519 signature", len(raw))
		}
		return crypt.Ed25519Signature(append([]byte(nil), raw...)), nil
	}
	parse := remote.SignatureFromDER
	if len(raw) == 64 {
		parse = remote.SignatureFromRaw
	}
	sig, err := parse(raw, c)
	if err != nil {
		return nil, fmt.Errorf("the token returned a %d-byte ECDSA signature: %w", len(raw), err)
	}
	return sig, nil
}
