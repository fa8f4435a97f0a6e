package cli

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/signatory-go/signatory/internal/config"
	"github.com/signatory-go/signatory/internal/vault"
	vaultawskms "github.com/signatory-go/signatory/internal/vault/awskms"
	vaultazure "github.com/signatory-go/signatory/internal/vault/azure"
	vaultcloudkms "github.com/signatory-go/signatory/internal/vault/cloudkms"
	vaultfile "github.com/signatory-go/signatory/internal/vault/file"
	vaulthashicorp "github.com/signatory-go/signatory/internal/vault/hashicorp"
	vaultmem "github.com/signatory-go/signatory/internal/vault/mem"
	vaultpkcs11 "github.com/signatory-go/signatory/internal/vault/pkcs11"
	vaultyubihsm "github.com/signatory-go/signatory/internal/vault/yubihsm"
	"github.com/signatory-go/signatory/internal/watermark"
	wmdynamodb "github.com/signatory-go/signatory/internal/watermark/dynamodb"
	wmetcd "github.com/signatory-go/signatory/internal/watermark/etcd"
	wmfile "github.com/signatory-go/signatory/internal/watermark/file"
	wmmem "github.com/signatory-go/signatory/internal/watermark/mem"
	wmpostgres "github.com/signatory-go/signatory/internal/watermark/postgres"
	"github.com/signatory-go/signatory/internal/yamlstrict"
)

// vaultDrivers is the one table of vault backends: driver name → constructor.
var vaultDrivers = map[string]func(name string, node *yaml.Node, env vault.Env) (vault.Vault, error){
	vaultfile.Driver:      vaultfile.New,
	vaultmem.Driver:       vaultmem.New,
	vaultawskms.Driver:    vaultawskms.New,
	vaultpkcs11.Driver:    vaultpkcs11.New,
	vaultcloudkms.Driver:  vaultcloudkms.New,
	vaultazure.Driver:     vaultazure.New,
	vaulthashicorp.Driver: vaulthashicorp.New,
	vaultyubihsm.Driver:   vaultyubihsm.New,
}

// watermarkDrivers is the one table of watermark backends.
var watermarkDrivers = map[string]func(cfg *config.Config, node *yaml.Node, log *slog.Logger) (watermark.Store, error){
	"file": func(cfg *config.Config, node *yaml.Node, log *slog.Logger) (watermark.Store, error) {
		return wmfile.Open(cfg.BaseDir, wmfile.WithLogger(log))
	},
	"mem": func(*config.Config, *yaml.Node, *slog.Logger) (watermark.Store, error) { return wmmem.New(), nil },
	wmpostgres.Driver: func(_ *config.Config, node *yaml.Node, log *slog.Logger) (watermark.Store, error) {
		return wmpostgres.New(context.Background(), node, log)
	},
	wmetcd.Driver: func(_ *config.Config, node *yaml.Node, log *slog.Logger) (watermark.Store, error) {
		return wmetcd.New(context.Background(), node, log)
	},
	wmdynamodb.Driver: wmdynamodb.New,
	"aws":             wmdynamodb.New, // the reference's name for the DynamoDB store
}

// openVaults builds every configured vault. As in the reference, a vault that fails to open (a
// wrong password, an unreachable service) is logged and skipped. A config mistake — an unknown
// driver name, an unknown key in a driver's config — stops start-up instead: it will not fix
// itself, and the operator would believe a setting applies that does not. The vaults already
// opened are closed then.
func openVaults(cfg *config.Config, env vault.Env, log *slog.Logger) (vaults []vault.Vault, err error) {
	names := make([]string, 0, len(cfg.Vaults))
	for n := range cfg.Vaults {
		names = append(names, n)
	}
	sort.Strings(names)
	var out []vault.Vault
	for _, name := range names {
		b := cfg.Vaults[name]
		ctor, ok := vaultDrivers[b.Driver]
		if !ok {
			closeAll(out)
			return nil, fmt.Errorf("vault %s: unknown vault driver: %s (known: %s)", name, b.Driver, strings.Join(driverNames(), ", "))
		}
		v, err := ctor(name, &b.Config, env)
		if err != nil {
			if yamlstrict.IsConfigError(err) {
				closeAll(out)
				return nil, fmt.Errorf("vaults.%s.config: %w", name, err)
			}
			log.Error("vault skipped", "vault", name, "err", err)
			continue
		}
		out = append(out, v)
	}
	return out, nil
}

func closeAll(vs []vault.Vault) {
	for _, v := range vs {
		v.Close()
	}
}

func driverNames() []string {
	names := make([]string, 0, len(vaultDrivers))
	for n := range vaultDrivers {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

func openVault(cfg *config.Config, name string, env vault.Env) (vault.Vault, error) {
	b, ok := cfg.Vaults[name]
	if !ok {
		return nil, fmt.Errorf("no vault named %q in the config", name)
	}
	ctor, ok := vaultDrivers[b.Driver]
	if !ok {
		return nil, fmt.Errorf("vault %s: unknown vault driver: %s", name, b.Driver)
	}
	return ctor(name, &b.Config, env)
}

// openWatermarkSnapshot opens the store for reading only: the file store then takes no lock, so
// `watermark show` works while the daemon runs. Other stores open as usual.
func openWatermarkSnapshot(cfg *config.Config, log *slog.Logger) (watermark.Store, error) {
	if cfg.Watermark.Driver == "file" {
		return wmfile.Open(cfg.BaseDir, wmfile.WithLogger(log), wmfile.ReadOnly())
	}
	return openWatermark(cfg, log)
}

func openWatermark(cfg *config.Config, log *slog.Logger) (watermark.Store, error) {
	ctor, ok := watermarkDrivers[cfg.Watermark.Driver]
	if !ok {
		return nil, fmt.Errorf("unknown watermark backend: %s", cfg.Watermark.Driver)
	}
	return ctor(cfg, &cfg.Watermark.Config, log)
}
