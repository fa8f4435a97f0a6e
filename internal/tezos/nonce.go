package tezos

import (
	"crypto/hmac"
	"crypto/sha256"
	"fmt"

	"github.com/ecadlabs/gotez/v2/crypt"
	"golang.org/x/crypto/blake2b"
)

// DeterministicNonce is octez's deterministic nonce of a secret key for data: HMAC-SHA256 keyed
// with the secret key's raw bytes, the payload of its b58check form (edsk: the 32-byte seed; spsk
// and p2sk: the 32-byte big-endian scalar; BLsk: the 32-byte little-endian scalar; mdsk: the
// signing key and the verification key), over data as given. src/lib_crypto/ed25519.ml,
// secp256k1.ml, p256.ml, bls.ml and mldsa44.ml define it in the same words:
//
//	let deterministic_nonce sk msg =
//	  let key = Secret_key.to_bytes sk in
//	  Hacl.Hash.SHA256.HMAC.digest ~key ~msg
func DeterministicNonce(priv crypt.PrivateKey, data []byte) ([32]byte, error) {
	var out [32]byte
	key, err := secretBytes(priv)
	if err != nil {
		return out, fmt.Errorf("no deterministic nonce: %w", err)
	}
	defer clear(key)
	mac := hmac.New(sha256.New, key)
	mac.Write(data)
	copy(out[:], mac.Sum(nil))
	return out, nil
}

// DeterministicNonceHash is octez's deterministic_nonce_hash: Blake2b-256 of the nonce.
func DeterministicNonceHash(nonce [32]byte) [32]byte {
	return blake2b.Sum256(nonce[:])
}
