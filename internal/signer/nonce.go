package signer

import (
	"context"
	"fmt"

	"github.com/ecadlabs/gotez/v2/crypt"

	"github.com/signatory-go/signatory/internal/fault"
	"github.com/signatory-go/signatory/internal/tezos"
	"github.com/signatory-go/signatory/internal/vault"
)

// NonceRequest asks for octez's deterministic nonce of a key for some data (or its hash): the
// Deterministic_nonce and Deterministic_nonce_hash requests of octez-signer's socket protocol.
type NonceRequest struct {
	PKH  string
	Data []byte
	// AuthSignature is the client's signature over 0x04 0x01 ‖ pkh ‖ data, as for a signature,
	// or nil.
	AuthSignature crypt.Signature
	ClientIP      string
	Hash          bool // the nonce's Blake2b-256 hash instead of the nonce
}

// DeterministicNonce answers a NonceRequest. Like a signature it needs the client's
// authentication when server.authorized_keys is set, and the key's authorized_keys; and the
// key's policy must allow it (allow_deterministic_nonce), for the nonce is derived from the
// secret key and is the baker's until it reveals it. Only keys whose secret is in this process
// can answer (vault.NonceDeriver).
func (s *Signer) DeterministicNonce(ctx context.Context, r *NonceRequest) ([32]byte, error) {
	var out [32]byte
	parsed, err := tezos.ParsePublicKeyHash(r.PKH)
	if err != nil {
		return out, fault.Wrap(fault.BadRequest, err)
	}
	client, err := s.authenticate(parsed, r.Data, "", r.AuthSignature, r.ClientIP)
	if err != nil {
		return out, err
	}
	pol := s.cfg.Policies[r.PKH]
	if pol == nil {
		return out, fault.New(fault.Forbidden, r.PKH+" is not listed in config")
	}
	if err := pol.CheckClient(client); err != nil {
		return out, err
	}
	if !pol.AllowDeterministicNonce {
		return out, fault.New(fault.Forbidden, "deterministic nonces are not allowed for this key: set allow_deterministic_nonce: true in its policy")
	}
	k, err := s.lookup(ctx, r.PKH)
	if err != nil {
		return out, err
	}
	nd, ok := k.key.(vault.NonceDeriver)
	if !ok {
		return out, fault.New(fault.BadRequest, fmt.Sprintf("vault %s (%s) cannot compute deterministic nonces: only keys whose secret is in this process can (file and mem vaults)",
			k.vault.Name(), k.vault.Driver()))
	}
	if out, err = nd.DeterministicNonce(ctx, r.Data); err != nil {
		return [32]byte{}, err // nothing of what the vault returned leaves with an error
	}
	if r.Hash {
		out = tezos.DeterministicNonceHash(out)
	}
	return out, nil
}

// SupportsDeterministicNonces answers octez's Supports_deterministic_nonces: true when the key's
// policy allows them and its vault can compute them.
func (s *Signer) SupportsDeterministicNonces(ctx context.Context, pkh string) (bool, error) {
	if _, err := tezos.ParsePublicKeyHash(pkh); err != nil {
		return false, fault.Wrap(fault.BadRequest, err)
	}
	pol := s.cfg.Policies[pkh]
	if pol == nil {
		return false, fault.New(fault.Forbidden, pkh+" is not listed in config")
	}
	k, err := s.lookup(ctx, pkh)
	if err != nil {
		return false, err
	}
	_, ok := k.key.(vault.NonceDeriver)
	return ok && pol.AllowDeterministicNonce, nil
}
