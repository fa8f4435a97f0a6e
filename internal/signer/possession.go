package signer

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/ecadlabs/gotez/v2/crypt"

	"github.com/signatory-go/signatory/internal/fault"
	"github.com/signatory-go/signatory/internal/policy"
	"github.com/signatory-go/signatory/internal/tezos"
	"github.com/signatory-go/signatory/internal/vault"
)

// ProvePossession returns a BLS proof of possession for a tz4 key whose policy allows it.
func (s *Signer) ProvePossession(ctx context.Context, r *PossessionRequest) (crypt.Signature, error) {
	pkh, clientIP := r.PKH, r.ClientIP
	parsed, err := tezos.ParsePublicKeyHash(pkh)
	if err != nil {
		return nil, fault.Wrap(fault.BadRequest, err)
	}
	client, err := s.authenticate(parsed, nil, r.Authentication, nil, clientIP)
	if err != nil {
		return nil, err
	}
	pol := s.cfg.Policies[pkh]
	if pol == nil {
		return nil, fault.New(fault.Forbidden, pkh+" is not listed in config")
	}
	if err := checkJWTUser(pol, r.JWTUser); err != nil {
		return nil, err
	}
	if err := pol.CheckClient(client); err != nil {
		return nil, err
	}
	k, err := s.lookup(ctx, pkh)
	if err != nil {
		return nil, err
	}
	prover, ok := k.key.(vault.PossessionProver)
	if !ok || k.curve != tezos.BLS {
		return nil, fault.New(fault.BadRequest, "proof of possession is not supported")
	}
	over := k.pub
	if r.BLSPK != "" {
		if over, err = parseBLSPK(r.BLSPK); err != nil {
			return nil, err
		}
	}
	own := over.String() == k.pub.String()
	if own && !pol.AllowPoP {
		s.log.Warn("Proof of possession is not allowed. Proof of possession is required for key reveals, consensus key updates, and companion key registration. To enable, set 'allow_proof_of_possession: true' in the config for this key.", "pkh", pkh)
		return nil, fault.New(fault.BadRequest, "proof of possession is not allowed")
	}
	if !own && !slices.Contains(pol.AllowPoPFor, over.String()) {
		// A proof over a key of the client's choosing is what a rogue-key attack needs.
		return nil, policy.NewViolation("proof_of_possession", fmt.Sprintf("proof of possession over %s is not allowed for this key: list that key in allow_proof_of_possession_for", over))
	}
	if err := s.askHook(ctx, nil, clientIP, pkh, client); err != nil {
		return nil, err
	}
	var proof crypt.Signature
	if own {
		proof, err = prover.ProvePossession(ctx)
	} else if op, ok := k.key.(vault.PossessionOverProver); ok {
		proof, err = op.ProvePossessionOver(ctx, over.(*crypt.BLSPublicKey))
	} else {
		return nil, fault.New(fault.BadRequest, "this key cannot make a proof of possession over another public key (bls_pk)")
	}
	if err != nil {
		if fault.KindOf(err) != fault.Internal {
			return nil, err
		}
		return nil, &fault.Error{Kind: fault.Internal, Msg: fmt.Sprintf("(%s): %v", k.vault.Name(), err), Err: err}
	}
	if !tezos.VerifyPossessionOver(k.pub, over, proof) {
		return nil, fault.Safe(fault.Internal, "the vault returned an invalid proof of possession", nil)
	}
	return proof, nil
}

// parseBLSPK parses the bls_pk parameter: a BLS public key.
func parseBLSPK(s string) (crypt.PublicKey, error) {
	if !strings.HasPrefix(s, "BLpk") { // refused before decoding (an mdpk is long to decode)
		return nil, fault.Wrap(fault.BadRequest, fmt.Errorf("bls_pk: %w", tezos.ErrNotBLS))
	}
	pub, err := tezos.ParseBLSPublicKey(s)
	if err != nil {
		return nil, fault.Wrap(fault.BadRequest, fmt.Errorf("bls_pk: %w", err))
	}
	return pub, nil
}
