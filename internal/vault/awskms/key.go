package awskms

import (
	"context"
	"crypto/elliptic"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/ecadlabs/gotez/v2/crypt"

	"github.com/signatory-go/signatory/internal/tezos"
	"github.com/signatory-go/signatory/internal/vault"
	"github.com/signatory-go/signatory/internal/vault/remote"
)

// Key is one AWS KMS key.
type Key struct {
	v   *Vault
	ref string // as configured or listed
	arn string // what KMS returned; used to sign
	pub *crypt.ECDSAPublicKey
}

var _ vault.Key = (*Key)(nil)

// PublicKey implements vault.Key.
func (k *Key) PublicKey() crypt.PublicKey { return k.pub }

// ID implements vault.Key: the key id, ARN or alias as configured, or the ARN when listed.
func (k *Key) ID() string { return k.ref }

// ARN returns the key's ARN as KMS reported it.
func (k *Key) ARN() string { return k.arn }

// Sign implements vault.Key: ECDSA_SHA_256 over the 32-byte digest (MessageType DIGEST, so KMS
// does not hash again), returned as KMS made it (the signer normalises it to low-S). Throttled and transient failures are retried with
// backoff until the vault's timeout or ctx's deadline, whichever comes first.
func (k *Key) Sign(ctx context.Context, _ []byte, digest *[32]byte, _ vault.SignOptions) (crypt.Signature, error) {
	if err := k.v.life.Usable(ctx); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, k.v.timeout)
	defer cancel()
	out, err := k.v.client.Sign(ctx, &kms.SignInput{
		KeyId:            aws.String(k.arn),
		Message:          digest[:],
		MessageType:      types.MessageTypeDigest,
		SigningAlgorithm: types.SigningAlgorithmSpecEcdsaSha256,
	})
	if err != nil {
		return nil, fmt.Errorf("awskms %s: key %s: Sign: %w", k.v.name, k.ref, err)
	}
	sig, err := parseSignature(out.Signature, k.pub.Curve)
	if err != nil {
		return nil, fmt.Errorf("awskms %s: key %s: %w", k.v.name, k.ref, err)
	}
	return sig, nil
}

// specCurve maps the KMS key specs Signatory can use to their Tezos curves.
var specCurve = map[types.KeySpec]tezos.Curve{
	types.KeySpecEccNistP256:   tezos.P256,
	types.KeySpecEccSecgP256k1: tezos.Secp256k1,
}

// parsePublicKey reads the DER SubjectPublicKeyInfo that GetPublicKey returns and checks that
// its curve is the one the key spec names.
func parsePublicKey(der []byte, spec types.KeySpec) (*crypt.ECDSAPublicKey, error) {
	want, ok := specCurve[spec]
	if !ok {
		return nil, fmt.Errorf("unsupported key spec %s", spec)
	}
	pub, err := remote.ParseSPKI(der)
	if err != nil {
		return nil, fmt.Errorf("cannot parse the %s public key: %w", want, err)
	}
	if got := tezos.CurveOf(pub); got != want {
		return nil, fmt.Errorf("key spec %s but a %s public key", spec, got)
	}
	return pub, nil
}

// parseSignature reads an ASN.1 DER ECDSA-Sig-Value {r, s} and checks 0 < r, s < n.
func parseSignature(der []byte, curve elliptic.Curve) (*crypt.ECDSASignature, error) {
	c := tezos.P256
	if curve == crypt.S256() {
		c = tezos.Secp256k1
	}
	sig, err := remote.SignatureFromDER(der, c)
	if err != nil {
		return nil, fmt.Errorf("signature from KMS: %w", err)
	}
	return sig, nil
}
