// Package file is the vault of local secret keys kept in octez-client's secret_keys JSON
// format, plain or encrypted, with the password taken from an environment variable or a file.
package file

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/ecadlabs/gotez/v2/crypt"
	"gopkg.in/yaml.v3"

	"github.com/signatory-go/signatory/internal/durable"
	"github.com/signatory-go/signatory/internal/sched"
	"github.com/signatory-go/signatory/internal/tezos"
	"github.com/signatory-go/signatory/internal/vault"
	"github.com/signatory-go/signatory/internal/yamlstrict"
)

// Driver is the driver name in the config.
const Driver = "file"

// Config is the vault's config section. A bare scalar is taken as File.
type Config struct {
	// File is the path of the secret_keys JSON file; $VARS are expanded.
	File string `yaml:"file"`
	// PasswordEnv names the environment variable holding the password of encrypted keys.
	PasswordEnv string `yaml:"password_env"`
	// PasswordFile is a file holding that password (used when PasswordEnv is unset).
	PasswordFile string `yaml:"password_file"`
	// InsecurePermissions accepts a key file that group or others can read (refused otherwise).
	InsecurePermissions bool `yaml:"insecure_permissions"`
}

// entry is one element of octez-client's secret_keys file.
type entry struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// Vault is a file vault.
type Vault struct {
	life     vault.Lifecycle
	name     string
	path     string
	cfg      Config
	mu       sync.Mutex // guards entries, keys and writes of the file
	entries  []entry
	keys     []*vault.SoftwareKey
	password []byte
	hasPass  bool
}

// New opens the vault described by node.
func New(ctx context.Context, name string, node *yaml.Node, env vault.Env) (vault.Vault, error) {
	var cfg Config
	if node != nil && node.Kind == yaml.ScalarNode {
		cfg.File = node.Value
	} else if node != nil {
		if err := yamlstrict.Decode(node, &cfg); err != nil {
			return nil, fmt.Errorf("vault %s: %w", name, err)
		}
	}
	return Open(name, cfg, env)
}

// Open opens a file vault from its config.
func Open(name string, cfg Config, env vault.Env) (*Vault, error) {
	if cfg.File == "" {
		return nil, yamlstrict.Invalidf("vault %s: config.file is required (path of a secret_keys JSON file)", name)
	}
	path := os.ExpandEnv(cfg.File)
	if !filepath.IsAbs(path) && env.BaseDir != "" {
		if _, err := os.Stat(path); err != nil {
			path = filepath.Join(env.BaseDir, path)
		}
	}
	v := &Vault{name: name, path: path, cfg: cfg}
	pw, ok, err := vault.Password(cfg.PasswordEnv, cfg.PasswordFile)
	if err != nil {
		return nil, fmt.Errorf("vault %s: %w", name, err)
	}
	v.password, v.hasPass = pw, ok

	fi, err := os.Stat(path)
	switch {
	case errors.Is(err, os.ErrNotExist) && env.Create:
		return v, nil
	case err != nil:
		return nil, fmt.Errorf("vault %s: cannot read key file: %w", name, err)
	case fi.Mode().Perm()&0o077 != 0 && !cfg.InsecurePermissions:
		return nil, fmt.Errorf("vault %s: key file %s has mode %04o: group or others can access it; run chmod 600 %s (or set insecure_permissions: true)",
			name, path, fi.Mode().Perm(), path)
	case fi.Mode().Perm()&0o077 != 0 && env.Logger != nil:
		env.Logger.Warn("key file is readable by group or others (accepted: insecure_permissions is set)",
			"vault", name, "file", path, "mode", fmt.Sprintf("%04o", fi.Mode().Perm()))
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("vault %s: cannot read key file: %w", name, err)
	}
	if err := json.Unmarshal(data, &v.entries); err != nil {
		return nil, fmt.Errorf("vault %s: key file %s is not a secret_keys JSON array: %w", name, path, err)
	}
	seenName := map[string]bool{}
	for i, e := range v.entries {
		if e.Name == "" {
			return nil, fmt.Errorf("vault %s: key file %s: entry %d has no name", name, path, i)
		}
		if seenName[e.Name] {
			return nil, fmt.Errorf("vault %s: key file %s: duplicate key name %q", name, path, e.Name)
		}
		seenName[e.Name] = true
	}
	// Parsing a key and deriving its public key (a scalar multiplication for tz4) is the start-up
	// cost of a large key file: done on every core, the first error in file order reported.
	keys := make([]*vault.SoftwareKey, len(v.entries))
	errs := make([]error, len(v.entries))
	sched.Each(len(v.entries), func(i int) {
		priv, err := v.parse(v.entries[i])
		if err != nil {
			errs[i] = err
			return
		}
		keys[i] = &vault.SoftwareKey{Priv: priv, Ref: v.entries[i].Name, Life: &v.life}
		keys[i].PublicKey()
	})
	seenPKH := map[string]string{}
	for i, e := range v.entries {
		if errs[i] != nil {
			return nil, errs[i]
		}
		pkh := keys[i].PublicKey().Hash().String()
		if other, dup := seenPKH[pkh]; dup {
			return nil, fmt.Errorf("vault %s: key file %s: keys %q and %q are the same key %s", name, path, other, e.Name, pkh)
		}
		seenPKH[pkh] = e.Name
		v.keys = append(v.keys, keys[i])
	}
	return v, nil
}

func (v *Vault) parse(e entry) (crypt.PrivateKey, error) {
	value := e.Value
	if i := strings.IndexByte(value, ':'); i >= 0 {
		value = value[i+1:]
	}
	var pw func() ([]byte, error)
	if v.hasPass {
		pw = func() ([]byte, error) { return append([]byte{}, v.password...), nil }
	}
	priv, err := tezos.ParseSecretKey(value, pw)
	switch {
	case errors.Is(err, tezos.ErrNoPassword):
		return nil, fmt.Errorf("vault %s: key %q is encrypted: set password_env or password_file in the vault's config", v.name, e.Name)
	case err != nil:
		return nil, fmt.Errorf("vault %s: key %q: %w", v.name, e.Name, err)
	}
	return priv, nil
}

// Name implements vault.Vault.
func (v *Vault) Name() string { return v.name }

// Driver implements vault.Vault.
func (v *Vault) Driver() string { return Driver }

// Path returns the key file's path.
func (v *Vault) Path() string { return v.path }

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
	if v.life.MarkClosed() {
		v.mu.Lock()
		clear(v.password)
		v.mu.Unlock()
	}
	return nil
}

// Import stores priv under name (the key hash when empty), encrypted when the vault has a password.
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
	for i, k := range v.keys {
		if k.Ref == name {
			return nil, fmt.Errorf("vault %s: a key named %q already exists", v.name, name)
		}
		if k.PublicKey().Hash().String() == pkh {
			return nil, fmt.Errorf("vault %s: key %s is already in the vault as %q", v.name, pkh, v.entries[i].Name)
		}
	}
	value := "unencrypted:" + string(priv.ToBase58())
	if v.hasPass {
		enc, err := tezos.EncryptSecretKey(priv, v.password)
		if err != nil {
			return nil, err
		}
		value = "encrypted:" + enc
	}
	entries := append(append([]entry{}, v.entries...), entry{Name: name, Value: value})
	if err := writeFile(v.path, entries); err != nil {
		return nil, fmt.Errorf("vault %s: %w", v.name, err)
	}
	key := &vault.SoftwareKey{Priv: priv, Ref: name, Life: &v.life}
	v.entries = entries
	v.keys = append(v.keys, key)
	return key, nil
}

// Generate creates a new key on curve and stores it as Import does.
func (v *Vault) Generate(ctx context.Context, curve tezos.Curve, name string) (vault.Key, error) {
	priv, err := tezos.GenerateKey(curve)
	if err != nil {
		return nil, err
	}
	return v.Import(ctx, priv, name)
}

// writeFile replaces path durably with entries: temp file 0600, fsync, rename, directory fsync.
func writeFile(path string, entries []entry) error {
	data, err := json.MarshalIndent(entries, "", "  ")
	if err != nil {
		return err
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("cannot create key directory: %w", err)
	}
	// Temp file (0600), fsync, rename, directory fsync: a crash leaves the old file or the new one.
	if err := durable.WriteBytes(path, ".secret_keys-", append(data, '\n')); err != nil {
		return fmt.Errorf("cannot write key file: %w", err)
	}
	return nil
}

var (
	_ vault.Importer  = (*Vault)(nil)
	_ vault.Generator = (*Vault)(nil)
)
