package cli

import (
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/signatory-go/signatory/internal/request"
)

func newDecode(g *globals) *cobra.Command {
	var key string
	var version int
	cmd := &cobra.Command{
		Use:   "decode <hex>",
		Short: "Show what a payload is (kind, chain, level, round, operations) and, with --key, whether policy allows it",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			msg, err := hex.DecodeString(strings.TrimPrefix(strings.Trim(strings.TrimSpace(args[0]), `"`), "0x"))
			if err != nil {
				return fmt.Errorf("payload is not hex: %w", err)
			}
			req, err := request.Decode(msg, request.Version(version))
			if err != nil {
				return err
			}
			out := decodeJSON{Kind: string(req.Kind), Chain: req.ChainID(), Tag: req.Tag, Class: string(req.Class()),
				Operations: req.Ops, Digest: hex.EncodeToString(req.Digest[:])}
			if req.Watermarked() {
				out.Level, out.Round = &req.Level, &req.Round
			}
			if req.Slot >= 0 {
				out.Slot = &req.Slot
			}
			if req.Kind == request.Generic {
				out.OpCounts = req.OpCounts()
			}
			if key != "" {
				cfg, _, err := g.load()
				if err != nil {
					return err
				}
				out.Key = key
				allowed := false
				if p := cfg.Policies[key]; p == nil {
					out.Reason = key + " is not listed in config"
				} else if err := p.Check(req, ""); err != nil {
					out.Reason = err.Error()
				} else {
					allowed = true
				}
				out.Allowed = &allowed
			}
			if g.jsonOut {
				return g.printJSON(out)
			}
			w := g.stdout
			fmt.Fprintf(w, "Kind:        %s\n", out.Kind)
			if req.Watermarked() {
				fmt.Fprintf(w, "Chain:       %s\nLevel:       %d\nRound:       %d\n", out.Chain, req.Level, req.Round)
				if out.Slot != nil {
					fmt.Fprintf(w, "Slot:        %d\n", req.Slot)
				}
				if req.Tag != 0 {
					fmt.Fprintf(w, "Tag:         %d\n", req.Tag)
				}
				fmt.Fprintf(w, "Watermark:   %s\n", out.Class)
			}
			if len(req.Ops) > 0 {
				fmt.Fprintf(w, "Operations:  %s\n", strings.Join(req.Ops, ", "))
			}
			fmt.Fprintf(w, "Digest:      %s\n", out.Digest)
			if out.Allowed != nil {
				if *out.Allowed {
					fmt.Fprintf(w, "Policy:      allowed for %s\n", key)
				} else {
					fmt.Fprintf(w, "Policy:      refused for %s: %s\n", key, out.Reason)
				}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&key, "key", "", "key hash whose policy (from the config) to check the payload against")
	cmd.Flags().IntVar(&version, "signing-version", 2, "signing version (1 decodes with protocol 022 encodings)")
	cmd.Flags().BoolVar(&g.jsonOut, "json", false, "print JSON")
	return cmd
}
