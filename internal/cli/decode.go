package cli

import (
	"context"
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/signatory-go/signatory/internal/policy"
	"github.com/signatory-go/signatory/internal/request"
	"github.com/signatory-go/signatory/internal/spending"
	"github.com/signatory-go/signatory/internal/tezos"
	"github.com/signatory-go/signatory/internal/watermark"
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
			class, _ := watermark.ClassOf(string(req.Kind))
			out := decodeJSON{Kind: string(req.Kind), Chain: req.ChainID(), Tag: req.Tag, Class: string(class),
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
				} else if req.Kind == request.Generic && p.Limits != nil {
					out.Limits = &keyLimitsJSON{PKH: key, Rules: p.Limits.Summary()}
					allowed, out.Reason, err = g.explainLimits(cmd.Context(), p.Limits, key, msg, req, version, out.Limits)
					if err != nil {
						return err
					}
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
			if out.Limits != nil {
				fmt.Fprintf(w, "Limits:      %s\n", strings.Join(out.Limits.Rules, "; "))
				if out.Limits.Amount != "" {
					fmt.Fprintf(w, "Amount:      %s tez\n", out.Limits.Amount)
				}
				printWindows(g, out.Limits.Windows)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&key, "key", "", "key hash whose policy (from the config) to check the payload against")
	cmd.Flags().IntVar(&version, "signing-version", 2, "signing version (1 decodes with protocol 022 encodings)")
	cmd.Flags().BoolVar(&g.jsonOut, "json", false, "print JSON")
	return cmd
}

// explainLimits judges a generic request against the key's limits as the signer would now:
// each content against the per-content rules, then the request against what the key's windows
// hold (read from the store, which is not changed). It fills lim's windows as they would be
// after signing.
func (g *globals) explainLimits(ctx context.Context, l *policy.Limits, key string, msg []byte, req *request.Request, version int, lim *keyLimitsJSON) (bool, string, error) {
	contents, err := request.Contents(msg, request.Version(version))
	if err != nil {
		return false, "", err
	}
	lim.Amount = tezos.FormatTez(policy.Amount(contents))
	if err := l.CheckContents(contents); err != nil {
		return false, err.Error(), nil
	}
	if !l.Windows.Enabled() {
		return true, "", nil
	}
	all, _, err := g.readSpends(ctx)
	if err != nil {
		return false, "", err
	}
	now := time.Now()
	spends := all[key]
	spend := spending.Spend{ID: "decode", Digest: req.Digest, At: now, Amount: policy.Amount(contents)}
	next, _, err := spending.ApplySpend(spends, spend, l.Windows)
	if err != nil {
		lim.Windows = windowsOf(l, spends, now)
		return false, err.Error(), nil
	}
	lim.Windows = windowsOf(l, next, now)
	return true, "", nil
}
