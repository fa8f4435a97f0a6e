package cli

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"gopkg.in/yaml.v3"

	"github.com/signatory-go/signatory/internal/blsthreshold"
	"github.com/signatory-go/signatory/internal/tezos"
	"github.com/signatory-go/signatory/internal/vault"
	vthreshold "github.com/signatory-go/signatory/internal/vault/threshold"
	"github.com/signatory-go/signatory/internal/watermark"
	"github.com/signatory-go/signatory/internal/yamlstrict"
)

// newThresholdMarks: `signatory threshold marks`.
func newThresholdMarks(g *globals) *cobra.Command {
	var pkh, from, chain string
	var timeout time.Duration
	var dryRun bool
	cmd := &cobra.Command{
		Use:   "marks",
		Short: "Give a threshold share its history: the highest marks of enough other members of its group",
		Long: `Raise the watermarks of the threshold share --key (a key of this config whose policy has
share_of) on --chain to the highest marks of the other members of its group, as they state them
signed by their own shares. The group is the threshold vault in --from (a coordinator's config,
or the vault config a ceremony printed) whose public_key is the share's share_of: every member
listed there but this share is asked, and at least max(t, n−t+1) of them must answer with a
statement that verifies, or nothing is written. In each class the highest level and round any of
them signed becomes this share's mark (level 0, every round, in a class none of them signed).

This is how a member whose store was lost, and a new member after a resharing (--from naming the
old group's config), gets its history before it signs. Run it while this member's signer is
stopped (the file store is locked while it runs), and after a resharing once the old group's
coordinators have stopped. docs/threshold.md gives the reasoning.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkKeyChain(pkh, chain); err != nil {
				return err
			}
			cfg, log, err := g.load()
			if err != nil {
				return err
			}
			pol := cfg.Policies[pkh]
			if pol == nil || pol.ShareOf == "" {
				return fmt.Errorf("--key %s: its policy in %s has no share_of: only a threshold share takes its marks from its group", pkh, g.configPath)
			}
			group, err := groupVault(from, pol.ShareOf)
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			answers := group.Marks(ctx, pkh, chain)
			t, n := group.Size()
			need := blsthreshold.MarksQuorum(t, n)
			high := map[string]*blsthreshold.MarkLevel{}
			var good int
			var failed []string
			for _, a := range answers {
				if a.Err != nil {
					failed = append(failed, a.Err.Error())
					log.Warn("a member's marks are not taken", "member", a.Index, "err", a.Err)
					continue
				}
				good++
				for _, c := range blsthreshold.MarksClasses {
					l := a.Marks.Marks[c]
					log.Info("member's marks", "member", a.Index, "class", c, "mark", markText(l))
					high[c] = blsthreshold.Higher(high[c], l)
				}
			}
			if good < need {
				return fmt.Errorf("%d of the group's members answered with marks that verify; %d are needed (threshold %d of %d), nothing written:\n  %s",
					good, need, t, n, strings.Join(failed, "\n  "))
			}
			var entries []watermark.Entry
			for _, c := range blsthreshold.MarksClasses {
				mark := watermark.Mark{Level: 0, Round: math.MaxInt32}
				if l := high[c]; l != nil {
					mark = watermark.Mark{Level: l.Level, Round: l.Round}
				}
				entries = append(entries, watermark.Entry{Key: watermark.Key{Chain: chain, PKH: pkh, Class: watermark.Class(c)}, Mark: mark})
			}
			return g.raise(cmd.Context(), cfg, log, entries, dryRun)
		},
	}
	cmd.Flags().StringVar(&pkh, "key", "", "this member's share (its tz4 address, listed in this config with share_of)")
	cmd.Flags().StringVar(&from, "from", "", "a config holding the group's threshold vault (a coordinator's, or the vault config a ceremony printed)")
	cmd.Flags().StringVar(&chain, "chain", "", "the chain id (NetXdQprcVkpaWU is mainnet)")
	cmd.Flags().DurationVar(&timeout, "timeout", 30*time.Second, "how long to wait for the members' answers")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "report what would be raised and kept, write nothing")
	cmd.Flags().BoolVar(&g.jsonOut, "json", false, "print the report as JSON")
	for _, f := range []string{"key", "from", "chain"} {
		_ = cmd.MarkFlagRequired(f)
	}
	return cmd
}

func markText(l *blsthreshold.MarkLevel) string {
	if l == nil {
		return "none"
	}
	return fmt.Sprintf("level %d round %d", l.Level, l.Round)
}

// groupVault reads the threshold vault config whose public_key is group from path: a signatory
// config (its vaults), one vault's config as a ceremony prints it (driver and config), or the
// config section alone. The vault is opened without its authentication_key: members answer for
// their marks without authentication.
func groupVault(path, group string) (*vthreshold.Vault, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--from: %w", err)
	}
	var top struct {
		Vaults map[string]struct {
			Driver string    `yaml:"driver"`
			Config yaml.Node `yaml:"config"`
		} `yaml:"vaults"`
		Driver string    `yaml:"driver"`
		Config yaml.Node `yaml:"config"`
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("--from %s: %w", path, err)
	}
	if err := doc.Decode(&top); err != nil {
		return nil, fmt.Errorf("--from %s: %w", path, err)
	}
	nodes := map[string]*yaml.Node{}
	switch {
	case top.Vaults != nil:
		for name, v := range top.Vaults {
			if v.Driver == vthreshold.Driver {
				nodes[name] = &v.Config
			}
		}
	case top.Driver != "":
		if top.Driver != vthreshold.Driver {
			return nil, fmt.Errorf("--from %s: driver %q is not %s", path, top.Driver, vthreshold.Driver)
		}
		nodes["threshold"] = &top.Config
	case len(doc.Content) > 0:
		nodes["threshold"] = doc.Content[0]
	}
	var found []string
	for name, node := range nodes {
		var c vthreshold.Config
		if err := yamlstrict.Decode(node, &c); err != nil {
			return nil, fmt.Errorf("--from %s: vault %s: %w", path, name, err)
		}
		if pub, err := tezos.ParsePublicKey(os.ExpandEnv(c.PublicKey)); err != nil || pub.String() != group {
			found = append(found, c.PublicKey)
			continue
		}
		c.AuthenticationKey = ""
		return vthreshold.Open(name, c, vault.Env{})
	}
	if len(found) == 0 {
		return nil, fmt.Errorf("--from %s: no threshold vault config", path)
	}
	return nil, errors.New("--from " + path + ": no threshold vault of the group " + group + " (found " + strings.Join(found, ", ") + ")")
}
