package yubihsm

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"

	"github.com/certusone/yubihsm-go/commands"
	"github.com/ecadlabs/gotez/v2/crypt"

	"github.com/signatory-go/signatory/internal/tezos"
	"github.com/signatory-go/signatory/internal/vault"
	"github.com/signatory-go/signatory/internal/vault/remote"
)

// Key is an asymmetric key object on the device, found by its object ID.
type Key struct {
	v     *Vault
	id    uint16
	curve tezos.Curve
	pub   crypt.PublicKey
}

// PublicKey implements vault.Key.
func (k *Key) PublicKey() crypt.PublicKey { return k.pub }

// ID implements vault.Key: the object ID as four hex digits, as in the reference.
func (k *Key) ID() string { return fmt.Sprintf("%04x", k.id) }

// Sign implements vault.Key: Sign EdDSA over the 32-byte digest for Ed25519, Sign ECDSA over the
// digest for secp256k1 and P-256 (the DER reply is returned as the device made it: the signer
// normalises it to low-S).
func (k *Key) Sign(ctx context.Context, message []byte, digest *[32]byte, opts vault.SignOptions) (crypt.Signature, error) {
	if err := k.v.life.Usable(ctx); err != nil {
		return nil, err
	}
	var cmd *commands.CommandMessage
	if k.curve == tezos.Ed25519 {
		cmd, _ = commands.CreateSignDataEddsaCommand(k.id, digest[:])
	} else {
		cmd, _ = commands.CreateSignDataEcdsaCommand(k.id, digest[:])
	}
	resp, err := k.v.do(ctx, cmd, true)
	if err != nil {
		return nil, fmt.Errorf("%s: key %s: %w", k.v.where(), k.ID(), k.explain(err))
	}
	var sig crypt.Signature
	switch r := resp.(type) {
	case *commands.SignDataEddsaResponse:
		if len(r.Signature) != ed25519.SignatureSize {
			err = fmt.Errorf("the device returned a %d-byte Ed25519 signature", len(r.Signature))
		} else {
			sig = crypt.Ed25519Signature(append([]byte(nil), r.Signature...))
		}
	case *commands.SignDataEcdsaResponse:
		var e *crypt.ECDSASignature
		if e, err = remote.SignatureFromDER(r.Signature, k.curve); err == nil {
			sig = e
		}
	default:
		err = fmt.Errorf("unexpected reply %T", resp)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: key %s: %w", k.v.where(), k.ID(), err)
	}
	return sig, nil
}

// explain adds advice to the device errors a signature may meet.
func (k *Key) explain(err error) error {
	switch {
	case isCode(err, commands.ErrorCodeObjectNotFound):
		return fmt.Errorf("the key is no longer on the device, or not in the authentication key's domains: %w", err)
	case isCode(err, commands.ErrorCodeInvalidPermission):
		return fmt.Errorf("the key or the authentication key lacks the %s capability: %w", signCapName(k.curve), err)
	}
	return err
}

func signCapName(c tezos.Curve) string {
	if c == tezos.Ed25519 {
		return "sign-eddsa"
	}
	return "sign-ecdsa"
}

// algorithms maps the Tezos curves to YubiHSM algorithms and back.
var algorithms = map[commands.Algorithm]tezos.Curve{
	commands.AlgorithmED25519:   tezos.Ed25519,
	commands.AlgorithmSecp256k1: tezos.Secp256k1,
	commands.AlgorithmP256:      tezos.P256,
}

func algorithmOf(c tezos.Curve) (commands.Algorithm, bool) {
	for a, curve := range algorithms {
		if curve == c {
			return a, true
		}
	}
	return 0, false
}

// algName names the algorithms of keys a Tezos signer cannot use (YubiHSM 2 Concepts: Algorithms).
func algName(a commands.Algorithm) string {
	names := map[commands.Algorithm]string{9: "rsa2048", 10: "rsa3072", 11: "rsa4096", 13: "ecp384", 14: "ecp521",
		16: "ecbp256", 17: "ecbp384", 18: "ecbp512", 47: "ecp224"}
	if n, ok := names[a]; ok {
		return n
	}
	return fmt.Sprintf("algorithm %d", a)
}

// errUnsupported is a key on a curve Tezos does not use.
type errUnsupported struct{ alg commands.Algorithm }

func (e *errUnsupported) Error() string {
	return fmt.Sprintf("an %s key: Tezos keys are ed25519, secp256k1 (eck256) or P-256 (ecp256)", algName(e.alg))
}

// publicKey fetches and checks the public key of object id (Get Public Key: algorithm || X || Y
// for ECC, algorithm || A for Ed25519).
func (v *Vault) publicKey(ctx context.Context, id uint16) (*Key, error) {
	cmd, _ := commands.CreateGetPubKeyCommand(id)
	resp, err := v.do(ctx, cmd, true)
	if err != nil {
		return nil, fmt.Errorf("key %04x: get public key: %w", id, err)
	}
	r, ok := resp.(*commands.GetPubKeyResponse)
	if !ok {
		return nil, fmt.Errorf("key %04x: unexpected reply %T", id, resp)
	}
	curve, ok := algorithms[r.Algorithm]
	if !ok {
		return nil, &errUnsupported{alg: r.Algorithm}
	}
	k := &Key{v: v, id: id, curve: curve}
	if curve == tezos.Ed25519 {
		if len(r.KeyData) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("key %04x: a %d-byte Ed25519 public key", id, len(r.KeyData))
		}
		k.pub = crypt.Ed25519PublicKey(append([]byte(nil), r.KeyData...))
		return k, nil
	}
	if len(r.KeyData) != 64 {
		return nil, fmt.Errorf("key %04x: a %d-byte %s public key", id, len(r.KeyData), curve)
	}
	pub, err := remote.ECDSAPublicKey(curve, r.KeyData[:32], r.KeyData[32:])
	if err != nil {
		return nil, fmt.Errorf("key %04x: %w", id, err)
	}
	k.pub = pub
	return k, nil
}

// listObjects returns the IDs of the asymmetric keys matching the options.
func (v *Vault) listObjects(ctx context.Context, opts ...commands.ListCommandOption) ([]uint16, error) {
	opts = append([]commands.ListCommandOption{commands.NewObjectTypeOption(commands.ObjectTypeAsymmetricKey)}, opts...)
	cmd, _ := commands.CreateListObjectsCommand(opts...)
	resp, err := v.do(ctx, cmd, true)
	if err != nil {
		return nil, fmt.Errorf("list objects: %w", err)
	}
	r, ok := resp.(*commands.ListObjectsResponse)
	if !ok {
		return nil, fmt.Errorf("list objects: unexpected reply %T", resp)
	}
	ids := make([]uint16, 0, len(r.Objects))
	for _, o := range r.Objects {
		if o.ObjectType == commands.ObjectTypeAsymmetricKey {
			ids = append(ids, o.ObjectID)
		}
	}
	return ids, nil
}

// discover returns every usable asymmetric key; other keys are skipped with a warning.
func (v *Vault) discover(ctx context.Context) ([]*Key, error) {
	ids, err := v.listObjects(ctx)
	if err != nil {
		return nil, err
	}
	var out []*Key
	for _, id := range ids {
		k, err := v.publicKey(ctx, id)
		var unsupported *errUnsupported
		switch {
		case errors.As(err, &unsupported):
			v.log.Warn("YubiHSM key skipped", "vault", v.name, "key", fmt.Sprintf("%04x", id), "reason", err.Error())
			continue
		case err != nil:
			return nil, err
		}
		out = append(out, k)
	}
	return out, nil
}

// configured returns the configured keys; a missing or unusable one is an error.
func (v *Vault) configured(ctx context.Context) ([]*Key, error) {
	var out []*Key
	for _, kc := range v.cfg.keys {
		var opts []commands.ListCommandOption
		if kc.ID != nil {
			opts = append(opts, commands.NewIDOption(*kc.ID))
		}
		if kc.Label != "" {
			opt, err := commands.NewLabelOption([]byte(kc.Label))
			if err != nil {
				return nil, err
			}
			opts = append(opts, opt)
		}
		ids, err := v.listObjects(ctx, opts...)
		switch {
		case err != nil:
			return nil, err
		case len(ids) == 0:
			return nil, fmt.Errorf("key not found: no asymmetric key with %s visible to authentication key 0x%04x", kc, v.cfg.authKeyID)
		case len(ids) > 1:
			return nil, fmt.Errorf("more than one asymmetric key has %s; give its id", kc)
		}
		k, err := v.publicKey(ctx, ids[0])
		if err != nil {
			return nil, fmt.Errorf("key with %s: %w", kc, err)
		}
		out = append(out, k)
	}
	return out, nil
}
