package signer

import (
	"fmt"
	"slices"

	tz "github.com/ecadlabs/gotez/v2"
	"github.com/ecadlabs/gotez/v2/crypt"

	"github.com/signatory-go/signatory/internal/fault"
	"github.com/signatory-go/signatory/internal/policy"
	"github.com/signatory-go/signatory/internal/tezos"
)

// AuthorizedKeyHashes returns the hashes of server.authorized_keys in config order, or nil.
func (s *Signer) AuthorizedKeyHashes() []string {
	if len(s.cfg.AuthorizedKeys) == 0 {
		return nil
	}
	out := make([]string, len(s.cfg.AuthorizedKeys))
	for i, k := range s.cfg.AuthorizedKeys {
		out[i] = k.Hash().String()
	}
	return out
}

// checkJWTUser applies the per-key jwt_users list.
func checkJWTUser(pol *policy.Policy, user string) error {
	if user == "" || len(pol.JWTUsers) == 0 || slices.Contains(pol.JWTUsers, user) {
		return nil
	}
	return fault.New(fault.Forbidden, fmt.Sprintf("user `%s' is not authorized to access %s", user, pol.PKH))
}

// authenticate checks the client's authentication when server.authorized_keys is configured and
// returns the authenticating client's key hash: sig when it is given (already decoded), else auth,
// ?authentication='s base58. The signed bytes are 0x04 0x01 ‖ pkh (21 bytes) ‖ message.
func (s *Signer) authenticate(pkh tz.PublicKeyHash, msg []byte, auth string, sig crypt.Signature, clientIP string) (string, error) {
	if len(s.cfg.AuthorizedKeys) == 0 {
		return "", nil
	}
	fail := func(err error) (string, error) {
		s.obs.AuthFailed(fault.Status(err), clientIP)
		return "", err
	}
	tooLong := func(n int) (string, error) {
		return fail(fault.New(fault.BadRequest, fmt.Sprintf("invalid authentication signature: %d characters is too long (tz5 signatures only when a tz5 key is in server.authorized_keys)", n)))
	}
	if sig == nil {
		if auth == "" {
			return fail(fault.New(fault.Unauthorized, "missing authentication signature field"))
		}
		if len(auth) > s.authLimit {
			return tooLong(len(auth))
		}
		var err error
		if sig, err = tezos.ParseSignature(auth); err != nil {
			return fail(fault.Wrap(fault.BadRequest, err))
		}
	} else if _, tz5 := sig.(crypt.MLDSA44Signature); tz5 && tezos.MLDSA44SignatureLength > s.authLimit {
		return tooLong(tezos.MLDSA44SignatureLength) // as its base58 form would have been refused
	}
	data := tezos.AuthenticatedBytes(pkh, msg)
	for _, k := range s.cfg.AuthorizedKeys {
		if tezos.Verify(k, sig, data, 2) {
			return k.Hash().String(), nil
		}
	}
	return fail(fault.New(fault.Forbidden, "invalid authentication signature"))
}
