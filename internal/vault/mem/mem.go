// Package mem is an in-memory vault for tests and development: keys come from the config or
// are imported or generated at run time, and are lost on exit.
package mem

import (
	"context"
	"fmt"
	"sync"

	"github.com/ecadlabs/gotez/v2/crypt"
	"gopkg.in/yaml.v3"

	"github.com/signatory-go/signatory/internal/tezos"
	"github.com/signatory-go/signatory/internal/vault"
	"github.com/signatory-go/signatory/internal/yamlstrict"
)

// Driver is the driver name in the config.
const Driver = "mem"

// Vault is an in-memory vault.
type Vault struct {
	life vault.Lifecycle
	name string
	mu   sync.Mutex
	keys []*vault.SoftwareKey
}

// New builds a mem vault. The config is a list of base58 secret keys, or a mapping
// {keys: [...], password_env: NAME, password_file: PATH} when some are encrypted.
func New(ctx context.Context, name string, node *yaml.Node, env vault.Env) (vault.Vault, error) {
	var cfg struct {
		Keys         []string `yaml:"keys"`
		PasswordEnv  string   `yaml:"password_env"`
		PasswordFile string   `yaml:"password_file"`
	}
	if node != nil {
		var err error
		if node.Kind == yaml.SequenceNode {
			err = node.Decode(&cfg.Keys)
		} else {
			err = yamlstrict.Decode(node, &cfg)
		}
		if err != nil {
			return nil, fmt.Errorf("vault %s: %w", name, err)
		}
	}
	pw, ok, err := vault.Password(cfg.PasswordEnv, cfg.PasswordFile)
	if err != nil {
		return nil, fmt.Errorf("vault %s: %w", name, err)
	}
	var pwf func() ([]byte, error)
	if ok {
		pwf = func() ([]byte, error) { return append([]byte{}, pw...), nil }
	}
	v := &Vault{name: name}
	for i, s := range cfg.Keys {
		priv, err := tezos.ParseSecretKey(s, pwf)
		if err != nil {
			return nil, fmt.Errorf("vault %s: key %d: %w", name, i, err)
		}
		if _, err := v.Import(ctx, priv, ""); err != nil {
			return nil, err
		}
	}
	return v, nil
}

// NewFromKeys builds a mem vault holding the given keys (for tests).
func NewFromKeys(name string, keys ...crypt.PrivateKey) *Vault {
	v := &Vault{name: name}
	for _, k := range keys {
		v.keys = append(v.keys, &vault.SoftwareKey{Priv: k, Ref: k.Public().Hash().String(), Life: &v.life})
	}
	return v
}

// Name implements vault.Vault.
func (v *Vault) Name() string { return v.name }

// Driver implements vault.Vault.
func (v *Vault) Driver() string { return Driver }

// List implements vault.Vault.
func (v *Vault) List(ctx context.Context) ([]vault.Key, error) {
	if err := v.life.Usable(ctx); err != nil {
		return nil, err
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	out := make([]vault.Key, len(v.keys))
	for i, k := range v.keys {
		out[i] = k
	}
	return out, nil
}

// Close implements vault.Vault.
func (v *Vault) Close() error {
	v.life.MarkClosed()
	return nil
}

// Import implements vault.Importer.
func (v *Vault) Import(ctx context.Context, priv crypt.PrivateKey, name string) (vault.Key, error) {
	if err := v.life.Usable(ctx); err != nil {
		return nil, err
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	pkh := priv.Public().Hash().String()
	if name == "" {
		name = pkh
	}
	for _, k := range v.keys {
		if k.PublicKey().Hash().String() == pkh {
			return nil, fmt.Errorf("vault %s: duplicate key %s", v.name, pkh)
		}
	}
	k := &vault.SoftwareKey{Priv: priv, Ref: name, Life: &v.life}
	v.keys = append(v.keys, k)
	return k, nil
}

// Generate implements vault.Generator.
func (v *Vault) Generate(ctx context.Context, curve tezos.Curve, name string) (vault.Key, error) {
	priv, err := tezos.GenerateKey(curve)
	if err != nil {
		return nil, err
	}
	return v.Import(ctx, priv, name)
}
