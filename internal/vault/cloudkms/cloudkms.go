// Package cloudkms is the vault of Google Cloud KMS asymmetric signing keys: the ENABLED versions
// of a key ring's EC_SIGN_ED25519 (tz1), EC_SIGN_P256_SHA256 (tz3) and EC_SIGN_SECP256K1_SHA256
// (tz2) keys sign the blake2b digest through AsymmetricSign, with retries within a deadline.
package cloudkms

import (
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"sync"
	"time"

	kms "cloud.google.com/go/kms/apiv1"
	"cloud.google.com/go/kms/apiv1/kmspb"
	"github.com/ecadlabs/gotez/v2/crypt"
	"github.com/googleapis/gax-go/v2"
	"google.golang.org/api/iterator"
	"google.golang.org/api/option"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/wrapperspb"
	"gopkg.in/yaml.v3"

	"github.com/signatory-go/signatory/internal/tezos"
	"github.com/signatory-go/signatory/internal/vault"
	"github.com/signatory-go/signatory/internal/vault/remote"
	"github.com/signatory-go/signatory/internal/yamlstrict"
)

// Driver is the driver name in the config.
const Driver = "cloudkms"

// Defaults, as in the reference.
const (
	DefaultTimeout    = 10 * time.Second
	DefaultMaxRetries = 3
)

// Config is the vault's config section (the reference's keys, plus the test options at the end).
type Config struct {
	Project  string `yaml:"project"`
	Location string `yaml:"location"`
	KeyRing  string `yaml:"key_ring"`
	// ApplicationCredentials is a credentials JSON file; ApplicationCredentialsData is its
	// content. Without either, Application Default Credentials are used
	// (GOOGLE_APPLICATION_CREDENTIALS, the metadata server…).
	ApplicationCredentials     string `yaml:"application_credentials"`
	ApplicationCredentialsData string `yaml:"application_credentials_data"`
	// Timeout bounds each call, retries included: seconds or a duration ("1.5s"). Default 10 s.
	Timeout yamlstrict.Duration `yaml:"timeout"`
	// MaxRetries is the number of retries on UNAVAILABLE, DEADLINE_EXCEEDED and
	// RESOURCE_EXHAUSTED (default 3, at most 100, 0 for none).
	MaxRetries *int `yaml:"max_retries"`

	// For tests and private endpoints: Endpoint (host:port) replaces cloudkms.googleapis.com:443;
	// TLSCACert is a PEM file of CAs to trust for it; Insecure uses plaintext gRPC without Google
	// credentials (tests only); AccessToken is sent as a static OAuth2 bearer token instead of
	// Google credentials.
	Endpoint    string `yaml:"endpoint"`
	TLSCACert   string `yaml:"tls_ca_cert"`
	Insecure    bool   `yaml:"insecure"`
	AccessToken string `yaml:"access_token"`
}

// Vault is a Cloud KMS key ring.
type Vault struct {
	life    vault.Lifecycle
	name    string
	ring    string
	client  *kms.KeyManagementClient
	timeout time.Duration
	retries int

	mu   sync.Mutex
	keys map[string]*Key // by version name; public keys never change
}

// Key is an ENABLED crypto key version.
type Key struct {
	v     *Vault
	name  string // projects/…/cryptoKeyVersions/n
	curve tezos.Curve
	pub   crypt.PublicKey
}

// New builds a cloudkms vault from its config node.
func New(ctx context.Context, name string, node *yaml.Node, env vault.Env) (vault.Vault, error) {
	var cfg Config
	if err := yamlstrict.Decode(node, &cfg); err != nil {
		return nil, fmt.Errorf("vault %s: %w", name, err)
	}
	return Open(ctx, name, cfg)
}

// Open connects to Cloud KMS. No call is made until List.
func Open(ctx context.Context, name string, cfg Config) (*Vault, error) {
	if cfg.Project == "" || cfg.Location == "" || cfg.KeyRing == "" {
		return nil, yamlstrict.Invalidf("vault %s: project, location and key_ring are required", name)
	}
	opts, err := clientOptions(cfg)
	if err != nil {
		return nil, fmt.Errorf("vault %s: %w", name, err)
	}
	client, err := kms.NewKeyManagementClient(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("vault %s: cannot create the Cloud KMS client: %w", name, err)
	}
	return &Vault{
		name:    name,
		ring:    fmt.Sprintf("projects/%s/locations/%s/keyRings/%s", cfg.Project, cfg.Location, cfg.KeyRing),
		client:  client,
		timeout: remote.Timeout(time.Duration(cfg.Timeout), DefaultTimeout),
		retries: remote.Retries(cfg.MaxRetries, DefaultMaxRetries),
		keys:    map[string]*Key{},
	}, nil
}

func clientOptions(cfg Config) ([]option.ClientOption, error) {
	var opts []option.ClientOption
	if cfg.Endpoint != "" {
		opts = append(opts, option.WithEndpoint(cfg.Endpoint))
	}
	switch {
	case cfg.Insecure:
		if cfg.Endpoint == "" {
			return nil, yamlstrict.Invalidf("insecure needs an endpoint")
		}
		opts = append(opts, option.WithGRPCDialOption(grpc.WithTransportCredentials(insecure.NewCredentials())))
	case cfg.TLSCACert != "":
		pool, err := remote.CertPool(cfg.TLSCACert)
		if err != nil {
			return nil, err
		}
		opts = append(opts, option.WithGRPCDialOption(grpc.WithTransportCredentials(
			credentials.NewTLS(&tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}))))
	}
	switch {
	case cfg.AccessToken != "":
		opts = append(opts, option.WithoutAuthentication(),
			option.WithGRPCDialOption(grpc.WithPerRPCCredentials(staticToken{token: os.ExpandEnv(cfg.AccessToken), secure: !cfg.Insecure})))
	case cfg.Insecure:
		opts = append(opts, option.WithoutAuthentication())
	case cfg.ApplicationCredentials != "" || cfg.ApplicationCredentialsData != "":
		data := []byte(cfg.ApplicationCredentialsData)
		if cfg.ApplicationCredentials != "" {
			var err error
			if data, err = os.ReadFile(os.ExpandEnv(cfg.ApplicationCredentials)); err != nil {
				return nil, fmt.Errorf("cannot read application_credentials: %w", err)
			}
		}
		var head struct {
			Type string `json:"type"`
		}
		if err := json.Unmarshal(data, &head); err != nil {
			return nil, fmt.Errorf("application credentials are not JSON: %w", err)
		}
		kinds := map[string]option.CredentialsType{
			"service_account": option.ServiceAccount, "authorized_user": option.AuthorizedUser,
			"external_account": option.ExternalAccount, "impersonated_service_account": option.ImpersonatedServiceAccount,
		}
		kind, ok := kinds[head.Type]
		if !ok {
			return nil, fmt.Errorf("application credentials of type %q are not supported", head.Type)
		}
		opts = append(opts, option.WithAuthCredentialsJSON(kind, data))
	}
	return opts, nil
}

// staticToken sends a fixed OAuth2 bearer token with each call.
type staticToken struct {
	token  string
	secure bool
}

func (s staticToken) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + s.token}, nil
}

func (s staticToken) RequireTransportSecurity() bool { return s.secure }

// Name implements vault.Vault.
func (v *Vault) Name() string { return v.name }

// Driver implements vault.Vault.
func (v *Vault) Driver() string { return Driver }

// Close implements vault.Vault.
func (v *Vault) Close() error {
	if !v.life.MarkClosed() {
		return nil
	}
	return v.client.Close()
}

// call bounds ctx by the vault's timeout and returns the options that retry retryable codes
// with exponential backoff (100 ms, doubling, at most 10 s) while the deadline allows.
func (v *Vault) call(ctx context.Context) (context.Context, context.CancelFunc, []gax.CallOption) {
	ctx, cancel := context.WithTimeout(ctx, v.timeout)
	deadline, _ := ctx.Deadline()
	return ctx, cancel, []gax.CallOption{gax.WithRetry(func() gax.Retryer {
		return &retryer{b: remote.Backoff{Initial: 100 * time.Millisecond, Max: 10 * time.Second, Retries: v.retries, Deadline: deadline}}
	})}
}

type retryer struct{ b remote.Backoff }

func (r *retryer) Retry(err error) (time.Duration, bool) {
	switch status.Code(err) {
	case codes.Unavailable, codes.DeadlineExceeded, codes.ResourceExhausted:
		return r.b.Next(time.Now())
	}
	return 0, false
}

var curves = map[kmspb.CryptoKeyVersion_CryptoKeyVersionAlgorithm]tezos.Curve{
	kmspb.CryptoKeyVersion_EC_SIGN_P256_SHA256:      tezos.P256,
	kmspb.CryptoKeyVersion_EC_SIGN_SECP256K1_SHA256: tezos.Secp256k1,
	kmspb.CryptoKeyVersion_EC_SIGN_ED25519:          tezos.Ed25519,
}

// List implements vault.Vault: the ENABLED versions of the ring's ASYMMETRIC_SIGN keys whose
// algorithm is EC_SIGN_ED25519, EC_SIGN_P256_SHA256 or EC_SIGN_SECP256K1_SHA256.
func (v *Vault) List(ctx context.Context) ([]vault.Key, error) {
	if err := v.life.Usable(ctx); err != nil {
		return nil, err
	}
	lctx, cancel, opts := v.call(ctx)
	defer cancel()
	var cryptoKeys []*kmspb.CryptoKey
	it := v.client.ListCryptoKeys(lctx, &kmspb.ListCryptoKeysRequest{Parent: v.ring}, opts...)
	for {
		k, err := it.Next()
		if errors.Is(err, iterator.Done) {
			break
		}
		if err != nil {
			return nil, v.fail("ListCryptoKeys", v.ring, err)
		}
		if k.Purpose == kmspb.CryptoKey_ASYMMETRIC_SIGN {
			cryptoKeys = append(cryptoKeys, k)
		}
	}
	var out []vault.Key
	for _, ck := range cryptoKeys {
		versions, err := v.versions(ctx, ck.Name)
		if err != nil {
			return nil, err
		}
		for _, ver := range versions {
			k, err := v.key(ctx, ver)
			if err != nil {
				return nil, err
			}
			out = append(out, k)
		}
	}
	return out, nil
}

func (v *Vault) versions(ctx context.Context, cryptoKey string) ([]*kmspb.CryptoKeyVersion, error) {
	ctx, cancel, opts := v.call(ctx)
	defer cancel()
	var out []*kmspb.CryptoKeyVersion
	it := v.client.ListCryptoKeyVersions(ctx, &kmspb.ListCryptoKeyVersionsRequest{Parent: cryptoKey}, opts...)
	for {
		ver, err := it.Next()
		if errors.Is(err, iterator.Done) {
			return out, nil
		}
		if err != nil {
			return nil, v.fail("ListCryptoKeyVersions", cryptoKey, err)
		}
		if _, ok := curves[ver.Algorithm]; ok && ver.State == kmspb.CryptoKeyVersion_ENABLED {
			out = append(out, ver)
		}
	}
}

// key returns the cached key of a version, fetching its public key the first time.
func (v *Vault) key(ctx context.Context, ver *kmspb.CryptoKeyVersion) (*Key, error) {
	v.mu.Lock()
	k, ok := v.keys[ver.Name]
	v.mu.Unlock()
	if ok {
		return k, nil
	}
	ctx, cancel, opts := v.call(ctx)
	defer cancel()
	resp, err := v.client.GetPublicKey(ctx, &kmspb.GetPublicKeyRequest{Name: ver.Name}, opts...)
	if err != nil {
		return nil, v.fail("GetPublicKey", ver.Name, err)
	}
	if resp.Name != ver.Name || resp.Algorithm != ver.Algorithm {
		return nil, fmt.Errorf("vault %s: GetPublicKey %s: the reply is for %s (%s)", v.name, ver.Name, resp.Name, resp.Algorithm)
	}
	if resp.PemCrc32C != nil && resp.PemCrc32C.Value != crc32c([]byte(resp.Pem)) {
		return nil, fmt.Errorf("vault %s: GetPublicKey %s: the public key was corrupted in transit (CRC32C mismatch)", v.name, ver.Name)
	}
	pub, err := remote.ParsePEMSigningKey([]byte(resp.Pem))
	if err != nil {
		return nil, fmt.Errorf("vault %s: %s: %w", v.name, ver.Name, err)
	}
	k = &Key{v: v, name: ver.Name, curve: curves[ver.Algorithm], pub: pub}
	if tezos.CurveOf(pub) != k.curve {
		return nil, fmt.Errorf("vault %s: %s: the public key is not on the curve of %s", v.name, ver.Name, ver.Algorithm)
	}
	v.mu.Lock()
	v.keys[ver.Name] = k
	v.mu.Unlock()
	return k, nil
}

// fail formats a Cloud KMS error with the call, the resource, the gRPC code and message.
func (v *Vault) fail(call, resource string, err error) error {
	st, ok := status.FromError(err)
	if !ok {
		return fmt.Errorf("vault %s: %s %s: %w", v.name, call, resource, err)
	}
	return fmt.Errorf("vault %s: %s %s: %s: %s", v.name, call, resource, st.Code(), st.Message())
}

func crc32c(b []byte) int64 { return int64(crc32.Checksum(b, crc32.MakeTable(crc32.Castagnoli))) }

// PublicKey implements vault.Key.
func (k *Key) PublicKey() crypt.PublicKey { return k.pub }

// ID implements vault.Key: the crypto key version's resource name.
func (k *Key) ID() string { return k.name }

// Sign implements vault.Key: AsymmetricSign with CRC32C integrity checks both ways. ECDSA keys
// sign the digest, passed as if it were SHA-256; Ed25519 keys (pure EdDSA) sign the digest as
// the message, so it goes in the data field, as Tezos signs it.
func (k *Key) Sign(ctx context.Context, message []byte, digest *[32]byte, opts vault.SignOptions) (crypt.Signature, error) {
	if err := k.v.life.Usable(ctx); err != nil {
		return nil, err
	}
	ctx, cancel, callOpts := k.v.call(ctx)
	defer cancel()
	req := &kmspb.AsymmetricSignRequest{Name: k.name}
	ed := k.curve == tezos.Ed25519
	if ed {
		req.Data, req.DataCrc32C = digest[:], wrapperspb.Int64(crc32c(digest[:]))
	} else {
		req.Digest = &kmspb.Digest{Digest: &kmspb.Digest_Sha256{Sha256: digest[:]}}
		req.DigestCrc32C = wrapperspb.Int64(crc32c(digest[:]))
	}
	resp, err := k.v.client.AsymmetricSign(ctx, req, callOpts...)
	if err != nil {
		return nil, k.v.fail("AsymmetricSign", k.name, err)
	}
	switch {
	case resp.Name != k.name:
		return nil, fmt.Errorf("vault %s: AsymmetricSign %s: the reply is for %s", k.v.name, k.name, resp.Name)
	case ed && !resp.VerifiedDataCrc32C:
		return nil, fmt.Errorf("vault %s: AsymmetricSign %s: the service did not verify the data's checksum", k.v.name, k.name)
	case !ed && !resp.VerifiedDigestCrc32C:
		return nil, fmt.Errorf("vault %s: AsymmetricSign %s: the service did not verify the digest's checksum", k.v.name, k.name)
	case resp.SignatureCrc32C != nil && resp.SignatureCrc32C.Value != crc32c(resp.Signature):
		return nil, fmt.Errorf("vault %s: AsymmetricSign %s: the signature was corrupted in transit (CRC32C mismatch)", k.v.name, k.name)
	}
	if ed {
		if len(resp.Signature) != ed25519.SignatureSize {
			return nil, fmt.Errorf("vault %s: AsymmetricSign %s: Ed25519 signature of %d bytes, want %d", k.v.name, k.name, len(resp.Signature), ed25519.SignatureSize)
		}
		return crypt.Ed25519Signature(resp.Signature), nil
	}
	sig, err := remote.SignatureFromDER(resp.Signature, k.curve)
	if err != nil {
		return nil, fmt.Errorf("vault %s: AsymmetricSign %s: %w", k.v.name, k.name, err)
	}
	return sig, nil
}

var _ vault.Vault = (*Vault)(nil)
