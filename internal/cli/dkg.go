package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/ecadlabs/gotez/v2/crypt"
	"github.com/spf13/cobra"
	"gopkg.in/yaml.v3"

	"github.com/signatory-go/signatory/internal/blsthreshold"
	"github.com/signatory-go/signatory/internal/dkg"
	"github.com/signatory-go/signatory/internal/durable"
	"github.com/signatory-go/signatory/internal/metrics"
	"github.com/signatory-go/signatory/internal/tezos"
)

// newThresholdIdentity: `signatory threshold identity --out FILE`.
func newThresholdIdentity(g *globals) *cobra.Command {
	var out string
	cmd := &cobra.Command{
		Use:   "identity",
		Short: "Make a member's long-term identity key for key-generation ceremonies",
		Long: `Make a member's long-term identity key and write it to --out (mode 0600, never
overwritten). Print its public key (BLpk…): every member's ceremony config lists it under the
member's identity. The identity key authenticates what the member sends in a ceremony and decrypts
what it receives; it never signs for the baker and is not a share.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if out == "" {
				return errors.New("--out is required: the file to write the identity key to")
			}
			k, err := dkg.NewIdentityKey()
			if err != nil {
				return err
			}
			if err := dkg.WriteIdentity(out, k); err != nil {
				return err
			}
			pub := k.Public()
			if g.jsonOut {
				return g.printJSON(map[string]string{"identity": pub.String(), "file": out})
			}
			fmt.Fprintf(g.stdout, "Identity key written to %s. Its public key, for the ceremony config:\n  %s\n", out, pub)
			return nil
		},
	}
	cmd.Flags().StringVar(&out, "out", "", "file to write the identity key to")
	cmd.Flags().BoolVar(&g.jsonOut, "json", false, "print JSON")
	return cmd
}

// dkgJSON is what `threshold dkg` prints with --json.
type dkgJSON struct {
	Ceremony       string               `json:"ceremony"`
	Index          int                  `json:"index"`
	GroupPublicKey string               `json:"group_public_key"`
	GroupPKH       string               `json:"group_public_key_hash"`
	Threshold      int                  `json:"threshold"`
	Members        []dkgMemberJSON      `json:"members"`
	Excluded       []dkgExcludedJSON    `json:"excluded"`
	Complaints     []dkg.Complaint      `json:"complaints"`
	Transcript     string               `json:"transcript"`
	Leaving        bool                 `json:"leaving,omitempty"`
	SecretKeys     string               `json:"secret_keys_file"`
	Alias          string               `json:"alias"`
	Share          string               `json:"share_public_key_hash"`
	VaultConfig    thresholdVaultConfig `json:"vault_config"`
	// MemberPolicy is this member's policy for its share, the lines to put under tezos:.
	MemberPolicy string `json:"member_policy,omitempty"`
	DurationMS   int64  `json:"duration_ms"`
}

type dkgMemberJSON struct {
	Index     int    `json:"index"`
	PublicKey string `json:"public_key"`
	PKH       string `json:"public_key_hash"`
}

type dkgExcludedJSON struct {
	Index  int    `json:"index"`
	Reason string `json:"reason"`
}

// thresholdVaultConfig is the coordinator's `threshold` vault config, as printed.
type thresholdVaultConfig struct {
	PublicKey string                 `yaml:"public_key" json:"public_key"`
	Threshold int                    `yaml:"threshold" json:"threshold"`
	Members   []thresholdVaultMember `yaml:"members" json:"members"`
}

type thresholdVaultMember struct {
	Index int    `yaml:"index" json:"index"`
	URL   string `yaml:"url" json:"url"`
	Key   string `yaml:"key" json:"key"`
}

// newThresholdDKG: `signatory threshold dkg`.
func newThresholdDKG(g *globals) *cobra.Command {
	var ceremonyPath, identityPath, secretKeys, alias, oldAlias, passwordFile string
	var wait, phase time.Duration
	var misbehave, metricsFile string
	cmd := &cobra.Command{
		Use:   "dkg",
		Short: "Take part in a key-generation ceremony: a threshold tz4 key no machine ever holds whole",
		Long: `Take part, as one member, in a distributed key generation (no dealer): the members
together make a tz4 group key of which each holds one share, and no machine ever holds the group's
secret key. Every member runs this command on its own machine, with the same ceremony config
(--ceremony) and its own identity key (--identity, made by 'signatory threshold identity'). The
members reach each other at the addresses the config lists; every message is signed by its sender's
identity key and encrypted to its recipient's.

Members that do not join within --wait, send deals that do not match their commitments without
answering the complaints, or go silent are left out and named, if enough members remain for the
threshold; otherwise the ceremony aborts. Nothing is written until every remaining member has
confirmed the same group key and transcript: an aborted or interrupted ceremony leaves no share, and
can be run again.

A ceremony config with a previous: section is a resharing: the previous group's members deal
their shares again to the new members (add or remove members, change the threshold, or refresh the
same members' shares), and the group key does not change. A member of the previous group names its
current share with --old-alias (in --secret-keys). A member that leaves the group gets no new
share, and should then erase its old one.

On success this member's share is added to the octez-client secret_keys file --secret-keys (created
with mode 0600 if absent; encrypted with --password-file), under --alias, for a file vault. The
command prints the group key, every member's share key, the members left out, the transcript hash
(compare it with the other members' out of band: it must be the same everywhere) and the
coordinator's threshold vault config.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if ceremonyPath == "" || identityPath == "" || secretKeys == "" {
				return errors.New("--ceremony, --identity and --secret-keys are required")
			}
			data, err := os.ReadFile(ceremonyPath)
			if err != nil {
				return err
			}
			c, err := dkg.ParseCeremony(data)
			if err != nil {
				return err
			}
			id, err := dkg.ReadIdentity(identityPath)
			if err != nil {
				return fmt.Errorf("identity: %w", err)
			}
			var password []byte
			if passwordFile != "" {
				if password, err = readPasswordFile(passwordFile); err != nil {
					return err
				}
			}
			// The share's file is checked before the ceremony, so that a ceremony is not run
			// for a share that could not be written.
			entries, err := readSecretKeys(secretKeys)
			if err != nil {
				return err
			}
			if alias == "" {
				alias = "dkg-" + c.Name
			}
			if slices.ContainsFunc(entries, func(e secretKeyEntry) bool { return e.Name == alias }) {
				return fmt.Errorf("%s already holds a key named %q: choose another --alias", secretKeys, alias)
			}
			opts := dkg.Options{Wait: wait, PhaseTimeout: phase, Log: g.logger()}
			var cm *metrics.Ceremony
			if metricsFile != "" {
				cm = metrics.NewCeremony(c.Name)
				opts.OnPhase = func(p string) {
					cm.Phase(p)
					if err := cm.WriteTo(metricsFile); err != nil {
						g.logger().Warn("cannot write the ceremony's metrics", "file", metricsFile, "error", err)
					}
				}
			}
			holdWrite := false
			if misbehave != "" {
				spec, hold := strings.CutSuffix(misbehave, ";hold=write")
				holdWrite = hold || spec == "hold=write"
				if spec != "hold=write" {
					if err := opts.Misbehave(spec); err != nil {
						return err
					}
				}
			}
			if oldAlias != "" {
				if c.Previous == nil {
					return errors.New("--old-alias is for a resharing: the ceremony config has no previous: section")
				}
				if opts.OldShare, err = oldShare(entries, secretKeys, oldAlias, password); err != nil {
					return err
				}
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			started := time.Now()
			res, err := dkg.Run(ctx, c, id, opts)
			if cm != nil {
				cm.Ended(time.Since(started))
				if res != nil {
					cm.Outcome(len(res.Members), len(res.Excluded), len(res.Complaints))
				}
				if werr := cm.WriteTo(metricsFile); werr != nil {
					g.logger().Warn("cannot write the ceremony's metrics", "file", metricsFile, "error", werr)
				}
			}
			if err != nil {
				return fmt.Errorf("ceremony %q aborted, nothing written: %w", c.Name, err)
			}
			if res.Leaving {
				return printCeremony(g, res, "", "")
			}
			if holdWrite {
				g.logger().Warn("ceremony: holding before write")
				<-ctx.Done()
				return ctx.Err()
			}
			share := shareEntries([]blsthreshold.Share{{Index: res.Index, Key: res.Share}}, password)[0]
			if share.err != nil {
				return share.err
			}
			entries = append(entries, secretKeyEntry{Name: alias, Value: share.SecretKey})
			out, err := json.MarshalIndent(entries, "", "  ")
			if err != nil {
				return err
			}
			if err := durable.WriteBytes(secretKeys, ".secret-keys-tmp-", append(out, '\n')); err != nil {
				return fmt.Errorf("writing the share: %w", err)
			}
			return printCeremony(g, res, secretKeys, alias)
		},
	}
	f := cmd.Flags()
	f.StringVar(&ceremonyPath, "ceremony", "", "the ceremony config (YAML), the same at every member")
	f.StringVar(&identityPath, "identity", "", "this member's identity key file")
	f.StringVar(&secretKeys, "secret-keys", "", "octez-client secret_keys file to add this member's share to")
	f.StringVar(&alias, "alias", "", "the share's name in --secret-keys (default dkg-<ceremony name>)")
	f.StringVar(&oldAlias, "old-alias", "", "in a resharing: this member's current share, by its name in --secret-keys")
	f.StringVar(&passwordFile, "password-file", "", "encrypt the share with the password in this file (and decrypt the --old-alias share)")
	f.DurationVar(&wait, "wait", 10*time.Minute, "how long to wait for the other members to join")
	f.DurationVar(&phase, "phase-timeout", 30*time.Second, "how long each phase waits for a silent member")
	f.StringVar(&metricsFile, "metrics-file", "", "write the ceremony's metrics (phase, members, left out, complaints, duration) to this file at every step, for node_exporter's textfile collector")
	f.BoolVar(&g.jsonOut, "json", false, "print JSON")
	// For tests of the ceremony's failure handling: this member cheats or stops (see
	// dkg.Options.Misbehave; "hold=write" stops after the confirmations, before writing).
	f.StringVar(&misbehave, "misbehave", "", "")
	_ = f.MarkHidden("misbehave")
	return cmd
}

// oldShare reads the share named alias from a secret_keys file's entries.
func oldShare(entries []secretKeyEntry, file, alias string, password []byte) (*crypt.BLSPrivateKey, error) {
	for _, e := range entries {
		if e.Name != alias {
			continue
		}
		value, encrypted := strings.CutPrefix(e.Value, "encrypted:")
		value = strings.TrimPrefix(value, "unencrypted:")
		var pw func() ([]byte, error)
		if encrypted {
			if password == nil {
				return nil, fmt.Errorf("%s: %q is encrypted: give --password-file", file, alias)
			}
			pw = func() ([]byte, error) { return password, nil }
		}
		k, err := tezos.ParseSecretKey(value, pw)
		if err != nil {
			return nil, fmt.Errorf("%s: %q: %w", file, alias, err)
		}
		bk, ok := k.(*crypt.BLSPrivateKey)
		if !ok {
			return nil, fmt.Errorf("%s: %q is not a tz4 share", file, alias)
		}
		return bk, nil
	}
	return nil, fmt.Errorf("%s holds no key named %q", file, alias)
}

type secretKeyEntry struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// readSecretKeys reads an octez-client secret_keys file (none yet: empty), refusing one others
// can read.
func readSecretKeys(path string) ([]secretKeyEntry, error) {
	st, err := os.Stat(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("%s: mode %04o: a secret_keys file must be readable by its owner only (chmod 600)", path, st.Mode().Perm())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var entries []secretKeyEntry
	if err := json.Unmarshal(b, &entries); err != nil {
		return nil, fmt.Errorf("%s is not a secret_keys JSON array: %w", path, err)
	}
	return entries, nil
}

func printCeremony(g *globals, res *dkg.Result, secretKeys, alias string) error {
	out := dkgJSON{
		Ceremony: res.Ceremony.Name, Index: res.Index, GroupPublicKey: res.Group.String(), GroupPKH: res.Group.Hash().String(),
		Threshold: res.Threshold, Complaints: res.Complaints, Transcript: fmt.Sprintf("%x", res.Transcript),
		SecretKeys: secretKeys, Alias: alias, DurationMS: res.Duration.Milliseconds(), Leaving: res.Leaving,
		VaultConfig: thresholdVaultConfig{PublicKey: res.Group.String(), Threshold: res.Threshold},
	}
	if res.Share != nil {
		out.Share = res.Share.Public().Hash().String()
		out.MemberPolicy = fmt.Sprintf("%s:\n  share_of: %s\n  allow_proof_of_possession_for: [%s]\n  allow: {block: , preattestation: , attestation: }\n",
			out.Share, out.GroupPublicKey, out.GroupPublicKey)
	}
	if out.Complaints == nil {
		out.Complaints = []dkg.Complaint{}
	}
	out.Excluded = []dkgExcludedJSON{}
	for _, e := range res.Excluded {
		out.Excluded = append(out.Excluded, dkgExcludedJSON{e.Index, e.Reason})
	}
	for _, m := range res.Members {
		if m.SharePublic == nil { // a leaving member does not learn the new share keys
			continue
		}
		out.Members = append(out.Members, dkgMemberJSON{m.Index, m.SharePublic.String(), m.SharePublic.Hash().String()})
		out.VaultConfig.Members = append(out.VaultConfig.Members, thresholdVaultMember{m.Index, m.URL, m.SharePublic.Hash().String()})
	}
	if g.jsonOut {
		return g.printJSON(out)
	}
	w := g.stdout
	if res.Leaving {
		fmt.Fprintf(w, "Resharing %q complete: this member has left the group of %s.\n", out.Ceremony, out.GroupPKH)
		fmt.Fprintf(w, "Transcript (compare with the other members', out of band):\n  %s\n", out.Transcript)
		fmt.Fprintf(w, "Erase this member's old share now: with the old shares of t-1 others it would still sign for the group.\n")
		return nil
	}
	fmt.Fprintf(w, "Ceremony %q complete in %s.\n", out.Ceremony, res.Duration.Round(time.Millisecond))
	fmt.Fprintf(w, "Group key (the baker's tz4 key, any %d of %d members sign for it):\n  %s\n  %s\n", out.Threshold, len(out.Members), out.GroupPKH, out.GroupPublicKey)
	fmt.Fprintf(w, "Transcript (compare with every other member's, out of band):\n  %s\n", out.Transcript)
	for _, m := range out.Members {
		me := ""
		if m.Index == res.Index {
			me = "  (this member)"
		}
		fmt.Fprintf(w, "Member %d share key: %s %s%s\n", m.Index, m.PKH, m.PublicKey, me)
	}
	for _, e := range out.Excluded {
		fmt.Fprintf(w, "Member %d left out: %s\n", e.Index, e.Reason)
	}
	for _, c := range out.Complaints {
		fmt.Fprintf(w, "Member %d complained about member %d's deal\n", c.By, c.Dealer)
	}
	fmt.Fprintf(w, "This member's share is in %s as %q.\n", secretKeys, alias)
	fmt.Fprintf(w, "This member's policy, under tezos: in its config (with share_of, the share signs no consensus operation on a chain before it has a history there):\n")
	for _, line := range strings.SplitAfter(strings.TrimSuffix(out.MemberPolicy, "\n"), "\n") {
		fmt.Fprintf(w, "  %s", line)
	}
	fmt.Fprintf(w, "\nIts history, before it signs: `signatory watermark floor --key %s --chain <chain id> --level 0` for a new key;\n", out.Share)
	fmt.Fprintf(w, "after a resharing, `signatory threshold marks --key %s --from <the old group's coordinator config> --chain <chain id>`.\n", out.Share)
	fmt.Fprintf(w, "The coordinator's threshold vault config:\n")
	y, err := yaml.Marshal(map[string]any{"driver": "threshold", "config": out.VaultConfig})
	if err != nil {
		return err
	}
	_, err = w.Write(y)
	return err
}
