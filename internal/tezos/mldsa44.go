package tezos

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/sha3"
	"crypto/subtle"
	"errors"
	"fmt"

	"github.com/cloudflare/circl/sign/mldsa/mldsa44"
	tz "github.com/ecadlabs/gotez/v2"
	"github.com/ecadlabs/gotez/v2/b58/prefix"
	"github.com/ecadlabs/gotez/v2/crypt"
	"golang.org/x/crypto/blake2b"
)

// tz5 keys: ML-DSA-44 (FIPS 204) as octez has it since v25 (protocol Ushuaia, signature
// version 3):
//
//   - address tz5…: Blake2b-160 of the 1312-byte public key; public key mdpk… (the 1312 bytes);
//     secret key mdsk…: the 2560-byte signing key ‖ the 1312-byte public key (FIPS 204 does not
//     define how to get the public key back from the signing key, so octez keeps both);
//     encrypted secret key mdesk…, encrypted as every other octez secret key; signature mdsig…
//     (2420 bytes);
//   - what is signed is Blake2b-256 of the bytes (for the signer: the whole request body, magic
//     byte included), with pure ML-DSA-44 and an empty context string;
//   - signing is hedged (randomized: 32 fresh random bytes each time), so two signatures of the
//     same bytes differ; both verify;
//   - a key pair is generated from a 32-byte seed (FIPS 204 ML-DSA.KeyGen_internal(ξ = seed)).
//
// gotez (v2.4.3) has the encodings, but its crypt.MLDSA44PublicKey hashes to a tz4 address, and
// its sign and verify take the message itself, not its Blake2b-256 digest, and sign
// deterministically. MLDSA44PublicKey and MLDSA44PrivateKey here implement crypt.PublicKey and
// crypt.PrivateKey as octez does; ParsePublicKey, ParseSecretKey and GenerateKey make them, and
// nothing in this module uses gotez's types for tz5 keys. Signatures are gotez's
// crypt.MLDSA44Signature (plain bytes).

// Lengths of the base58 text of tz5 values, much longer than any other key or signature.
const (
	MLDSA44PublicKeyLength          = 1802 // mdpk…
	MLDSA44SignatureLength          = 3316 // mdsig…
	MLDSA44SecretKeyLength          = 5298 // mdsk…
	MLDSA44EncryptedSecretKeyLength = 5332 // mdesk…
)

// MLDSA44PublicKey is a tz5 public key.
type MLDSA44PublicKey struct {
	pk  mldsa44.PublicKey
	raw [mldsa44.PublicKeySize]byte
}

// NewMLDSA44PublicKey makes a public key of its 1312-byte encoding.
func NewMLDSA44PublicKey(raw []byte) (*MLDSA44PublicKey, error) {
	if len(raw) != mldsa44.PublicKeySize {
		return nil, fmt.Errorf("an ML-DSA-44 public key is %d bytes, not %d", mldsa44.PublicKeySize, len(raw))
	}
	k := &MLDSA44PublicKey{}
	copy(k.raw[:], raw)
	k.pk.Unpack(&k.raw)
	return k, nil
}

// Bytes returns the 1312-byte encoding.
func (k *MLDSA44PublicKey) Bytes() []byte { return bytes.Clone(k.raw[:]) }

// Hash returns the tz5 address: Blake2b-160 of the encoding.
func (k *MLDSA44PublicKey) Hash() crypt.PublicKeyHash {
	h, _ := blake2b.New(20, nil) // never fails for a size of 20 and no key
	h.Write(k.raw[:])
	var out tz.MLDSA44PublicKeyHash
	copy(out[:], h.Sum(nil))
	return &out
}

// ToBase58 returns the mdpk… text.
func (k *MLDSA44PublicKey) ToBase58() []byte {
	return []byte(encodeBase58Check(prefix.MLDSA44PublicKey.Prefix, k.raw[:]))
}

// String returns the mdpk… text.
func (k *MLDSA44PublicKey) String() string { return string(k.ToBase58()) }

// ToProtocol returns gotez's form (whose Hash is wrong: use k.Hash).
func (k *MLDSA44PublicKey) ToProtocol() tz.PublicKey {
	out := tz.MLDSA44PublicKey(k.raw)
	return &out
}

// VerifySignature checks sig over message as octez does: pure ML-DSA-44 over
// Blake2b-256(message), with an empty context.
func (k *MLDSA44PublicKey) VerifySignature(sig crypt.Signature, message []byte) bool {
	s, ok := sig.(crypt.MLDSA44Signature)
	if !ok || len(s) != mldsa44.SignatureSize {
		return false
	}
	d := blake2b.Sum256(message)
	return mldsa44.Verify(&k.pk, d[:], nil, s)
}

// Equal implements crypt.PublicKey.
func (k *MLDSA44PublicKey) Equal(other crypt.PublicKey) bool {
	o, ok := other.(*MLDSA44PublicKey)
	return ok && o.raw == k.raw
}

// Unwrap returns circl's public key.
func (k *MLDSA44PublicKey) Unwrap() crypto.PublicKey { return &k.pk }

// MarshalText returns the mdpk… text.
func (k *MLDSA44PublicKey) MarshalText() ([]byte, error) { return k.ToBase58(), nil }

// MLDSA44PrivateKey is a tz5 secret key.
type MLDSA44PrivateKey struct {
	sk  mldsa44.PrivateKey
	pub *MLDSA44PublicKey
}

// ErrMLDSA44Inconsistent is returned for an mdsk whose public half is not its signing key's.
var ErrMLDSA44Inconsistent = errors.New("the ML-DSA-44 secret key is inconsistent: its public key is not its signing key's")

// NewMLDSA44PrivateKey makes a secret key of octez's 3872-byte payload: the 2560-byte signing
// key ‖ the 1312-byte public key. Both halves are checked: the public key computed from the
// signing key must be the stored one, the signing key must hold that public key's hash (tr), and
// the signing key must be in its canonical encoding, so that a corrupted key is refused when
// it is read, never turned into signatures that do not verify.
func NewMLDSA44PrivateKey(payload []byte) (*MLDSA44PrivateKey, error) {
	if len(payload) != mldsa44.PrivateKeySize+mldsa44.PublicKeySize {
		return nil, fmt.Errorf("an ML-DSA-44 secret key is %d bytes, not %d", mldsa44.PrivateKeySize+mldsa44.PublicKeySize, len(payload))
	}
	var skRaw [mldsa44.PrivateKeySize]byte
	copy(skRaw[:], payload)
	defer clear(skRaw[:])
	k := &MLDSA44PrivateKey{}
	k.sk.Unpack(&skRaw)
	pub, err := NewMLDSA44PublicKey(payload[mldsa44.PrivateKeySize:])
	if err != nil {
		return nil, err
	}
	derived := k.sk.Public().(*mldsa44.PublicKey).Bytes()
	// tr, the 64 bytes after rho and K in the signing key, is SHAKE256(public key, 64).
	tr := sha3.SumSHAKE256(pub.raw[:], 64)
	repacked := k.sk.Bytes()
	defer clear(repacked)
	if !bytes.Equal(derived, pub.raw[:]) || !bytes.Equal(skRaw[64:128], tr) || subtle.ConstantTimeCompare(repacked, skRaw[:]) != 1 {
		return nil, ErrMLDSA44Inconsistent
	}
	k.pub = pub
	return k, nil
}

// MLDSA44KeyFromSeed derives a key pair from a 32-byte seed, as octez's generation does
// (FIPS 204 ML-DSA.KeyGen_internal with ξ = seed).
func MLDSA44KeyFromSeed(seed *[32]byte) *MLDSA44PrivateKey {
	pk, sk := mldsa44.NewKeyFromSeed(seed)
	k := &MLDSA44PrivateKey{sk: *sk}
	k.pub = &MLDSA44PublicKey{}
	pk.Pack(&k.pub.raw)
	k.pub.pk.Unpack(&k.pub.raw)
	return k
}

// generateMLDSA44 makes a new key from a fresh random seed.
func generateMLDSA44() (*MLDSA44PrivateKey, error) {
	var seed [32]byte
	if _, err := rand.Read(seed[:]); err != nil {
		return nil, err
	}
	defer clear(seed[:])
	return MLDSA44KeyFromSeed(&seed), nil
}

// payload returns octez's 3872 bytes: signing key ‖ public key. The caller clears it.
func (k *MLDSA44PrivateKey) payload() []byte {
	out := make([]byte, 0, mldsa44.PrivateKeySize+mldsa44.PublicKeySize)
	sk := k.sk.Bytes()
	out = append(append(out, sk...), k.pub.raw[:]...)
	clear(sk)
	return out
}

// ToBase58 returns the mdsk… text.
func (k *MLDSA44PrivateKey) ToBase58() []byte {
	p := k.payload()
	defer clear(p)
	return []byte(encodeBase58Check(prefix.MLDSA44SecretKey.Prefix, p))
}

// ToProtocol returns gotez's form of the secret key.
func (k *MLDSA44PrivateKey) ToProtocol() tz.PrivateKey {
	p := k.payload()
	defer clear(p)
	out := tz.MLDSA44PrivateKey(p)
	return &out
}

// Public returns the public key.
func (k *MLDSA44PrivateKey) Public() crypt.PublicKey { return k.pub }

// Sign signs Blake2b-256(message), as octez does; see SignDigest.
func (k *MLDSA44PrivateKey) Sign(message []byte) (crypt.Signature, error) {
	d := blake2b.Sum256(message)
	return k.SignDigest(&d)
}

// SignDigest signs the 32-byte digest with pure ML-DSA-44, an empty context and fresh
// randomness (hedged signing, as octez): every call gives another valid signature.
func (k *MLDSA44PrivateKey) SignDigest(digest *[32]byte) (crypt.Signature, error) {
	sig := make([]byte, mldsa44.SignatureSize)
	if err := mldsa44.SignTo(&k.sk, digest[:], nil, true, sig); err != nil {
		return nil, err
	}
	return crypt.MLDSA44Signature(sig), nil
}

// Equal implements crypt.PrivateKey.
func (k *MLDSA44PrivateKey) Equal(other crypt.PrivateKey) bool {
	o, ok := other.(*MLDSA44PrivateKey)
	return ok && k.sk.Equal(&o.sk)
}

// Unwrap returns circl's private key.
func (k *MLDSA44PrivateKey) Unwrap() crypto.PrivateKey { return &k.sk }

var (
	_ crypt.PublicKey  = (*MLDSA44PublicKey)(nil)
	_ crypt.PrivateKey = (*MLDSA44PrivateKey)(nil)
)
