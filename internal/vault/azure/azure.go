// Package azure is the vault of Azure Key Vault (or Managed HSM) EC keys: P-256 keys sign as tz3
// with ES256 and P-256K keys as tz2 with ES256K, over the blake2b digest, through the keys REST
// API (azkeys) with an Entra ID credential (client secret, certificate or managed identity).
package azure

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"
	"github.com/ecadlabs/gotez/v2/crypt"
	"gopkg.in/yaml.v3"

	"github.com/signatory-go/signatory/internal/fault"
	"github.com/signatory-go/signatory/internal/tezos"
	"github.com/signatory-go/signatory/internal/vault"
	"github.com/signatory-go/signatory/internal/vault/remote"
	"github.com/signatory-go/signatory/internal/yamlstrict"
)

// Driver is the driver name in the config.
const Driver = "azure"

// Defaults.
const (
	DefaultTimeout    = 10 * time.Second
	DefaultMaxRetries = 3
)

// Config is the vault's config section: the reference's keys, then this project's additions.
// Empty credential fields fall back to the environment (see Open).
type Config struct {
	Vault                       string `yaml:"vault"`
	TenantID                    string `yaml:"tenant_id"`
	ClientID                    string `yaml:"client_id"`
	ClientSecret                string `yaml:"client_secret"`
	ClientPKCS12Certificate     string `yaml:"client_pkcs12_certificate"`
	ClientCertificate           string `yaml:"client_certificate"`
	ClientCertificateThumbprint string `yaml:"client_certificate_thumbprint"` // accepted; computed from the certificate
	ClientPrivateKey            string `yaml:"client_private_key"`
	DecryptPassword             string `yaml:"decrypt_password"`
	SubscriptionID              string `yaml:"subscription_id"` // accepted; unused (the reference's health check)
	ResourceGroup               string `yaml:"resource_group"`  // accepted; unused

	// Keys restricts the vault to these key names (then listing needs only the "get" permission).
	Keys []string `yaml:"keys"`
	// Timeout bounds each call, retries included (seconds or a duration; default 10 s).
	Timeout yamlstrict.Duration `yaml:"timeout"`
	// MaxRetries on 408, 429, 500, 502, 503 and 504 (default 3, 0 for none).
	MaxRetries *int `yaml:"max_retries"`

	// For tests and private endpoints: AccessToken is a static bearer token used instead of an
	// Entra ID credential; TLSCACert is a PEM file of CAs to trust for the vault URL;
	// DisableChallengeResourceVerification accepts a vault URL outside *.vault.azure.net.
	AccessToken                          string `yaml:"access_token"`
	TLSCACert                            string `yaml:"tls_ca_cert"`
	DisableChallengeResourceVerification bool   `yaml:"disable_challenge_resource_verification"`
}

// Vault is an Azure key vault.
type Vault struct {
	life    vault.Lifecycle
	name    string
	url     string
	client  *azkeys.Client
	keys    []string
	timeout time.Duration
}

// Key is one version of a Key Vault EC key.
type Key struct {
	v       *Vault
	name    string
	version string
	curve   tezos.Curve
	pub     *crypt.ECDSAPublicKey
}

// New builds an azure vault from its config node.
func New(ctx context.Context, name string, node *yaml.Node, env vault.Env) (vault.Vault, error) {
	var cfg Config
	if err := yamlstrict.Decode(node, &cfg); err != nil {
		return nil, fmt.Errorf("vault %s: %w", name, err)
	}
	return Open(name, cfg)
}

// Open builds the client. Credentials, in order: access_token; client_secret; a client
// certificate (client_certificate or client_pkcs12_certificate, PEM or PKCS#12, with
// client_private_key when the key is in its own PEM file); else a managed identity (client_id
// selects a user-assigned one). Empty fields fall back to AZURE_CLIENT_TENANT (or AZURE_TENANT_ID),
// AZURE_CLIENT_ID, AZURE_CLIENT_SECRET, AZURE_CLIENT_PKCS12_CERTIFICATE, AZURE_CLIENT_CERTIFICATE
// (or AZURE_CLIENT_CERTIFICATE_PATH), AZURE_CLIENT_PRIVATE_KEY and AZURE_DECRYPT_PASSWORD (or
// AZURE_CLIENT_CERTIFICATE_PASSWORD).
func Open(name string, cfg Config) (*Vault, error) {
	u, err := url.Parse(os.ExpandEnv(cfg.Vault))
	if cfg.Vault == "" || err != nil || u.Scheme != "https" || u.Host == "" {
		return nil, yamlstrict.Invalidf("vault %s: vault must be the key vault's https URL, e.g. https://myvault.vault.azure.net", name)
	}
	cred, err := credential(cfg)
	if err != nil {
		return nil, fmt.Errorf("vault %s: %w", name, err)
	}
	opts := &azkeys.ClientOptions{DisableChallengeResourceVerification: cfg.DisableChallengeResourceVerification}
	retries := remote.Retries(cfg.MaxRetries, DefaultMaxRetries)
	opts.Retry = policy.RetryOptions{MaxRetries: int32(retries), RetryDelay: 200 * time.Millisecond, MaxRetryDelay: 5 * time.Second}
	if retries == 0 {
		opts.Retry.MaxRetries = -1
	}
	if cfg.TLSCACert != "" {
		pool, err := remote.CertPool(cfg.TLSCACert)
		if err != nil {
			return nil, fmt.Errorf("vault %s: %w", name, err)
		}
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
		opts.Transport = &http.Client{Transport: tr}
	}
	base := strings.TrimRight(u.String(), "/")
	client, err := azkeys.NewClient(base, cred, opts)
	if err != nil {
		return nil, fmt.Errorf("vault %s: %w", name, err)
	}
	return &Vault{name: name, url: base, client: client, keys: cfg.Keys,
		timeout: remote.Timeout(time.Duration(cfg.Timeout), DefaultTimeout)}, nil
}

func credential(cfg Config) (azcore.TokenCredential, error) {
	if cfg.AccessToken != "" {
		return staticToken(os.ExpandEnv(cfg.AccessToken)), nil
	}
	tenant := remote.Env(cfg.TenantID, "AZURE_CLIENT_TENANT", "AZURE_TENANT_ID")
	client := remote.Env(cfg.ClientID, "AZURE_CLIENT_ID")
	if secret := remote.Env(cfg.ClientSecret, "AZURE_CLIENT_SECRET"); secret != "" {
		if tenant == "" || client == "" {
			return nil, errors.New("client_secret needs tenant_id and client_id")
		}
		return azidentity.NewClientSecretCredential(tenant, client, secret, nil)
	}
	certFile := remote.Env(cfg.ClientCertificate, "AZURE_CLIENT_CERTIFICATE", "AZURE_CLIENT_CERTIFICATE_PATH")
	if certFile == "" {
		certFile = remote.Env(cfg.ClientPKCS12Certificate, "AZURE_CLIENT_PKCS12_CERTIFICATE")
	}
	if certFile != "" {
		if tenant == "" || client == "" {
			return nil, errors.New("a client certificate needs tenant_id and client_id")
		}
		data, err := os.ReadFile(certFile)
		if err != nil {
			return nil, fmt.Errorf("cannot read the client certificate: %w", err)
		}
		if keyFile := remote.Env(cfg.ClientPrivateKey, "AZURE_CLIENT_PRIVATE_KEY"); keyFile != "" {
			key, err := os.ReadFile(keyFile)
			if err != nil {
				return nil, fmt.Errorf("cannot read the client private key: %w", err)
			}
			data = append(append(data, '\n'), key...)
		}
		password := remote.Env(cfg.DecryptPassword, "AZURE_DECRYPT_PASSWORD", "AZURE_CLIENT_CERTIFICATE_PASSWORD")
		certs, key, err := azidentity.ParseCertificates(data, []byte(password))
		if err != nil {
			return nil, fmt.Errorf("client certificate %s: %w", certFile, err)
		}
		return azidentity.NewClientCertificateCredential(tenant, client, certs, key, nil)
	}
	opts := &azidentity.ManagedIdentityCredentialOptions{}
	if client != "" {
		opts.ID = azidentity.ClientID(client)
	}
	return azidentity.NewManagedIdentityCredential(opts)
}

// staticToken is a bearer token that does not expire, for tests and private endpoints.
type staticToken string

func (s staticToken) GetToken(context.Context, policy.TokenRequestOptions) (azcore.AccessToken, error) {
	return azcore.AccessToken{Token: string(s), ExpiresOn: time.Now().Add(24 * time.Hour)}, nil
}

// Name implements vault.Vault.
func (v *Vault) Name() string { return v.name }

// Driver implements vault.Vault.
func (v *Vault) Driver() string { return Driver }

// Close implements vault.Vault.
func (v *Vault) Close() error {
	v.life.MarkClosed()
	return nil
}

// List implements vault.Vault: the enabled EC keys on P-256 or P-256K (all of them, or those
// named in keys), each at its current version.
func (v *Vault) List(ctx context.Context) ([]vault.Key, error) {
	if err := v.life.Usable(ctx); err != nil {
		return nil, err
	}
	names := v.keys
	if len(names) == 0 {
		lctx, cancel := context.WithTimeout(ctx, v.timeout)
		defer cancel()
		pager := v.client.NewListKeyPropertiesPager(nil)
		for pager.More() {
			page, err := pager.NextPage(lctx)
			if err != nil {
				return nil, v.fail("list keys", "", err)
			}
			for _, p := range page.Value {
				if p.KID == nil || (p.Attributes != nil && p.Attributes.Enabled != nil && !*p.Attributes.Enabled) {
					continue
				}
				names = append(names, p.KID.Name())
			}
		}
	}
	var out []vault.Key
	for _, n := range names {
		k, err := v.key(ctx, n)
		if err != nil {
			return nil, err
		}
		if k != nil {
			out = append(out, k)
		}
	}
	return out, nil
}

// key reads a key's current version; nil when the signer cannot use it.
func (v *Vault) key(ctx context.Context, name string) (*Key, error) {
	ctx, cancel := context.WithTimeout(ctx, v.timeout)
	defer cancel()
	resp, err := v.client.GetKey(ctx, name, "", nil)
	if err != nil {
		return nil, v.fail("get key", name, err)
	}
	jwk := resp.Key
	if jwk == nil || jwk.Kty == nil || jwk.Crv == nil || jwk.KID == nil ||
		(*jwk.Kty != azkeys.KeyTypeEC && *jwk.Kty != azkeys.KeyTypeECHSM) ||
		(resp.Attributes != nil && resp.Attributes.Enabled != nil && !*resp.Attributes.Enabled) {
		return nil, nil
	}
	var curve tezos.Curve
	switch *jwk.Crv {
	case azkeys.CurveNameP256:
		curve = tezos.P256
	case azkeys.CurveNameP256K:
		curve = tezos.Secp256k1
	default:
		return nil, nil
	}
	pub, err := remote.ECDSAPublicKey(curve, jwk.X, jwk.Y)
	if err != nil {
		return nil, fmt.Errorf("vault %s: key %s: %w", v.name, name, err)
	}
	return &Key{v: v, name: name, version: jwk.KID.Version(), curve: curve, pub: pub}, nil
}

// fail turns an Azure error into a short message. As in the reference, Key Vault's HTTP status
// is passed on: 404 as not found, 429 and 503 as unavailable, the rest as an internal error.
func (v *Vault) fail(op, key string, err error) error {
	where := fmt.Sprintf("vault %s: %s", v.name, op)
	if key != "" {
		where += " " + key
	}
	var re *azcore.ResponseError
	if !errors.As(err, &re) {
		return fmt.Errorf("%s: %w", where, err)
	}
	msg := fmt.Sprintf("%s: Key Vault answered %d %s", where, re.StatusCode, re.ErrorCode)
	if re.StatusCode == http.StatusUnauthorized || re.StatusCode == http.StatusForbidden {
		msg += " (check the credential and the vault's access policy or RBAC role)"
	}
	kind := fault.Internal
	switch re.StatusCode {
	case http.StatusNotFound:
		kind = fault.NotFound
	case http.StatusTooManyRequests, http.StatusServiceUnavailable:
		kind = fault.Unavailable
	}
	return &fault.Error{Kind: kind, Msg: msg, Err: err}
}

// PublicKey implements vault.Key.
func (k *Key) PublicKey() crypt.PublicKey { return k.pub }

// ID implements vault.Key: the key's name and version.
func (k *Key) ID() string { return k.name + "/" + k.version }

// Sign implements vault.Key: ES256 or ES256K over the digest, on the listed version.
func (k *Key) Sign(ctx context.Context, message []byte, digest *[32]byte, opts vault.SignOptions) (crypt.Signature, error) {
	if err := k.v.life.Usable(ctx); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, k.v.timeout)
	defer cancel()
	alg := azkeys.SignatureAlgorithmES256
	if k.curve == tezos.Secp256k1 {
		alg = azkeys.SignatureAlgorithmES256K
	}
	resp, err := k.v.client.Sign(ctx, k.name, k.version, azkeys.SignParameters{Algorithm: &alg, Value: digest[:]}, nil)
	if err != nil {
		return nil, k.v.fail("sign", k.ID(), err)
	}
	sig, err := remote.SignatureFromRaw(resp.Result, k.curve)
	if err != nil {
		return nil, fmt.Errorf("vault %s: sign %s: %w", k.v.name, k.ID(), err)
	}
	return sig, nil
}

var _ vault.Vault = (*Vault)(nil)
