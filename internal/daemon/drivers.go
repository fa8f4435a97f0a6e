package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"sync"

	"golang.org/x/crypto/blake2b"

	"github.com/signatory-go/signatory/internal/config"
	"github.com/signatory-go/signatory/internal/signer"
	"github.com/signatory-go/signatory/internal/tezos"
	"github.com/signatory-go/signatory/internal/vault"
	vaultawskms "github.com/signatory-go/signatory/internal/vault/awskms"
	vaultazure "github.com/signatory-go/signatory/internal/vault/azure"
	vaultcloudkms "github.com/signatory-go/signatory/internal/vault/cloudkms"
	vaultfile "github.com/signatory-go/signatory/internal/vault/file"
	vaulthashicorp "github.com/signatory-go/signatory/internal/vault/hashicorp"
	vaultmem "github.com/signatory-go/signatory/internal/vault/mem"
	vaultpkcs11 "github.com/signatory-go/signatory/internal/vault/pkcs11"
	vaultthreshold "github.com/signatory-go/signatory/internal/vault/threshold"
	vaultyubihsm "github.com/signatory-go/signatory/internal/vault/yubihsm"
	"github.com/signatory-go/signatory/internal/watermark"
	wmdynamodb "github.com/signatory-go/signatory/internal/watermark/dynamodb"
	wmetcd "github.com/signatory-go/signatory/internal/watermark/etcd"
	wmfile "github.com/signatory-go/signatory/internal/watermark/file"
	wmmem "github.com/signatory-go/signatory/internal/watermark/mem"
	wmpostgres "github.com/signatory-go/signatory/internal/watermark/postgres"
	"github.com/signatory-go/signatory/internal/yamlstrict"
)

// VaultDrivers is the one table of vault backends: driver name → constructor. Every constructor
// has the same shape (vault.Constructor).
var VaultDrivers = map[string]vault.Constructor{
	vaultfile.Driver:      vaultfile.New,
	vaultmem.Driver:       vaultmem.New,
	vaultawskms.Driver:    vaultawskms.New,
	vaultpkcs11.Driver:    vaultpkcs11.New,
	vaultcloudkms.Driver:  vaultcloudkms.New,
	vaultazure.Driver:     vaultazure.New,
	vaulthashicorp.Driver: vaulthashicorp.New,
	vaultyubihsm.Driver:   vaultyubihsm.New,
	vaultthreshold.Driver: vaultthreshold.New,
}

// VaultCurves are the key types each vault driver can hold (docs/vaults.md's table, which a test
// compares with this one): what signatory doctor names when a key is in no vault.
var VaultCurves = map[string][]tezos.Curve{
	vaultfile.Driver:      tezos.Curves,
	vaultmem.Driver:       tezos.Curves,
	vaultpkcs11.Driver:    {tezos.Ed25519, tezos.Secp256k1, tezos.P256},
	vaultyubihsm.Driver:   {tezos.Ed25519, tezos.Secp256k1, tezos.P256},
	vaultawskms.Driver:    {tezos.Secp256k1, tezos.P256},
	vaultcloudkms.Driver:  {tezos.Ed25519, tezos.Secp256k1, tezos.P256},
	vaultazure.Driver:     {tezos.Secp256k1, tezos.P256},
	vaulthashicorp.Driver: {tezos.Ed25519, tezos.P256},
	vaultthreshold.Driver: {tezos.BLS},
}

// WatermarkDrivers is the one table of watermark backends, of the same shape.
var WatermarkDrivers = map[string]watermark.Constructor{
	wmfile.Driver:          wmfile.New,
	wmmem.Driver:           wmmem.New,
	wmpostgres.Driver:      wmpostgres.New,
	wmetcd.Driver:          wmetcd.New,
	wmdynamodb.Driver:      wmdynamodb.New,
	wmdynamodb.DriverAlias: wmdynamodb.New,
}

// OpenVaults builds every configured vault. As in the reference, a vault that fails to open (a
// wrong password, an unreachable service) is logged and skipped. A config mistake — an unknown
// driver name, an unknown key in a driver's config, a required setting missing — stops start-up
// instead: it will not fix itself, and the operator would believe a setting applies that does
// not. The vaults already opened are closed then, as they are when ctx is cancelled.
func OpenVaults(ctx context.Context, cfg *config.Config, env vault.Env, log *slog.Logger) ([]vault.Vault, error) {
	keys := &vaultKeys{}
	out, err := openVaults(ctx, cfg, env, keys, skipVault(log, nil))
	keys.set(out)
	return out, err
}

// openVaults is OpenVaults with the vaults' authentication keys found in keys (the caller sets
// them) and skip deciding what a vault that fails to open, other than by a config mistake, does:
// skipped when it returns nil, else that error stops it all.
func openVaults(ctx context.Context, cfg *config.Config, env vault.Env, keys *vaultKeys, skip func(name string, err error) error) (out []vault.Vault, err error) {
	env.SignWith = keys.signWith
	log := env.Logger
	if log == nil {
		log = slog.Default()
	}
	names := make([]string, 0, len(cfg.Vaults))
	for n := range cfg.Vaults {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		if err := ctx.Err(); err != nil {
			CloseVaults(out, log)
			return nil, err
		}
		b := cfg.Vaults[name]
		ctor, ok := VaultDrivers[b.Driver]
		if !ok {
			CloseVaults(out, log)
			return nil, fmt.Errorf("vaults.%s: unknown vault driver %q (known: %s)", name, b.Driver, strings.Join(driverNames(VaultDrivers), ", "))
		}
		v, err := ctor(ctx, name, &b.Config, env)
		if err != nil {
			if yamlstrict.IsConfigError(err) || errors.Is(err, context.Canceled) && ctx.Err() != nil {
				CloseVaults(out, log)
				return nil, fmt.Errorf("vaults.%s.config: %w", name, err)
			}
			if err := skip(name, err); err != nil {
				CloseVaults(out, log)
				return nil, err
			}
			continue
		}
		out = append(out, v)
	}
	return out, nil
}

// skipVault is what openVaults does with a vault that fails to open (not by a config mistake):
// it is logged and skipped, as the reference does at start-up, unless it is one of serving (the
// vaults of the config in force, at a reload), whose keys would then go: that refuses it all.
func skipVault(log *slog.Logger, serving []vault.Vault) func(name string, err error) error {
	return func(name string, err error) error {
		if slices.ContainsFunc(serving, func(v vault.Vault) bool { return v.Name() == name }) {
			return fmt.Errorf("vaults.%s: it serves under the config in force, and does not open again: %w", name, err)
		}
		log.Error("vault skipped", "vault", name, "err", err)
		return nil
	}
}

// vaultKeys finds a key by address among the opened vaults, for vault.Env.SignWith: a vault that
// authenticates its requests to other signers (threshold's authentication_key) signs with it.
type vaultKeys struct {
	mu     sync.Mutex
	vaults []vault.Vault
	found  map[string]vault.Key
}

func (k *vaultKeys) set(vs []vault.Vault) {
	k.mu.Lock()
	k.vaults, k.found = vs, nil
	k.mu.Unlock()
}

// key returns the key of address pkh, listing the vaults (threshold vaults excepted: their keys
// are no authentication keys) the first time it is asked.
func (k *vaultKeys) key(ctx context.Context, pkh string) (vault.Key, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if key, ok := k.found[pkh]; ok {
		return key, nil
	}
	for _, v := range k.vaults {
		if v.Driver() == vaultthreshold.Driver {
			continue
		}
		keys, err := v.List(ctx)
		if err != nil {
			continue
		}
		for _, key := range keys {
			if key.PublicKey().Hash().String() == pkh {
				if k.found == nil {
					k.found = map[string]vault.Key{}
				}
				k.found[pkh] = key
				return key, nil
			}
		}
	}
	return nil, fmt.Errorf("authentication key %s: in none of the signer's vaults", pkh)
}

// signWith signs authentication bytes (0x04 0x01 …, tezos.AuthenticatedBytes) with the key of
// address pkh; anything else is refused, so this path, which passes no policy and no watermark,
// can never sign a baker's payload.
func (k *vaultKeys) signWith(ctx context.Context, pkh string, message []byte) (string, error) {
	if len(message) < 2 || message[0] != 0x04 || message[1] != 0x01 {
		return "", errors.New("SignWith signs authentication bytes only")
	}
	key, err := k.key(ctx, pkh)
	if err != nil {
		return "", err
	}
	digest := blake2b.Sum256(message)
	// Version 3, the latest: every key type signs with it. Low-S and the check as for any signature.
	sig, _, err := signer.SignChecked(ctx, key, key.PublicKey(), message, &digest, 3)
	if err != nil {
		return "", fmt.Errorf("authentication key %s: %w", pkh, err)
	}
	return tezos.SignatureString(sig), nil
}

// CloseVaults closes vaults opened before a failed start-up step, logging what fails to close.
func CloseVaults(vs []vault.Vault, log *slog.Logger) {
	for _, v := range vs {
		if err := v.Close(); err != nil {
			log.Error("closing vault", "vault", v.Name(), "err", err)
		}
	}
}

func driverNames[T any](table map[string]T) []string {
	names := make([]string, 0, len(table))
	for n := range table {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// OpenVault opens one vault by name (generate, import): here any failure is the command's error.
func OpenVault(ctx context.Context, cfg *config.Config, name string, env vault.Env) (vault.Vault, error) {
	b, ok := cfg.Vaults[name]
	if !ok {
		return nil, fmt.Errorf("no vault named %q in the config", name)
	}
	ctor, ok := VaultDrivers[b.Driver]
	if !ok {
		return nil, fmt.Errorf("vaults.%s: unknown vault driver %q (known: %s)", name, b.Driver, strings.Join(driverNames(VaultDrivers), ", "))
	}
	return ctor(ctx, name, &b.Config, env)
}

// OpenWatermark opens the configured watermark store. With readOnly, the store is opened for
// reading only: the file store then takes no lock, so `watermark show` works while the daemon
// runs; other stores open as usual.
func OpenWatermark(ctx context.Context, cfg *config.Config, log *slog.Logger, readOnly bool) (watermark.Store, error) {
	ctor, ok := WatermarkDrivers[cfg.Watermark.Driver]
	if !ok {
		return nil, fmt.Errorf("watermark: unknown watermark driver %q (known: %s)", cfg.Watermark.Driver, strings.Join(driverNames(WatermarkDrivers), ", "))
	}
	return ctor(ctx, "watermark", &cfg.Watermark.Config, vault.Env{BaseDir: cfg.BaseDir, Logger: log, ReadOnly: readOnly})
}
