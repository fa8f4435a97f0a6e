// Package hashicorp is the vault of HashiCorp Vault (or OpenBao) Transit ed25519 (tz1) and
// ecdsa-p256 (tz3) keys: the key's latest version signs the 32-byte blake2b digest (as the message
// for ed25519, as a prehashed SHA-256-sized digest for ECDSA), authenticated by a token or an
// AppRole login that is renewed when it expires.
package hashicorp

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ecadlabs/gotez/v2/crypt"
	"github.com/hashicorp/vault/api"
	"gopkg.in/yaml.v3"

	"github.com/signatory-go/signatory/internal/tezos"
	"github.com/signatory-go/signatory/internal/vault"
	"github.com/signatory-go/signatory/internal/vault/remote"
	"github.com/signatory-go/signatory/internal/yamlstrict"
)

// Driver is the driver name in the config.
const Driver = "hashicorpvault"

// Defaults.
const (
	DefaultTimeout    = 10 * time.Second
	DefaultMaxRetries = 2
)

// Config is the vault's config section. The reference's camelCase keys (roleID, secretID,
// transitConfig.mountPoint, tlsCaCert, tlsClientCert, tlsClientKey) are accepted as aliases.
type Config struct {
	// Address is the Vault URL (default VAULT_ADDR).
	Address string `yaml:"address"`
	// Token authenticates directly (default VAULT_TOKEN) when no AppRole is configured.
	Token string `yaml:"token"`
	// RoleID and SecretID log in with AppRole at auth/<AppRoleMount>/login (default "approle").
	RoleID       string `yaml:"role_id"`
	SecretID     string `yaml:"secret_id"`
	AppRoleMount string `yaml:"approle_mount"`
	// TransitMount is the Transit engine's mount path (default "transit/").
	TransitMount string `yaml:"transit_mount"`
	// Keys restricts the vault to these key names (then no LIST permission is needed).
	Keys      []string `yaml:"keys"`
	Namespace string   `yaml:"namespace"`
	// TLS: CA bundle to trust, and a client certificate and key for mutual TLS.
	TLSCACert     string `yaml:"tls_ca_cert"`
	TLSClientCert string `yaml:"tls_client_cert"`
	TLSClientKey  string `yaml:"tls_client_key"`
	// Timeout bounds each call, retries included (seconds or a duration; default 10 s).
	Timeout yamlstrict.Duration `yaml:"timeout"`
	// MaxRetries on 412, 429 and 5xx answers (default 2, 0 for none).
	MaxRetries *int `yaml:"max_retries"`

	// The reference's spellings.
	RefRoleID        string `yaml:"roleID"`
	RefSecretID      string `yaml:"secretID"`
	RefTLSCACert     string `yaml:"tlsCaCert"`
	RefTLSClientCert string `yaml:"tlsClientCert"`
	RefTLSClientKey  string `yaml:"tlsClientKey"`
	RefTransit       struct {
		MountPoint string `yaml:"mountPoint"`
	} `yaml:"transitConfig"`
}

func or(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// Vault is a Transit engine.
type Vault struct {
	life    vault.Lifecycle
	name    string
	client  *api.Client
	mount   string // "transit/"
	keys    []string
	timeout time.Duration

	roleID, secretID, approle string
	mu                        sync.Mutex // guards expiry and logins
	expiry                    time.Time  // of the AppRole token; zero when it does not expire
}

// Key is a version of a Transit ed25519 or ecdsa-p256 key.
type Key struct {
	v       *Vault
	name    string
	version int
	pub     crypt.PublicKey // crypt.Ed25519PublicKey or a P-256 *crypt.ECDSAPublicKey
}

// New builds a hashicorpvault vault from its config node.
func New(ctx context.Context, name string, node *yaml.Node, env vault.Env) (vault.Vault, error) {
	var cfg Config
	if err := yamlstrict.Decode(node, &cfg); err != nil {
		return nil, fmt.Errorf("vault %s: %w", name, err)
	}
	return Open(name, cfg)
}

// Open builds the client; the standard VAULT_* environment variables apply where the config is
// silent. An AppRole login happens at the first call.
func Open(name string, cfg Config) (*Vault, error) {
	fail := func(err error) (*Vault, error) { return nil, fmt.Errorf("vault %s: %w", name, err) }
	c := api.DefaultConfig()
	if c.Error != nil {
		return fail(c.Error)
	}
	if cfg.Address != "" {
		c.Address = os.ExpandEnv(cfg.Address)
	}
	if u, err := url.Parse(c.Address); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return fail(yamlstrict.Invalidf("address %q is not a Vault URL (https://host:8200)", c.Address))
	}
	tlsCfg := &api.TLSConfig{CACert: or(cfg.TLSCACert, cfg.RefTLSCACert), ClientCert: or(cfg.TLSClientCert, cfg.RefTLSClientCert),
		ClientKey: or(cfg.TLSClientKey, cfg.RefTLSClientKey)}
	if tlsCfg.CACert != "" || tlsCfg.ClientCert != "" || tlsCfg.ClientKey != "" {
		if (tlsCfg.ClientCert == "") != (tlsCfg.ClientKey == "") {
			return fail(yamlstrict.Invalidf("tls_client_cert and tls_client_key go together"))
		}
		if err := c.ConfigureTLS(tlsCfg); err != nil {
			return fail(err)
		}
	}
	timeout := remote.Timeout(time.Duration(cfg.Timeout), DefaultTimeout)
	c.Timeout = timeout
	c.MaxRetries = remote.Retries(cfg.MaxRetries, DefaultMaxRetries)
	c.MinRetryWait, c.MaxRetryWait = 100*time.Millisecond, 400*time.Millisecond
	client, err := api.NewClient(c)
	if err != nil {
		return fail(err)
	}
	if cfg.Namespace != "" {
		client.SetNamespace(cfg.Namespace)
	}
	v := &Vault{name: name, client: client, keys: cfg.Keys, timeout: timeout,
		roleID: or(cfg.RoleID, cfg.RefRoleID), secretID: or(cfg.SecretID, cfg.RefSecretID), approle: or(cfg.AppRoleMount, "approle")}
	v.mount = strings.Trim(or(or(cfg.TransitMount, cfg.RefTransit.MountPoint), "transit"), "/") + "/"
	switch {
	case v.roleID != "":
		client.ClearToken()
	case cfg.Token != "":
		client.SetToken(os.ExpandEnv(cfg.Token))
	case client.Token() == "":
		return fail(errors.New("no credentials: set token (or VAULT_TOKEN), or role_id and secret_id"))
	}
	return v, nil
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

// login gets an AppRole token unless the current one is valid and is not stale (the token a
// call was refused with).
func (v *Vault) login(ctx context.Context, stale string) error {
	if v.roleID == "" {
		return nil
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	tok := v.client.Token()
	if tok != "" && tok != stale && (v.expiry.IsZero() || time.Now().Before(v.expiry)) {
		return nil
	}
	anon, err := v.client.Clone() // without the token
	if err != nil {
		return err
	}
	s, err := anon.Logical().WriteWithContext(ctx, "auth/"+v.approle+"/login",
		map[string]any{"role_id": v.roleID, "secret_id": v.secretID})
	var re *api.ResponseError
	if errors.As(err, &re) {
		return fmt.Errorf("AppRole login: Vault answered %d: %s", re.StatusCode, strings.Join(re.Errors, "; "))
	}
	if err != nil {
		return fmt.Errorf("AppRole login: %w", err)
	}
	if s == nil || s.Auth == nil || s.Auth.ClientToken == "" {
		return errors.New("AppRole login returned no token")
	}
	v.client.SetToken(s.Auth.ClientToken)
	v.expiry = time.Time{}
	if ttl := time.Duration(s.Auth.LeaseDuration) * time.Second; ttl > 0 {
		v.expiry = time.Now().Add(ttl - min(ttl/10, 30*time.Second)) // renew a little early
	}
	return nil
}

// do runs call with a valid token; on 403 with AppRole it logs in again and retries once.
func (v *Vault) do(ctx context.Context, call func(context.Context) (*api.Secret, error)) (*api.Secret, error) {
	ctx, cancel := context.WithTimeout(ctx, v.timeout)
	defer cancel()
	if err := v.login(ctx, ""); err != nil {
		return nil, err
	}
	tok := v.client.Token()
	s, err := call(ctx)
	var re *api.ResponseError
	if v.roleID != "" && errors.As(err, &re) && re.StatusCode == http.StatusForbidden {
		if err := v.login(ctx, tok); err != nil {
			return nil, err
		}
		s, err = call(ctx)
	}
	return s, err
}

// fail formats a Vault error as the operation, the HTTP status and Vault's messages.
func (v *Vault) fail(op string, err error) error {
	var re *api.ResponseError
	if errors.As(err, &re) {
		return fmt.Errorf("vault %s: %s: Vault answered %d: %s", v.name, op, re.StatusCode, strings.Join(re.Errors, "; "))
	}
	return fmt.Errorf("vault %s: %s: %w", v.name, op, err)
}

// List implements vault.Vault: the ed25519 and ecdsa-p256 keys of the Transit engine (or those
// named in keys).
func (v *Vault) List(ctx context.Context) ([]vault.Key, error) {
	if err := v.life.Usable(ctx); err != nil {
		return nil, err
	}
	names := v.keys
	if len(names) == 0 {
		s, err := v.do(ctx, func(ctx context.Context) (*api.Secret, error) {
			return v.client.Logical().ListWithContext(ctx, v.mount+"keys")
		})
		if err != nil {
			return nil, v.fail("list "+v.mount+"keys", err)
		}
		if s != nil && s.Data != nil { // no keys: 404, which the client reports as nil
			list, _ := s.Data["keys"].([]any)
			for _, n := range list {
				if name, ok := n.(string); ok && !strings.HasPrefix(name, "import/") {
					names = append(names, name)
				}
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

type keyInfo struct {
	Type          string `json:"type"`
	LatestVersion int    `json:"latest_version"`
	Keys          map[string]json.RawMessage
}

// key reads a key; nil when it is neither an ed25519 nor an ecdsa-p256 key.
func (v *Vault) key(ctx context.Context, name string) (*Key, error) {
	path := v.mount + "keys/" + url.PathEscape(name)
	s, err := v.do(ctx, func(ctx context.Context) (*api.Secret, error) { return v.client.Logical().ReadWithContext(ctx, path) })
	if err != nil {
		return nil, v.fail("read "+path, err)
	}
	if s == nil {
		return nil, fmt.Errorf("vault %s: read %s: no such key", v.name, path)
	}
	raw, _ := json.Marshal(s.Data)
	var info keyInfo
	if err := json.Unmarshal(raw, &info); err != nil {
		return nil, fmt.Errorf("vault %s: read %s: %w", v.name, path, err)
	}
	if info.Type != "ed25519" && info.Type != "ecdsa-p256" {
		return nil, nil
	}
	var ver struct {
		PublicKey string `json:"public_key"`
	}
	if err := json.Unmarshal(info.Keys[strconv.Itoa(info.LatestVersion)], &ver); err != nil {
		return nil, fmt.Errorf("vault %s: read %s: no public key for the latest version %d", v.name, path, info.LatestVersion)
	}
	k := &Key{v: v, name: name, version: info.LatestVersion}
	if info.Type == "ecdsa-p256" { // public_key is a PEM SubjectPublicKeyInfo
		pub, err := remote.ParsePEMPublicKey([]byte(ver.PublicKey))
		if err != nil || tezos.CurveOf(pub) != tezos.P256 {
			return nil, fmt.Errorf("vault %s: read %s: version %d has no valid P-256 public key (%w)", v.name, path, info.LatestVersion, err)
		}
		k.pub = pub
		return k, nil
	}
	pub, err := base64.StdEncoding.DecodeString(ver.PublicKey)
	if err != nil || len(pub) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("vault %s: read %s: version %d has no valid ed25519 public key", v.name, path, info.LatestVersion)
	}
	k.pub = crypt.Ed25519PublicKey(pub)
	return k, nil
}

// PublicKey implements vault.Key.
func (k *Key) PublicKey() crypt.PublicKey { return k.pub }

// ID implements vault.Key: the key's name and version.
func (k *Key) ID() string { return k.name + "/v" + strconv.Itoa(k.version) }

var sigPrefix = regexp.MustCompile(`^vault:v([0-9]+):`)

// Sign implements vault.Key with the version that was listed, so a rotation cannot change the
// key behind a public key hash. Transit signs the 32-byte digest as is with ed25519 keys (pure
// Ed25519), and as a prehashed sha2-256-sized digest with ecdsa-p256 keys (ASN.1 DER signature,
// which the signer makes low-S).
func (k *Key) Sign(ctx context.Context, message []byte, digest *[32]byte, opts vault.SignOptions) (crypt.Signature, error) {
	if err := k.v.life.Usable(ctx); err != nil {
		return nil, err
	}
	path := k.v.mount + "sign/" + url.PathEscape(k.name)
	_, ecKey := k.pub.(*crypt.ECDSAPublicKey)
	body := map[string]any{"input": base64.StdEncoding.EncodeToString(digest[:]), "key_version": k.version, "prehashed": false}
	if ecKey {
		body["prehashed"], body["hash_algorithm"], body["marshaling_algorithm"] = true, "sha2-256", "asn1"
	}
	s, err := k.v.do(ctx, func(ctx context.Context) (*api.Secret, error) {
		return k.v.client.Logical().WriteWithContext(ctx, path, body)
	})
	if err != nil {
		return nil, k.v.fail("sign with "+k.ID(), err)
	}
	var str string
	if s != nil {
		str, _ = s.Data["signature"].(string)
	}
	m := sigPrefix.FindStringSubmatch(str)
	if m == nil || m[1] != strconv.Itoa(k.version) {
		return nil, fmt.Errorf("vault %s: sign with %s: unexpected signature %q", k.v.name, k.ID(), str)
	}
	sig, err := base64.StdEncoding.DecodeString(str[len(m[0]):])
	if ecKey {
		if err != nil {
			return nil, fmt.Errorf("vault %s: sign with %s: the signature is not base64", k.v.name, k.ID())
		}
		ec, err := remote.SignatureFromDER(sig, tezos.P256)
		if err != nil {
			return nil, fmt.Errorf("vault %s: sign with %s: %w", k.v.name, k.ID(), err)
		}
		return ec, nil
	}
	if err != nil || len(sig) != ed25519.SignatureSize {
		return nil, fmt.Errorf("vault %s: sign with %s: the signature is not 64 bytes of base64", k.v.name, k.ID())
	}
	return crypt.Ed25519Signature(sig), nil
}

var _ vault.Vault = (*Vault)(nil)
