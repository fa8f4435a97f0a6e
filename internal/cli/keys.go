package cli

import (
	"bufio"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"github.com/spf13/cobra"

	"github.com/signatory-go/signatory/internal/metrics"
	"github.com/signatory-go/signatory/internal/policy"
	"github.com/signatory-go/signatory/internal/request"
	"github.com/signatory-go/signatory/internal/tezos"
	"github.com/signatory-go/signatory/internal/vault"
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
			svc, _, err := g.service(cmd.Context(), cfg, log, metrics.New(Version))
			if err != nil {
				return err
			}
			defer svc.Close()
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
}

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

// aimedVault opens the one vault a command is aimed at, allowing it to start empty, and returns
// the config's policies for display.
func (g *globals) aimedVault(ctx context.Context, name string) (vault.Vault, map[string]*policy.Policy, error) {
	cfg, log, err := g.load()
	if err != nil {
		return nil, nil, err
	}
	v, err := openVault(cfg, name, vault.Env{BaseDir: cfg.BaseDir, Create: true, Logger: log})
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
	cmd.Flags().StringVarP(&keyType, "type", "t", "ed25519", "key type: ed25519|tz1, secp256k1|tz2, p256|tz3, bls|tz4")
	cmd.Flags().IntVarP(&n, "num", "n", 1, "number of keys")
	cmd.Flags().StringVar(&name, "name", "", "alias of the new key (default: its key hash)")
	cmd.Flags().BoolVar(&g.jsonOut, "json", false, "print JSON")
	_ = cmd.MarkFlagRequired("vault")
	return cmd
}

func newImport(g *globals) *cobra.Command {
	var vaultName, name, passwordFile string
	cmd := &cobra.Command{
		Use:   "import [secret-key]",
		Short: "Import an existing secret key (edsk/spsk/p2sk/BLsk or encrypted) into a vault; read from stdin when not given",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var secret string
			if len(args) == 1 {
				secret = args[0]
			} else {
				line, err := bufio.NewReader(cmd.InOrStdin()).ReadString('\n')
				if err != nil && !errors.Is(err, io.EOF) {
					return err
				}
				secret = strings.TrimSpace(line)
			}
			var pw func() ([]byte, error)
			if passwordFile != "" {
				pw = func() ([]byte, error) {
					b, err := os.ReadFile(passwordFile)
					return []byte(strings.TrimRight(string(b), "\r\n")), err
				}
			} else if v, ok := os.LookupEnv("SIGNATORY_IMPORT_PASSWORD"); ok {
				pw = func() ([]byte, error) { return []byte(v), nil }
			}
			priv, err := tezos.ParseSecretKey(secret, pw)
			if errors.Is(err, tezos.ErrNoPassword) {
				return errors.New("the secret key is encrypted: give its password with --password-file or SIGNATORY_IMPORT_PASSWORD")
			}
			if err != nil {
				return err
			}
			v, pol, err := g.aimedVault(cmd.Context(), vaultName)
			if err != nil {
				return err
			}
			defer v.Close()
			imp, ok := v.(vault.Importer)
			if !ok {
				return fmt.Errorf("vault %s (%s) cannot import keys", vaultName, v.Driver())
			}
			k, err := imp.Import(cmd.Context(), priv, name)
			if err != nil {
				return err
			}
			pkh := k.PublicKey().Hash().String()
			return g.printKeys([]keyJSON{describe(pkh, k.PublicKey().String(), tezos.CurveOf(k.PublicKey()), v.Name(), v.Driver(), k.ID(), pol[pkh])})
		},
	}
	cmd.Flags().StringVarP(&vaultName, "vault", "v", "", "vault name from the config (required)")
	cmd.Flags().StringVar(&name, "name", "", "alias of the key (default: its key hash)")
	cmd.Flags().StringVar(&passwordFile, "password-file", "", "file holding the password of an encrypted secret key (or set SIGNATORY_IMPORT_PASSWORD)")
	cmd.Flags().BoolVar(&g.jsonOut, "json", false, "print JSON")
	_ = cmd.MarkFlagRequired("vault")
	return cmd
}

func newWatermark(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "watermark", Short: "Inspect the high watermarks"}
	show := &cobra.Command{
		Use:   "show",
		Short: "Show every stored watermark",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			store, _, log, err := g.loadSnapshot()
			if err != nil {
				return err
			}
			defer store.Close()
			if err := store.Health(cmd.Context()); err != nil {
				log.Warn("watermark store is not healthy", "err", err)
			}
			entries, err := store.List(cmd.Context())
			if err != nil {
				return err
			}
			type row struct {
				Chain string `json:"chain_id"`
				PKH   string `json:"pkh"`
				Class string `json:"class"`
				Level int32  `json:"level"`
				Round int32  `json:"round"`
				Hash  string `json:"digest,omitempty"`
			}
			rows := make([]row, 0, len(entries))
			for _, e := range entries {
				r := row{Chain: e.Chain, PKH: e.PKH, Class: string(e.Class), Level: e.Level, Round: e.Round}
				if e.HasDigest {
					r.Hash = hex.EncodeToString(e.Digest[:])
				}
				rows = append(rows, r)
			}
			sort.SliceStable(rows, func(i, j int) bool { return rows[i].Chain+rows[i].PKH < rows[j].Chain+rows[j].PKH })
			if g.jsonOut {
				return g.printJSON(rows)
			}
			fmt.Fprintf(g.stdout, "backend: %s\n", store.Name())
			if len(rows) == 0 {
				fmt.Fprintln(g.stdout, "no watermarks recorded")
			}
			for _, r := range rows {
				fmt.Fprintf(g.stdout, "%s  %s  %-15s level %d round %d\n", r.Chain, r.PKH, r.Class, r.Level, r.Round)
			}
			return nil
		},
	}
	show.Flags().BoolVar(&g.jsonOut, "json", false, "print JSON")
	cmd.AddCommand(show)
	cmd.AddCommand(newWatermarkExport(g), newWatermarkImport(g))
	return cmd
}

func newVersion(g *globals) *cobra.Command {
	return &cobra.Command{
		Use: "version", Aliases: []string{"v"}, Short: "Print the version", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			fmt.Fprintf(g.stdout, "Release Version: %s\n", Version)
			return nil
		},
	}
}

func newListRequests(g *globals) *cobra.Command {
	return &cobra.Command{
		Use: "list-requests", Short: "List the request kinds a policy can allow", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			fmt.Fprintln(g.stdout, "Possible request types:")
			for _, k := range request.Kinds {
				fmt.Fprintf(g.stdout, "    - %s\n", k)
			}
			return nil
		},
	}
}

func newListOps(g *globals) *cobra.Command {
	return &cobra.Command{
		Use: "list-ops", Short: "List the generic operation kinds a policy can allow", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			fmt.Fprintln(g.stdout, "Possible operation types:")
			for _, k := range request.AllOpKinds() {
				fmt.Fprintf(g.stdout, "    - %s\n", k)
			}
			return nil
		},
	}
}
