// Package awskms is the vault of ECDSA keys held in AWS KMS (driver "awskms"): P-256 (tz3) and
// secp256k1 (tz2) keys with usage SIGN_VERIFY, which sign the blake2b digest with ECDSA_SHA_256.
package awskms

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/signatory-go/signatory/internal/awsconf"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/aws/smithy-go"
	"gopkg.in/yaml.v3"

	"github.com/signatory-go/signatory/internal/vault"
	"github.com/signatory-go/signatory/internal/yamlstrict"
)

// Driver is the driver name in the config.
const Driver = "awskms"

// Defaults of the optional settings.
const (
	DefaultTimeout    = 10 * time.Second
	DefaultMaxRetries = 3
)

// Config is the vault's config section. The reference's keys (region and the three credential
// keys) keep their names; endpoint, keys, timeout and max_retries are additions. $VARS are
// expanded in every string. Without access_key_id the SDK's default chain is used (environment,
// shared profile, web identity, container or instance role).
type Config struct {
	Region          string `yaml:"region"`
	AccessKeyID     string `yaml:"access_key_id"`
	SecretAccessKey string `yaml:"secret_access_key"`
	SessionToken    string `yaml:"session_token"`
	// Endpoint overrides the KMS endpoint (an emulator, a VPC endpoint).
	Endpoint string `yaml:"endpoint"`
	// Keys lists key ids, ARNs or alias/… names; when empty every usable key is listed.
	Keys []string `yaml:"keys"`
	// Timeout bounds one operation, retries included (default 10 s).
	Timeout yamlstrict.Duration `yaml:"timeout"`
	// MaxRetries is the number of retries of throttled or transient failures (default 3).
	MaxRetries *int `yaml:"max_retries"`
}

// kmsAPI is the part of the KMS client the vault uses.
type kmsAPI interface {
	kms.ListKeysAPIClient
	GetPublicKey(ctx context.Context, in *kms.GetPublicKeyInput, opt ...func(*kms.Options)) (*kms.GetPublicKeyOutput, error)
	Sign(ctx context.Context, in *kms.SignInput, opt ...func(*kms.Options)) (*kms.SignOutput, error)
}

// Vault is an AWS KMS vault.
type Vault struct {
	life     vault.Lifecycle
	name     string
	client   kmsAPI
	keys     []string
	timeout  time.Duration
	log      *slog.Logger
	pageSize int32 // ListKeys page size; 0 lets KMS choose

	mu       sync.Mutex
	known    map[string]*Key  // key reference → key, once read
	unusable map[string]error // key reference → why it cannot sign (wrong spec or usage)
}

var _ vault.Vault = (*Vault)(nil)

// New opens the vault described by node.
func New(ctx context.Context, name string, node *yaml.Node, env vault.Env) (vault.Vault, error) {
	var cfg Config
	if err := yamlstrict.Decode(node, &cfg); err != nil {
		return nil, fmt.Errorf("vault %s: %w", name, err)
	}
	return Open(ctx, name, cfg, env.Logger)
}

// Open builds the vault. It makes no request: credentials and keys are checked by List.
func Open(ctx context.Context, name string, cfg Config, log *slog.Logger) (*Vault, error) {
	if log == nil {
		log = slog.Default()
	}
	awsCfg, err := awsconf.Load(ctx, cfg.Region, cfg.AccessKeyID, cfg.SecretAccessKey, cfg.SessionToken, retries(cfg.MaxRetries))
	if err != nil {
		return nil, fmt.Errorf("vault %s: %w", name, err)
	}
	endpoint := os.ExpandEnv(cfg.Endpoint)
	client := kms.NewFromConfig(awsCfg, func(o *kms.Options) {
		if endpoint != "" {
			o.BaseEndpoint = aws.String(endpoint)
		}
	})
	v := &Vault{name: name, client: client, timeout: time.Duration(cfg.Timeout), log: log.With("vault", name),
		known: map[string]*Key{}, unusable: map[string]error{}}
	if v.timeout <= 0 {
		v.timeout = DefaultTimeout
	}
	for i, k := range cfg.Keys {
		k = os.ExpandEnv(k)
		if k == "" {
			return nil, yamlstrict.Invalidf("vault %s: keys[%d] is empty", name, i)
		}
		v.keys = append(v.keys, k)
	}
	return v, nil
}

func retries(p *int) int {
	if p == nil {
		return DefaultMaxRetries
	}
	return max(*p, 0)
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

// List implements vault.Vault. With configured keys, each is fetched; a key that cannot be used
// is logged with the reason and left out, and List fails only when none is usable. Without
// configured keys, every key of the account and region is listed and those that are not
// SIGN_VERIFY P-256 or secp256k1 keys (or are disabled, or not readable) are skipped.
func (v *Vault) List(ctx context.Context) ([]vault.Key, error) {
	if err := v.life.Usable(ctx); err != nil {
		return nil, err
	}
	if len(v.keys) > 0 {
		return v.listConfigured(ctx)
	}
	var ids []string
	p := kms.NewListKeysPaginator(v.client, &kms.ListKeysInput{}, func(o *kms.ListKeysPaginatorOptions) {
		o.Limit = v.pageSize
	})
	for p.HasMorePages() {
		pctx, cancel := context.WithTimeout(ctx, v.timeout)
		page, err := p.NextPage(pctx)
		cancel()
		if err != nil {
			return nil, fmt.Errorf("awskms %s: ListKeys: %w", v.name, err)
		}
		for _, k := range page.Keys {
			if k.KeyArn != nil {
				ids = append(ids, *k.KeyArn)
			} else if k.KeyId != nil {
				ids = append(ids, *k.KeyId)
			}
		}
	}
	keys, errs := v.fetch(ctx, ids)
	var out []vault.Key
	for i, k := range keys {
		switch err := errs[i]; {
		case err == nil:
			out = append(out, k)
		case skippable(err):
			v.log.Debug("AWS KMS key skipped", "key", ids[i], "reason", err)
		default:
			return nil, err
		}
	}
	return out, nil
}

func (v *Vault) listConfigured(ctx context.Context) ([]vault.Key, error) {
	keys, errs := v.fetch(ctx, v.keys)
	var out []vault.Key
	for i, k := range keys {
		if errs[i] != nil {
			v.log.Error("AWS KMS key is not usable", "key", v.keys[i], "err", errs[i])
			continue
		}
		out = append(out, k)
	}
	if len(out) == 0 {
		return nil, errors.Join(errs...)
	}
	return out, nil
}

// fetch reads the public keys of ids, a few at a time. A key's spec and public key never
// change, so what was learnt once (a usable key, or a key of the wrong type) is kept: listing
// again after a cache miss in the signer costs one ListKeys, not one GetPublicKey per key.
func (v *Vault) fetch(ctx context.Context, ids []string) ([]*Key, []error) {
	keys := make([]*Key, len(ids))
	errs := make([]error, len(ids))
	sem := make(chan struct{}, 4)
	var wg sync.WaitGroup
	for i, id := range ids {
		v.mu.Lock()
		keys[i], errs[i] = v.known[id], v.unusable[id]
		v.mu.Unlock()
		if keys[i] != nil || errs[i] != nil {
			continue
		}
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			keys[i], errs[i] = v.key(ctx, id)
			v.mu.Lock()
			defer v.mu.Unlock()
			switch {
			case errs[i] == nil:
				v.known[id] = keys[i]
			case errors.Is(errs[i], errUnusable):
				v.unusable[id] = errs[i]
			}
		})
	}
	wg.Wait()
	return keys, errs
}

// errUnusable marks keys that are not SIGN_VERIFY P-256 or secp256k1 keys.
var errUnusable = errors.New("not a SIGN_VERIFY ECC_NIST_P256 or ECC_SECG_P256K1 key")

// key reads one key's public key. ref is what the operator wrote (or the ARN from ListKeys);
// the key signs by the ARN KMS returns, so that a re-pointed alias cannot swap keys underneath.
func (v *Vault) key(ctx context.Context, ref string) (*Key, error) {
	ctx, cancel := context.WithTimeout(ctx, v.timeout)
	defer cancel()
	out, err := v.client.GetPublicKey(ctx, &kms.GetPublicKeyInput{KeyId: aws.String(ref)})
	var ae smithy.APIError
	switch {
	case errors.As(err, &ae) && ae.ErrorCode() == "UnsupportedOperationException": // a symmetric or HMAC key
		return nil, fmt.Errorf("awskms %s: key %s: %w: GetPublicKey: %w", v.name, ref, errUnusable, err)
	case err != nil:
		return nil, fmt.Errorf("awskms %s: key %s: GetPublicKey: %w", v.name, ref, err)
	}
	if out.KeyUsage != types.KeyUsageTypeSignVerify ||
		(out.KeySpec != types.KeySpecEccNistP256 && out.KeySpec != types.KeySpecEccSecgP256k1) {
		return nil, fmt.Errorf("awskms %s: key %s (%s, %s): %w", v.name, ref, out.KeySpec, out.KeyUsage, errUnusable)
	}
	pub, err := parsePublicKey(out.PublicKey, out.KeySpec)
	if err != nil {
		return nil, fmt.Errorf("awskms %s: key %s: %w", v.name, ref, err)
	}
	arn := ref
	if out.KeyId != nil && *out.KeyId != "" {
		arn = *out.KeyId
	}
	return &Key{v: v, ref: ref, arn: arn, pub: pub}, nil
}

// skippable reports whether a key met while listing the account is left out rather than failing
// List: wrong key type, disabled or pending deletion, or not readable with these credentials.
func skippable(err error) bool {
	if errors.Is(err, errUnusable) {
		return true
	}
	var ae smithy.APIError
	if !errors.As(err, &ae) {
		return false
	}
	switch ae.ErrorCode() {
	case "AccessDeniedException", "DisabledException", "KMSInvalidStateException",
		"UnsupportedOperationException", "NotFoundException", "InvalidKeyUsageException":
		return true
	}
	return false
}
