package cli

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/signatory-go/signatory/internal/config"
	"github.com/signatory-go/signatory/internal/policy"
	"github.com/signatory-go/signatory/internal/spending"
	"github.com/signatory-go/signatory/internal/tezos"
)

// windowJSON is one rolling window of a key as `limits show` and `decode --key` print it.
type windowJSON struct {
	Rule   string `json:"rule"`   // max_total or max_operations
	Period string `json:"period"` // e.g. 24h0m0s
	Limit  string `json:"limit"`  // tez (max_total) or a count
	Used   string `json:"used"`   // in the window ending now
	Left   string `json:"remaining"`
	// Frees is when the oldest entry counted leaves the window (RFC 3339), "" when none is.
	Frees string `json:"next_release,omitempty"`
}

// keyLimitsJSON is one key's spending policy and windows.
type keyLimitsJSON struct {
	PKH     string       `json:"pkh"`
	Rules   []string     `json:"rules"`
	Amount  string       `json:"amount,omitempty"` // decode --key: what the request moves, in tez
	Windows []windowJSON `json:"windows,omitempty"`
}

// windowsOf describes pol's windows over spends at now.
func windowsOf(l *policy.Limits, spends []spending.Spend, now time.Time) []windowJSON {
	w := l.Windows
	spends = slices.SortedFunc(slices.Values(spends), func(a, b spending.Spend) int { return a.At.Compare(b.At) })
	u := spending.UsageAt(spends, w, now)
	frees := func(period time.Duration) string {
		for _, s := range spends { // oldest first
			if s.At.After(now.Add(-period)) {
				return s.At.Add(period).UTC().Format(time.RFC3339)
			}
		}
		return ""
	}
	var out []windowJSON
	if w.AmountPeriod > 0 {
		out = append(out, windowJSON{Rule: "max_total", Period: w.AmountPeriod.String(), Limit: tezos.FormatTez(w.Amount) + " tez",
			Used: tezos.FormatTez(u.Amount) + " tez", Left: tezos.FormatTez(max(w.Amount-u.Amount, 0)) + " tez", Frees: frees(w.AmountPeriod)})
	}
	if w.CountPeriod > 0 {
		out = append(out, windowJSON{Rule: "max_operations", Period: w.CountPeriod.String(), Limit: fmt.Sprint(w.Count),
			Used: fmt.Sprint(u.Count), Left: fmt.Sprint(max(w.Count-u.Count, 0)), Frees: frees(w.CountPeriod)})
	}
	return out
}

// readSpends opens the configured store for reading and returns every key's spending list.
func (g *globals) readSpends(ctx context.Context) (map[string][]spending.Spend, *config.Config, error) {
	store, cfg, _, err := g.loadStore(ctx, true)
	if err != nil {
		return nil, cfg, err
	}
	defer store.Close()
	sp, ok := store.(spending.Store)
	if !ok {
		return nil, cfg, fmt.Errorf("the %s watermark store keeps no spending windows", store.Name())
	}
	all, err := sp.ListSpends(ctx)
	return all, cfg, err
}

func printWindows(g *globals, windows []windowJSON) {
	for _, w := range windows {
		line := fmt.Sprintf("  %s: %s used of %s in the last %s, %s left", w.Rule, w.Used, w.Limit, w.Period, w.Left)
		if w.Frees != "" {
			line += "; the oldest leaves the window at " + w.Frees
		}
		fmt.Fprintln(g.stdout, line)
	}
}

func newLimits(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "limits", Short: "Inspect the spending limits and their windows"}
	show := &cobra.Command{
		Use:   "show",
		Short: "Show every key's spending limits and what its rolling windows hold now",
		Long: `Show, for every key with limits: under tezos:, its rules and, for max_total and
max_operations, what the rolling window ending now holds, what is left, and when the oldest
request counted leaves the window. The store is opened for reading only: this works while the
signer runs.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, _, err := g.load()
			if err != nil {
				return err
			}
			var keys []string
			for _, pkh := range cfg.KeyOrder {
				if p := cfg.Policies[pkh]; p != nil && p.Limits != nil {
					keys = append(keys, pkh)
				}
			}
			var spends map[string][]spending.Spend
			for _, pkh := range keys {
				if cfg.Policies[pkh].Limits.Windows.Enabled() {
					if spends, _, err = g.readSpends(cmd.Context()); err != nil {
						return err
					}
					break
				}
			}
			now := time.Now()
			out := make([]keyLimitsJSON, 0, len(keys))
			for _, pkh := range keys {
				l := cfg.Policies[pkh].Limits
				out = append(out, keyLimitsJSON{PKH: pkh, Rules: l.Summary(), Windows: windowsOf(l, spends[pkh], now)})
			}
			if g.jsonOut {
				return g.printJSON(out)
			}
			if len(out) == 0 {
				fmt.Fprintln(g.stdout, "no key has spending limits")
			}
			for _, k := range out {
				fmt.Fprintf(g.stdout, "%s: %s\n", k.PKH, strings.Join(k.Rules, "; "))
				printWindows(g, k.Windows)
			}
			return nil
		},
	}
	show.Flags().BoolVar(&g.jsonOut, "json", false, "print JSON")
	cmd.AddCommand(show)
	return cmd
}
