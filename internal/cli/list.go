package cli

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/signatory-go/signatory/internal/daemon"
	"github.com/signatory-go/signatory/internal/metrics"
	"github.com/signatory-go/signatory/internal/policy"
	"github.com/signatory-go/signatory/internal/tezos"
)

type keyJSON struct {
	PKH               string   `json:"pkh"`
	PublicKey         string   `json:"public_key"`
	Curve             string   `json:"curve"`
	Vault             string   `json:"vault"`
	Driver            string   `json:"driver"`
	Reference         string   `json:"reference"`
	Active            bool     `json:"active"`
	AllowedRequests   []string `json:"allowed_requests,omitempty"`
	AllowedOperations []string `json:"allowed_operations,omitempty"`
	AllowPoP          bool     `json:"allow_proof_of_possession"`
}

func describe(pkh, pub string, curve tezos.Curve, vaultName, driver, ref string, p *policy.Policy) keyJSON {
	k := keyJSON{PKH: pkh, PublicKey: pub, Curve: string(curve), Vault: vaultName, Driver: driver, Reference: ref, Active: p != nil}
	if p != nil {
		for _, r := range p.Requests {
			k.AllowedRequests = append(k.AllowedRequests, string(r))
		}
		k.AllowedOperations = p.Ops
		k.AllowPoP = p.AllowPoP
	}
	return k
}

func (g *globals) printKeys(keys []keyJSON) error {
	if g.jsonOut {
		if keys == nil {
			keys = []keyJSON{}
		}
		return g.printJSON(keys)
	}
	for i, k := range keys {
		if i > 0 {
			fmt.Fprintln(g.stdout)
		}
		fmt.Fprintf(g.stdout, "Public Key Hash:           %s\n", k.PKH)
		fmt.Fprintf(g.stdout, "Public Key:                %s\n", k.PublicKey)
		fmt.Fprintf(g.stdout, "Curve:                     %s\n", k.Curve)
		fmt.Fprintf(g.stdout, "Reference:                 %s\n", k.Reference)
		fmt.Fprintf(g.stdout, "Vault:                     %s (%s)\n", k.Vault, k.Driver)
		fmt.Fprintf(g.stdout, "Active:                    %v\n", k.Active)
		if k.Active {
			fmt.Fprintf(g.stdout, "Allowed Requests:          [%s]\n", strings.Join(k.AllowedRequests, " "))
			fmt.Fprintf(g.stdout, "Allowed Operations:        [%s]\n", strings.Join(k.AllowedOperations, " "))
			fmt.Fprintf(g.stdout, "Allow Proof of Possession: %v\n", k.AllowPoP)
		}
	}
	if len(keys) == 0 {
		fmt.Fprintln(g.stdout, "No keys.")
	}
	return nil
}

func newList(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the keys of every vault with their policy",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, log, err := g.load()
			if err != nil {
				return err
			}
			d, err := daemon.Open(cmd.Context(), cfg, log, metrics.New(Version))
			if err != nil {
				return err
			}
			defer d.Close()
			svc := d.Signer()
			var out []keyJSON
			for _, k := range svc.Keys() {
				out = append(out, describe(k.PKH, k.PublicKey.String(), k.Curve, k.Vault, k.Driver, k.Ref, k.Policy))
			}
			return g.printKeys(out)
		},
	}
	cmd.Flags().BoolVar(&g.jsonOut, "json", false, "print JSON")
	return cmd
}

type decodeJSON struct {
	Kind       string         `json:"kind"`
	Chain      string         `json:"chain_id,omitempty"`
	Level      *int32         `json:"level,omitempty"`
	Round      *int32         `json:"round,omitempty"`
	Slot       *int32         `json:"slot,omitempty"`
	Tag        uint8          `json:"tag,omitempty"`
	Class      string         `json:"watermark_class,omitempty"`
	Operations []string       `json:"operations,omitempty"`
	OpCounts   map[string]int `json:"operation_counts,omitempty"`
	Digest     string         `json:"digest"`
	Key        string         `json:"key,omitempty"`
	Allowed    *bool          `json:"allowed,omitempty"`
	Reason     string         `json:"reason,omitempty"`
	// Limits is the key's spending rules, what the request moves and the key's windows as they
	// would be with this request signed, when the key has limits.
	Limits *keyLimitsJSON `json:"limits,omitempty"`
}
