package tezos

import (
	"errors"
	"fmt"
)

// Signing versions: the remote-signer protocol's `version` query parameter, octez's signature
// version (Signature.V0…V3). A client asks for the version of the protocol it runs: up to Rio (022)
// 1, Seoul (023) and Tallinn (024) 2, Ushuaia (025) 3. What each version means:
//
//	version  tz1, tz2, tz3            tz4 (BLS)                                       tz5 (ML-DSA-44)
//	0        signs                    refused                                         refused
//	1        signs                    augmented ciphersuite over pk (48 bytes) ‖ bytes refused
//	2        signs                    proof-of-possession ciphersuite over the bytes  refused
//	3        signs                    as 2                                            signs
//
// For tz1–tz3 every version gives the same signature over the same bytes (tz2 and tz3 sign with a
// random nonce, so two signatures differ anyway); for tz4 versions 2 and 3 are the same
// ciphersuite, so they give the same signature. tz5 exists from version 3 on only.
const (
	// VersionLatest is the version of a request that names none: 3, as octez-signer v25
	// (octez v23 and v24 default to 2, which for tz1–tz4 signs the same as 3).
	VersionLatest = 3
	// MaxVersion is the highest version there is.
	MaxVersion = 3
)

// ErrBLSVersion0 is returned when a BLS key is asked to sign with signing version 0, which
// predates BLS.
var ErrBLSVersion0 = errors.New("signing version 0 is not supported for BLS keys")

// ErrMLDSA44Version is returned when a tz5 (ML-DSA-44) key is asked to sign with a signing
// version below 3, which predates ML-DSA-44 (octez v23 and v24 clients, protocols before Ushuaia).
var ErrMLDSA44Version = errors.New("tz5 (ML-DSA-44) keys sign only with signing version 3")

// CheckVersion returns nil when a key of curve c may sign with signing version v, else an error
// that says why not.
func CheckVersion(c Curve, v int) error {
	if v < 0 || v > MaxVersion {
		return fmt.Errorf("unknown signing version %d: the versions are 0 to %d", v, MaxVersion)
	}
	switch {
	case c == BLS && v == 0:
		return ErrBLSVersion0
	case c == MLDSA44 && v < 3:
		return fmt.Errorf("%w, not with version %d", ErrMLDSA44Version, v)
	}
	return nil
}

// BLSCiphersuite names the BLS ciphersuite of signing version v (1, 2 or 3), for messages.
func BLSCiphersuite(v int) string {
	if v == 1 {
		return "augmented BLS ciphersuite (signing version 1)"
	}
	return "proof-of-possession BLS ciphersuite (signing versions 2 and 3)"
}
