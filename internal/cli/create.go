package cli

import (
	"fmt"

	"github.com/ecadlabs/gotez/v2/crypt"
	"github.com/spf13/cobra"

	"github.com/signatory-go/signatory/internal/daemon"
	"github.com/signatory-go/signatory/internal/tezos"
	"github.com/signatory-go/signatory/internal/vault"
)

func newCreate(g *globals) *cobra.Command {
	create := &cobra.Command{Use: "create", Short: "Create artefacts with the keys of the vaults"}
	bls := &cobra.Command{Use: "bls", Short: "BLS (tz4) artefacts"}
	var override string
	proof := &cobra.Command{
		Use:   "proof <tz4 key hash>",
		Short: "Print a proof of possession for a tz4 key of any vault (octez-client's `create bls proof for`)",
		Long: `Print a BLS proof of possession for a tz4 key held by any configured vault, as octez-client's
"create bls proof for" does: the key signs its own public key (or, with --override-public-key,
another public key, as companion and threshold keys need) with the proof-of-possession tag. The
proof is verified before it is printed. Only the vaults are opened, not the watermark store, so
this works while the daemon runs.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			pkh := args[0]
			if _, err := tezos.ParsePublicKeyHash(pkh); err != nil {
				return err
			}
			var over *crypt.BLSPublicKey
			if override != "" {
				var err error
				if over, err = tezos.ParseBLSPublicKey(override); err != nil {
					return fmt.Errorf("--override-public-key: %w", err)
				}
			}
			cfg, log, err := g.load()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			vaults, err := daemon.OpenVaults(ctx, cfg, vault.Env{BaseDir: cfg.BaseDir, Logger: log}, log)
			if err != nil {
				return err
			}
			defer daemon.CloseVaults(vaults, log)
			for _, v := range vaults {
				keys, err := v.List(ctx)
				if err != nil {
					log.Warn("vault not listed", "vault", v.Name(), "err", err)
					continue
				}
				for _, k := range keys {
					if k.PublicKey().Hash().String() != pkh {
						continue
					}
					pub, ok := k.PublicKey().(*crypt.BLSPublicKey)
					if !ok {
						return fmt.Errorf("%s is not a tz4 (BLS) key", pkh)
					}
					target := pub
					if over != nil {
						target = over
					}
					var p crypt.Signature
					if op, ok := k.(vault.PossessionOverProver); ok {
						p, err = op.ProvePossessionOver(ctx, target)
					} else if pp, ok := k.(vault.PossessionProver); ok && over == nil {
						p, err = pp.ProvePossession(ctx)
					} else {
						return fmt.Errorf("vault %s (%s) cannot make this proof of possession", v.Name(), v.Driver())
					}
					if err != nil {
						return err
					}
					if !tezos.VerifyPossessionOver(pub, target, p) {
						return fmt.Errorf("vault %s returned a proof of possession that does not verify", v.Name())
					}
					if g.jsonOut {
						return g.printJSON(map[string]string{"pkh": pkh, "public_key": pub.String(), "over": target.String(),
							"bls_prove_possession": p.String()})
					}
					fmt.Fprintln(g.stdout, p.String())
					return nil
				}
			}
			return fmt.Errorf("no vault holds %s", pkh)
		},
	}
	proof.Flags().StringVar(&override, "override-public-key", "", "make the proof over this public key (BLpk…) instead of the key's own")
	proof.Flags().BoolVar(&g.jsonOut, "json", false, "print JSON")
	bls.AddCommand(proof)
	create.AddCommand(bls)
	return create
}
