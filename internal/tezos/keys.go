// Package tezos holds what the encoding library (gotez) lacks for a signer: curve names, key
// generation, secret-key encryption as octez-client does it, low-S normalisation, verification
// by signing version, and tz5 (ML-DSA-44) keys as octez has them.
package tezos

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha512"
	"errors"
	"fmt"
	"math/big"
	"strconv"
	"strings"

	blst "github.com/ecadlabs/goblst"
	"github.com/ecadlabs/goblst/minpk"
	tz "github.com/ecadlabs/gotez/v2"
	"github.com/ecadlabs/gotez/v2/b58"
	"github.com/ecadlabs/gotez/v2/b58/prefix"
	"github.com/ecadlabs/gotez/v2/crypt"
	"golang.org/x/crypto/nacl/secretbox"
	"golang.org/x/crypto/pbkdf2"
)

// Curve names a key type.
type Curve string

const (
	Ed25519   Curve = "ed25519"   // tz1
	Secp256k1 Curve = "secp256k1" // tz2
	P256      Curve = "p256"      // tz3
	BLS       Curve = "bls"       // tz4
	MLDSA44   Curve = "mldsa44"   // tz5: ML-DSA-44, not an elliptic curve; signing version 3 only
)

// Curves lists every supported curve (key type).
var Curves = []Curve{Ed25519, Secp256k1, P256, BLS, MLDSA44}

// ParseCurve accepts a curve name or the address prefix (tz1…tz5), case-insensitively.
func ParseCurve(s string) (Curve, error) {
	switch strings.ToLower(s) {
	case "ed25519", "tz1":
		return Ed25519, nil
	case "secp256k1", "tz2":
		return Secp256k1, nil
	case "p256", "p-256", "secp256r1", "tz3":
		return P256, nil
	case "bls", "bls12-381", "tz4":
		return BLS, nil
	case "mldsa44", "ml-dsa-44", "tz5":
		return MLDSA44, nil
	}
	return "", fmt.Errorf("unknown key type %q (want ed25519|tz1, secp256k1|tz2, p256|tz3, bls|tz4 or mldsa44|tz5)", s)
}

// CurveOf returns the curve of a public key.
func CurveOf(pub crypt.PublicKey) Curve {
	switch k := pub.(type) {
	case crypt.Ed25519PublicKey:
		return Ed25519
	case *crypt.BLSPublicKey:
		return BLS
	case *MLDSA44PublicKey:
		return MLDSA44
	case *crypt.ECDSAPublicKey:
		if k.Curve == elliptic.P256() {
			return P256
		}
		return Secp256k1
	}
	return ""
}

// GenerateKey makes a new random secret key on the curve.
func GenerateKey(c Curve) (crypt.PrivateKey, error) {
	switch c {
	case Ed25519:
		_, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, err
		}
		return crypt.Ed25519PrivateKey(priv), nil
	case Secp256k1, P256:
		curve := elliptic.Curve(crypt.S256())
		if c == P256 {
			curve = elliptic.P256()
		}
		priv, err := ecdsa.GenerateKey(curve, rand.Reader)
		if err != nil {
			return nil, err
		}
		return (*crypt.ECDSAPrivateKey)(priv), nil
	case BLS:
		priv, err := minpk.GenerateKey(rand.Reader)
		if err != nil {
			return nil, err
		}
		return (*crypt.BLSPrivateKey)(priv), nil
	case MLDSA44:
		return generateMLDSA44()
	}
	return nil, fmt.Errorf("unknown key type %q", c)
}

// ErrWrongPassword is returned when an encrypted secret key does not open with the password.
var ErrWrongPassword = errors.New("wrong password: the encrypted secret key cannot be decrypted")

// ErrNoPassword is returned when an encrypted key is met and no password source is available.
var ErrNoPassword = errors.New("the secret key is encrypted and no password was given")

// IsEncrypted reports whether s looks like an encrypted secret key (edesk, spesk, p2esk, BLesk,
// mdesk).
func IsEncrypted(s string) bool {
	for _, p := range []string{"edesk", "spesk", "p2esk", "BLesk", "mdesk"} {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}

// ParseSecretKey parses a plain (edsk, spsk, p2sk, BLsk, mdsk) or encrypted (edesk, spesk, p2esk,
// BLesk, mdesk) base58 secret key. password is called only for an encrypted key; it may be nil.
// Errors never contain the key or the password.
func ParseSecretKey(s string, password func() ([]byte, error)) (crypt.PrivateKey, error) {
	s = strings.TrimSpace(s)
	max := limit(s, "mdsk", MLDSA44SecretKeyLength)
	if strings.HasPrefix(s, "mdesk") {
		max = MLDSA44EncryptedSecretKeyLength
	}
	if len(s) > max {
		return nil, fmt.Errorf("invalid secret key: %d characters is too long", len(s))
	}
	if strings.HasPrefix(s, "mdsk") && len(s) == MLDSA44SecretKeyLength {
		payload, ok := decodeTZ(s, &prefix.MLDSA44SecretKey) // gotez's decoder takes 20 ms here
		if !ok {
			return nil, errors.New("invalid secret key: not a valid mdsk (bad checksum or length)")
		}
		defer clear(payload)
		priv, err := NewMLDSA44PrivateKey(payload)
		if err != nil {
			return nil, fmt.Errorf("invalid secret key: %w", err)
		}
		return priv, nil
	}
	enc, err := b58.ParseEncryptedPrivateKey([]byte(s))
	if err != nil {
		return nil, fmt.Errorf("invalid secret key: %s", scrub(err))
	}
	if IsEncrypted(s) && password == nil {
		return nil, ErrNoPassword
	}
	raw, err := enc.Decrypt(password)
	if err != nil {
		if errors.Is(err, tz.ErrPrivateKeyDecrypt) {
			return nil, ErrWrongPassword
		}
		return nil, fmt.Errorf("cannot decrypt secret key: %s", scrub(err))
	}
	if md, ok := raw.(*tz.MLDSA44PrivateKey); ok {
		defer clear(md[:])
		priv, err := NewMLDSA44PrivateKey(md[:])
		if err != nil {
			return nil, fmt.Errorf("invalid secret key: %w", err)
		}
		return priv, nil
	}
	priv, err := crypt.NewPrivateKey(raw)
	if err != nil {
		return nil, fmt.Errorf("invalid secret key: %s", scrub(err))
	}
	return priv, nil
}

// scrub keeps an error message from the encoding library, which never includes the input.
func scrub(err error) string { return strings.TrimPrefix(err.Error(), "gotez: ") }

const (
	encIterations = 32768
	encKeyLen     = 32
	saltLen       = 8
)

// secretBytes returns a copy of a secret key's raw bytes, the payload of its base58 form (edsk:
// the 32-byte seed; spsk, p2sk: the 32-byte scalar; BLsk: the little-endian scalar; mdsk: the
// signing and verification keys). The caller clears it.
func secretBytes(priv crypt.PrivateKey) ([]byte, error) {
	switch k := priv.ToProtocol().(type) { // a fresh copy of the secret
	case *tz.Ed25519PrivateKey:
		return k[:], nil
	case *tz.Secp256k1PrivateKey:
		return k[:], nil
	case *tz.P256PrivateKey:
		return k[:], nil
	case *tz.BLSPrivateKey:
		return k[:], nil
	case *tz.MLDSA44PrivateKey:
		return k[:], nil
	default:
		return nil, fmt.Errorf("no raw form for a %T", k)
	}
}

// EncryptSecretKey encrypts priv as octez-client does: salt (8 bytes) ‖ NaCl secretbox with a zero
// nonce under PBKDF2-HMAC-SHA512(password, salt, 32768 iterations, 32 bytes).
func EncryptSecretKey(priv crypt.PrivateKey, password []byte) (string, error) {
	plain, err := secretBytes(priv)
	if err != nil {
		return "", fmt.Errorf("cannot encrypt: %w", err)
	}
	defer clear(plain)
	salt := make([]byte, saltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", err
	}
	var key [32]byte
	copy(key[:], pbkdf2.Key(password, salt, encIterations, encKeyLen, sha512.New))
	var nonce [24]byte
	out := secretbox.Seal(append([]byte{}, salt...), plain, &nonce, &key)
	clear(key[:])
	switch priv.ToProtocol().(type) {
	case *tz.Ed25519PrivateKey:
		var e tz.Ed25519EncryptedPrivateKey
		copy(e[:], out)
		return string(e.ToBase58()), nil
	case *tz.Secp256k1PrivateKey:
		var e tz.Secp256k1EncryptedPrivateKey
		copy(e[:], out)
		return string(e.ToBase58()), nil
	case *tz.P256PrivateKey:
		var e tz.P256EncryptedPrivateKey
		copy(e[:], out)
		return string(e.ToBase58()), nil
	case *tz.MLDSA44PrivateKey:
		return encodeBase58Check(prefix.MLDSA44EncryptedSecretKey.Prefix, out), nil
	default:
		var e tz.BLSEncryptedPrivateKey
		copy(e[:], out)
		return string(e.ToBase58()), nil
	}
}

// Input bounds for base58 text. Base58 decoding costs time quadratic in the input (ours with a far
// smaller constant than gotez's), so text is measured before it is decoded. The parsers
// of key hashes, public keys, signatures and chain ids check each kind's exact lengths, derived
// from gotez's prefix table (b58parse.go); these constants are for callers and secret keys, and
// TestB58KindsDerivation checks them against the derived lengths.
const (
	// PKHLength is the length of every base58 key hash.
	PKHLength = 36
	// MaxBase58Length bounds every other base58 value but tz5 ones: the longest, an encrypted
	// BLS secret key or a BLS signature, is under 150 characters. tz5 values (MLDSA44…Length) are
	// allowed their own lengths, and only with their prefixes.
	MaxBase58Length = 160
)

// limit is the longest text accepted for s: length when s starts with the tz5 prefix pre,
// else MaxBase58Length.
func limit(s, pre string, length int) int {
	if strings.HasPrefix(s, pre) {
		return length
	}
	return MaxBase58Length
}

// quoteKey quotes s for an error message, cut when it is longer than any non-tz5 value.
func quoteKey(s string) string { return string(appendQuoteKey(nil, s)) }

func appendQuoteKey(b []byte, s string) []byte {
	if len(s) > MaxBase58Length {
		return appendQuoteShort(b, s)
	}
	return appendQuote(b, s)
}

// appendQuote appends s quoted as %q (strconv.Quote) does, at once for printable ASCII.
func appendQuote(b []byte, s string) []byte {
	for i := range len(s) {
		if c := s[i]; c < ' ' || c > '~' || c == '"' || c == '\\' {
			return strconv.AppendQuote(b, s)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// quoteShort quotes s for an error message, cut to 40 characters.
func quoteShort(s string) string { return string(appendQuoteShort(nil, s)) }

// appendQuoteShort appends s quoted (as %q), cut to 40 characters: "…"… (n characters).
func appendQuoteShort(b []byte, s string) []byte {
	if len(s) <= 40 {
		return appendQuote(b, s)
	}
	b = appendQuote(b, s[:40])
	b = append(b, "… ("...)
	b = strconv.AppendInt(b, int64(len(s)), 10)
	return append(b, " characters)"...)
}

// ParsePublicKeyHash parses a tz1…tz5 address. Like ValidContractAddress, ParsePublicKey,
// ParseSignature and ParseChainID, it takes the one bounded path of b58parse.go: text that cannot
// be a value of the kinds it accepts, by its length for how it starts, is refused undecoded; the
// rest is decoded by our decoder, with gotez's results and error messages.
func ParsePublicKeyHash(s string) (tz.PublicKeyHash, error) {
	p, payload, why := pkhSet.parse(s)
	if !why.ok() {
		return nil, parseError("invalid public key hash ", s, showShort, why)
	}
	var pkh tz.PublicKeyHash
	switch p {
	case &prefix.Ed25519PublicKeyHash:
		pkh = (*tz.Ed25519PublicKeyHash)(payload)
	case &prefix.Secp256k1PublicKeyHash:
		pkh = (*tz.Secp256k1PublicKeyHash)(payload)
	case &prefix.P256PublicKeyHash:
		pkh = (*tz.P256PublicKeyHash)(payload)
	case &prefix.BLS12_381PublicKeyHash:
		pkh = (*tz.BLSPublicKeyHash)(payload)
	default: // &prefix.MLDSA44PublicKeyHash
		pkh = (*tz.MLDSA44PublicKeyHash)(payload)
	}
	return pkh, nil
}

// ValidContractAddress reports whether s is an originated contract's address (KT1…).
func ValidContractAddress(s string) bool {
	_, _, why := contractSet.parse(s)
	return why.ok()
}

// ErrNotBLS is ParseBLSPublicKey's error for a public key of another kind.
var ErrNotBLS = errors.New("not a BLS public key (BLpk…)")

// ParseBLSPublicKey parses a BLpk public key: ParsePublicKey's error when s is no public key,
// ErrNotBLS when it is one of another kind.
func ParseBLSPublicKey(s string) (*crypt.BLSPublicKey, error) {
	pub, err := ParsePublicKey(s)
	if err != nil {
		return nil, err
	}
	bls, ok := pub.(*crypt.BLSPublicKey)
	if !ok {
		return nil, ErrNotBLS
	}
	return bls, nil
}

// ParsePublicKey parses an edpk, sppk, p2pk, BLpk or mdpk public key.
func ParsePublicKey(s string) (crypt.PublicKey, error) {
	p, payload, why := publicKeySet.parse(s)
	if !why.ok() {
		return nil, parseError("invalid public key ", s, showKey, why)
	}
	var raw tz.PublicKey
	switch p {
	case &prefix.Ed25519PublicKey:
		raw = (*tz.Ed25519PublicKey)(payload)
	case &prefix.Secp256k1PublicKey:
		raw = (*tz.Secp256k1PublicKey)(payload)
	case &prefix.P256PublicKey:
		raw = (*tz.P256PublicKey)(payload)
	case &prefix.BLS12_381PublicKey:
		raw = (*tz.BLSPublicKey)(payload)
	default: // &prefix.MLDSA44PublicKey
		return NewMLDSA44PublicKey(payload)
	}
	pub, err := crypt.NewPublicKey(raw)
	if err != nil {
		return nil, fmt.Errorf("invalid public key %q: %s", s, scrub(err))
	}
	return pub, nil
}

// ParseSignature parses any base58 signature: edsig, spsig1, p2sig, BLsig, mdsig or generic sig.
func ParseSignature(s string) (crypt.Signature, error) {
	p, payload, why := signatureSet.parse(s)
	if !why.ok() {
		return nil, parseError("invalid signature: ", s, showNone, why)
	}
	var raw tz.Signature
	switch p {
	case &prefix.GenericSignature:
		raw = (*tz.GenericSignature)(payload)
	case &prefix.Ed25519Signature:
		raw = (*tz.Ed25519Signature)(payload)
	case &prefix.Secp256k1Signature:
		raw = (*tz.Secp256k1Signature)(payload)
	case &prefix.P256Signature:
		raw = (*tz.P256Signature)(payload)
	case &prefix.BLS12_381Signature:
		raw = (*tz.BLSSignature)(payload)
	default: // &prefix.MLDSA44Signature
		raw = (*tz.MLDSA44Signature)(payload)
	}
	sig, err := crypt.NewSignature(raw)
	if err != nil {
		return nil, fmt.Errorf("invalid signature: %s", scrub(err))
	}
	return sig, nil
}

// LowS returns sig with s replaced by n−s when s > n/2, for both secp256k1 and P-256.
// Other signatures are returned unchanged.
func LowS(sig crypt.Signature) crypt.Signature {
	e, ok := sig.(*crypt.ECDSASignature)
	if !ok {
		return sig
	}
	n := e.Curve.Params().N
	half := new(big.Int).Rsh(n, 1)
	if e.S.Cmp(half) <= 0 {
		return sig
	}
	return &crypt.ECDSASignature{R: new(big.Int).Set(e.R), S: new(big.Int).Sub(n, e.S), Curve: e.Curve}
}

// IsLowS reports whether an ECDSA signature has s ≤ n/2 (true for other signatures).
func IsLowS(sig crypt.Signature) bool {
	e, ok := sig.(*crypt.ECDSASignature)
	if !ok {
		return true
	}
	return e.S.Cmp(new(big.Int).Rsh(e.Curve.Params().N, 1)) <= 0
}

// Verify checks sig over message as Tezos does: blake2b-256 then the curve's verification for
// tz1–tz3; for tz4 the raw message with the proof-of-possession ciphersuite (signing versions 2
// and 3), or, for signing version 1, the augmented one; for tz5 pure ML-DSA-44 over the
// blake2b-256 digest with an empty context. The version matters only for tz4: whether a key may
// sign with a version at all is CheckVersion's question.
func Verify(pub crypt.PublicKey, sig crypt.Signature, message []byte, version int) bool {
	switch p := pub.(type) {
	case *crypt.BLSPublicKey:
		if version == 1 {
			return p.VerifySignatureAugmented(sig, message)
		}
	case *crypt.ECDSAPublicKey:
		if e, ok := sig.(*crypt.ECDSASignature); ok && p.Curve == crypt.S256() && e.Curve == crypt.S256() {
			d := crypt.DigestFunc(message)
			return verifySecp256k1(p, e, d[:])
		}
	}
	return pub.VerifySignature(sig, message)
}

// VerifyPossession checks a BLS proof of possession.
func VerifyPossession(pub crypt.PublicKey, proof crypt.Signature) bool {
	bpub, ok1 := pub.(*crypt.BLSPublicKey)
	bsig, ok2 := proof.(*crypt.BLSSignature)
	if !ok1 || !ok2 {
		return false
	}
	return minpk.VerifyProof((*minpk.PublicKey)(bpub), (*minpk.Signature)(bsig)) == nil
}

// ProvePossessionOver is octez's proof of possession with an overriding public key (the bls_pk
// parameter): priv signs over's compressed bytes with the proof-of-possession ciphersuite's
// proof tag. Over priv's own public key it is the ordinary proof of possession.
func ProvePossessionOver(priv *crypt.BLSPrivateKey, over *crypt.BLSPublicKey) *crypt.BLSSignature {
	point := blst.HashToP2((*minpk.PublicKey)(over).Bytes(), blst.ProofOfPossessionTag(2), nil)
	return (*crypt.BLSSignature)((*blst.Scalar)(priv).SignInG1Affine(point))
}

// VerifyPossessionOver checks a proof made by ProvePossessionOver: proof is signer's signature
// over over's bytes with the proof tag.
func VerifyPossessionOver(signer, over crypt.PublicKey, proof crypt.Signature) bool {
	spub, ok1 := signer.(*crypt.BLSPublicKey)
	opub, ok2 := over.(*crypt.BLSPublicKey)
	bsig, ok3 := proof.(*crypt.BLSSignature)
	if !ok1 || !ok2 || !ok3 {
		return false
	}
	return (*blst.P2Affine)(bsig).CoreVerify(true, (*blst.P1Affine)(spub), true, (*minpk.PublicKey)(opub).Bytes(),
		true, blst.ProofOfPossessionTag(2), nil) == nil
}

// ParseChainID parses a base58 chain id (Net…).
func ParseChainID(s string) (*tz.ChainID, error) {
	_, payload, why := chainIDSet.parse(s)
	if !why.ok() {
		return nil, parseError("invalid chain id ", s, showShort, why)
	}
	return (*tz.ChainID)(payload), nil
}
