package awskms

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"math/big"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/decred/dcrd/dcrec/secp256k1/v4"
	"github.com/ecadlabs/gotez/v2/crypt"

	"github.com/signatory-go/signatory/internal/tezos"
	"github.com/signatory-go/signatory/internal/vault"
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
// does not hash again), normalised to low S. Throttled and transient failures are retried with
// backoff until the vault's timeout or ctx's deadline, whichever comes first.
func (k *Key) Sign(ctx context.Context, _ []byte, digest *[32]byte, _ vault.SignOptions) (crypt.Signature, error) {
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
	return tezos.LowS(sig), nil
}

var (
	oidECPublicKey = asn1.ObjectIdentifier{1, 2, 840, 10045, 2, 1}
	oidSecp256k1   = asn1.ObjectIdentifier{1, 3, 132, 0, 10}
)

type spki struct {
	Algorithm pkix.AlgorithmIdentifier
	PublicKey asn1.BitString
}

// parsePublicKey reads the DER SubjectPublicKeyInfo that GetPublicKey returns. P-256 goes through
// crypto/x509; x509 does not know the secp256k1 OID, so that one is read by hand: the bit string
// holds the SEC 1 point, which secp256k1.ParsePubKey checks is on the curve.
func parsePublicKey(der []byte, spec types.KeySpec) (*crypt.ECDSAPublicKey, error) {
	switch spec {
	case types.KeySpecEccNistP256:
		k, err := x509.ParsePKIXPublicKey(der)
		if err != nil {
			return nil, fmt.Errorf("cannot parse the P-256 public key: %w", err)
		}
		ek, ok := k.(*ecdsa.PublicKey)
		if !ok || ek.Curve != elliptic.P256() {
			return nil, errors.New("the public key is not a P-256 key")
		}
		return (*crypt.ECDSAPublicKey)(ek), nil
	case types.KeySpecEccSecgP256k1:
		var info spki
		rest, err := asn1.Unmarshal(der, &info)
		if err != nil || len(rest) != 0 {
			return nil, errors.New("cannot parse the secp256k1 public key: malformed SubjectPublicKeyInfo")
		}
		var curve asn1.ObjectIdentifier
		if !info.Algorithm.Algorithm.Equal(oidECPublicKey) {
			return nil, fmt.Errorf("cannot parse the secp256k1 public key: algorithm %v is not id-ecPublicKey", info.Algorithm.Algorithm)
		}
		if rest, err := asn1.Unmarshal(info.Algorithm.Parameters.FullBytes, &curve); err != nil || len(rest) != 0 || !curve.Equal(oidSecp256k1) {
			return nil, errors.New("cannot parse the secp256k1 public key: the curve is not secp256k1")
		}
		if info.PublicKey.BitLength%8 != 0 {
			return nil, errors.New("cannot parse the secp256k1 public key: bad bit string")
		}
		pk, err := secp256k1.ParsePubKey(info.PublicKey.Bytes)
		if err != nil {
			return nil, fmt.Errorf("cannot parse the secp256k1 public key: %w", err)
		}
		e := pk.ToECDSA()
		return &crypt.ECDSAPublicKey{Curve: crypt.S256(), X: e.X, Y: e.Y}, nil
	}
	return nil, fmt.Errorf("unsupported key spec %s", spec)
}

// parseSignature reads an ASN.1 DER ECDSA-Sig-Value {r, s} and checks 0 < r, s < n.
func parseSignature(der []byte, curve elliptic.Curve) (*crypt.ECDSASignature, error) {
	var v struct{ R, S *big.Int }
	rest, err := asn1.Unmarshal(der, &v)
	if err != nil || len(rest) != 0 {
		return nil, errors.New("malformed DER signature from KMS")
	}
	n := curve.Params().N
	if v.R.Sign() <= 0 || v.S.Sign() <= 0 || v.R.Cmp(n) >= 0 || v.S.Cmp(n) >= 0 {
		return nil, errors.New("signature from KMS is out of range")
	}
	return &crypt.ECDSASignature{R: v.R, S: v.S, Curve: curve}, nil
}
