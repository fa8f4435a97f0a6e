package tezos

import tz "github.com/ecadlabs/gotez/v2"

// AuthenticatedBytes returns what a client signs to authenticate a request to the signer for
// pkh (the ?authentication= parameter): 0x04 0x01 ‖ pkh tag ‖ 20-byte hash ‖ message, the message
// being the request's bytes (empty for a proof of possession).
func AuthenticatedBytes(pkh tz.PublicKeyHash, msg []byte) []byte {
	var tag byte
	switch pkh.(type) {
	case *tz.Ed25519PublicKeyHash:
		tag = 0
	case *tz.Secp256k1PublicKeyHash:
		tag = 1
	case *tz.P256PublicKeyHash:
		tag = 2
	case *tz.BLSPublicKeyHash:
		tag = 3
	default:
		tag = 4
	}
	out := make([]byte, 0, 3+20+len(msg))
	out = append(out, 0x04, 0x01, tag)
	out = append(out, pkh.PublicKeyHash()...)
	return append(out, msg...)
}
