package cli

import (
	"context"
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/signatory-go/signatory/internal/daemon"
	"github.com/signatory-go/signatory/internal/policy"
	"github.com/signatory-go/signatory/internal/tezos"
	"github.com/signatory-go/signatory/internal/vault"
)

// aimedVault opens the one vault a command is aimed at, allowing it to start empty, and returns
// the config's policies for display.
func (g *globals) aimedVault(ctx context.Context, name string) (vault.Vault, map[string]*policy.Policy, error) {
	cfg, log, err := g.load()
	if err != nil {
		return nil, nil, err
	}
	v, err := daemon.OpenVault(ctx, cfg, name, vault.Env{BaseDir: cfg.BaseDir, Create: true, Logger: log})
	if err != nil {
		return nil, nil, err
	}
	return v, cfg.Policies, nil
}

func newGenerate(g *globals) *cobra.Command {
	var vaultName, keyType, name string
	var n int
	cmd := &cobra.Command{
		Use:   "generate",
		Short: "Generate new keys in a vault (file keys are encrypted when the vault has a password)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			curve, err := tezos.ParseCurve(keyType)
			if err != nil {
				return err
			}
			if n < 1 {
				return errors.New("--num must be at least 1")
			}
			if n > 1 && name != "" {
				return errors.New("--name can only be used with --num 1")
			}
			v, pol, err := g.aimedVault(cmd.Context(), vaultName)
			if err != nil {
				return err
			}
			defer v.Close()
			gen, ok := v.(vault.Generator)
			if !ok {
				return fmt.Errorf("vault %s (%s) cannot generate keys", vaultName, v.Driver())
			}
			var out []keyJSON
			for i := 0; i < n; i++ {
				k, err := gen.Generate(cmd.Context(), curve, name)
				if err != nil {
					return err
				}
				pkh := k.PublicKey().Hash().String()
				out = append(out, describe(pkh, k.PublicKey().String(), curve, v.Name(), v.Driver(), k.ID(), pol[pkh]))
			}
			return g.printKeys(out)
		},
	}
	cmd.Flags().StringVarP(&vaultName, "vault", "v", "", "vault name from the config (required)")
	cmd.Flags().StringVarP(&keyType, "type", "t", "ed25519", "key type: ed25519|tz1, secp256k1|tz2, p256|tz3, bls|tz4, mldsa44|tz5 (tz5: file and mem vaults)")
	cmd.Flags().IntVarP(&n, "num", "n", 1, "number of keys")
	cmd.Flags().StringVar(&name, "name", "", "alias of the new key (default: its key hash)")
	cmd.Flags().BoolVar(&g.jsonOut, "json", false, "print JSON")
	_ = cmd.MarkFlagRequired("vault")
	return cmd
}
