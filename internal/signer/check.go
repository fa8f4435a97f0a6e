package signer

import (
	"context"
	"errors"
	"time"

	"github.com/ecadlabs/gotez/v2/crypt"

	"github.com/signatory-go/signatory/internal/fault"
	"github.com/signatory-go/signatory/internal/sched"
	"github.com/signatory-go/signatory/internal/tezos"
	"github.com/signatory-go/signatory/internal/vault"
)

// SignChecked is the one way a signature leaves a key, for requests and for the authentication
// keys of threshold vaults alike: the vault signs (took is how long it took), an ECDSA signature
// is made low-S, and the signature is checked against pub before it is returned: by the key
// itself, a second computation, when its secret is in this process (vault.CheckedSigner), else by
// verification. A signature that fails the check, or that the vault's service returned malformed,
// is an Internal error whose client message says so.
func SignChecked(ctx context.Context, key vault.Key, pub crypt.PublicKey, msg []byte, digest *[32]byte, version int) (_ crypt.Signature, took time.Duration, _ error) {
	start := time.Now()
	var (
		sig     crypt.Signature
		checked bool
		err     error
	)
	opts := vault.SignOptions{Version: version}
	if cs, ok := key.(vault.CheckedSigner); ok {
		// A key whose secret is in this process checks its deterministic signatures itself, by a
		// second computation (see vault.SoftwareKey.SignChecked); the others are verified below.
		// Its CPU work, when generic, yields to consensus requests (sched.Background).
		sched.Background(ctx, func() { sig, checked, err = cs.SignChecked(ctx, msg, digest, opts, pub) })
	} else {
		sig, err = key.Sign(ctx, msg, digest, opts)
	}
	took = time.Since(start)
	if errors.Is(err, vault.ErrFault) || errors.Is(err, vault.ErrInvalidSignature) {
		return nil, took, fault.Safe(fault.Internal, "the vault returned an invalid signature", err)
	}
	if err != nil {
		return nil, took, err
	}
	if checked {
		return sig, took, nil
	}
	sig = tezos.LowS(sig)
	sched.Yield(ctx)
	var ok bool
	sched.Background(ctx, func() { ok = tezos.Verify(pub, sig, msg, version) })
	if !ok {
		return nil, took, fault.Safe(fault.Internal, "the vault returned an invalid signature",
			errors.New("the signature does not verify against the key"))
	}
	return sig, took, nil
}
