package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/signatory-go/signatory/internal/tezos"
)

// newBurstConfig writes what a burst run against a file vault needs: n fresh keys (curves in
// turn) in an octez-client secret_keys file, a signatory config allowing them consensus
// operations, and the comma-separated key hashes for --keys.
func newBurstConfig() *cobra.Command {
	var n int
	var curves, address, utility string
	var generic bool
	cmd := &cobra.Command{
		Use:   "burst-config <dir>",
		Short: "Write n fresh keys and a signatory config for the burst workload (file vault)",
		Long: `Write into dir: secret_keys.json (n fresh, unencrypted keys; curves taken in turn from
--curves; mode 0600), signatory.yaml (those keys in a file vault, a file watermark under dir/data,
each key allowed preattestations and attestations, and transactions with --generic) and keys.txt (the key hashes, comma-separated,
for --keys). The keys are throw-away benchmark keys: never use them for anything else.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			dir := args[0]
			if err := os.MkdirAll(dir, 0o700); err != nil {
				return err
			}
			var cs []tezos.Curve
			for _, c := range strings.Split(curves, ",") {
				curve, err := tezos.ParseCurve(strings.TrimSpace(c))
				if err != nil {
					return err
				}
				cs = append(cs, curve)
			}
			type entry struct {
				Name  string `json:"name"`
				Value string `json:"value"`
			}
			var entries []entry
			var pkhs []string
			var policies strings.Builder
			for i := range n {
				priv, err := tezos.GenerateKey(cs[i%len(cs)])
				if err != nil {
					return err
				}
				pkh := priv.Public().Hash().String()
				entries = append(entries, entry{Name: fmt.Sprintf("burst-%03d", i), Value: "unencrypted:" + string(priv.ToProtocol().ToBase58())})
				pkhs = append(pkhs, pkh)
				allow := "preattestation: , attestation: "
				if generic {
					allow += ", generic: [transaction]"
				}
				fmt.Fprintf(&policies, "  %s:\n    allow: {%s}\n", pkh, allow)
			}
			keys, _ := json.MarshalIndent(entries, "", "  ")
			if err := os.WriteFile(filepath.Join(dir, "secret_keys.json"), keys, 0o600); err != nil {
				return err
			}
			cfg := fmt.Sprintf("base_dir: %s\nserver:\n  address: %s\n  utility_address: %s\nvaults:\n  local:\n    driver: file\n"+
				"    config: {file: %s}\nwatermark:\n  driver: file\ntezos:\n%s",
				filepath.Join(dir, "data"), address, utility, filepath.Join(dir, "secret_keys.json"), policies.String())
			if err := os.WriteFile(filepath.Join(dir, "signatory.yaml"), []byte(cfg), 0o600); err != nil {
				return err
			}
			return os.WriteFile(filepath.Join(dir, "keys.txt"), []byte(strings.Join(pkhs, ",")+"\n"), 0o600)
		},
	}
	f := cmd.Flags()
	f.IntVarP(&n, "keys", "n", 256, "number of keys")
	f.StringVar(&curves, "curves", "tz1,tz4", "key types, taken in turn")
	f.StringVar(&address, "address", "127.0.0.1:6732", "the signer's address in the written config")
	f.StringVar(&utility, "utility-address", "127.0.0.1:9583", "the signer's utility address (/healthz, /metrics) in the written config")
	f.BoolVar(&generic, "generic", false, "also allow the keys to sign transactions (the generic workload)")
	return cmd
}
