package cli

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/signatory-go/signatory/internal/config"
	"github.com/signatory-go/signatory/internal/daemon"
	"github.com/signatory-go/signatory/internal/durable"
	"github.com/signatory-go/signatory/internal/tezos"
	"github.com/signatory-go/signatory/internal/watermark"
	wmfile "github.com/signatory-go/signatory/internal/watermark/file"
	"github.com/signatory-go/signatory/internal/watermark/interchange"
)

func newWatermarkExport(g *globals) *cobra.Command {
	var output, format string
	var force bool
	cmd := &cobra.Command{
		Use:   "export",
		Short: "Write every stored watermark as JSON, or as octez-signer's or the reference signer's files",
		Long: `Write every watermark of the configured store.

--format signatory (the default) writes one JSON document, to standard output or to -o FILE
(replaced if it exists):

  {"version":1,"watermarks":[{"chain_id":"Net…","pkh":"tz…","class":"block|preattestation|attestation",
                              "level":N,"round":N,"digest":"vh…"|null,"signature":"…"}, …]}

digest is the base58 blake2b-256 of the last signed bytes (null when the mark has none);
signature, when the store kept it, is the signature released for them.

--format octez -o DIR writes octez-signer's files DIR/block_high_watermarks,
DIR/preattestation_high_watermarks and DIR/attestation_high_watermarks (all chains in each; {} for
a class without marks): {"<chain id>": {"<pkh>": {"level": N, "round": N, "hash": "<hex>",
"signature": "…"}}}. hash is the hex blake2b-256 of the signed bytes; signature is written when
the store kept it, so that octez-signer can return it for identical bytes. A mark without a
digest is written with a hash of 64 zeros (no message hashes to it) and no signature: octez-signer
compares the hash only for a mark that has a signature, and refuses everything at or below the
(level, round) of a mark without one, so the placeholder protects what the mark protects here
(this is octez-signer's check as its source reads; it is not run by Signatory's tests).
'watermark import' reads the zero hash back as a mark without a digest.

--format reference -o DIR writes the reference signer's DIR/watermark_v2/<chain id>.json, one per
chain, as the file store writes them ({"<pkh>": {"block|preattestation|attestation": {"level": N,
"round": N, "hash": "vh…"|null, "signature": "…"}}}, the attestation mark repeated under
attestation_with_dal). DIR is the reference's base_dir.

octez and reference files are written atomically (temp file, fsync, rename) with mode 0600, and
never over existing files unless --force: if one exists, nothing is written.

The export is a snapshot: stop the signer first, and start the other signer on the files only
after the export. 'watermark import' reads all three formats back, and only ever raises. To
replace another signer's files safely, import them first, then export with --force.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			switch format {
			case string(interchange.Signatory):
			case string(interchange.Octez), string(interchange.Reference):
				if output == "" || output == "-" {
					return fmt.Errorf("--format %s writes several files: give the directory with -o DIR", format)
				}
			default:
				return fmt.Errorf("--format %q: want signatory, octez or reference", format)
			}
			store, _, _, err := g.loadStore(cmd.Context(), false)
			if err != nil {
				return err
			}
			defer store.Close()
			es, err := store.List(cmd.Context())
			if err != nil {
				return err
			}
			if format != string(interchange.Signatory) {
				return g.exportFiles(es, store.Name(), interchange.Format(format), output, force)
			}
			doc := interchange.FromEntries(es)
			if output == "" || output == "-" {
				return interchange.Write(g.stdout, doc)
			}
			if err := writeFileDurably(output, func(f *os.File) error { return interchange.Write(f, doc) }); err != nil {
				return err
			}
			fmt.Fprintf(g.stderr, "exported %d watermarks from the %s store to %s\n", len(doc.Watermarks), store.Name(), output)
			return nil
		},
	}
	cmd.Flags().StringVar(&format, "format", string(interchange.Signatory), "signatory (one JSON document), octez (octez-signer's *_high_watermarks) or reference (watermark_v2/<chain id>.json)")
	cmd.Flags().StringVarP(&output, "output", "o", "", "signatory: file to write (default: standard output); octez, reference: directory to write the files in (required)")
	cmd.Flags().BoolVar(&force, "force", false, "octez, reference: replace existing files")
	return cmd
}

// exportFiles writes the store's marks as octez-signer's or the reference's files under dir.
func (g *globals) exportFiles(es []watermark.Entry, backend string, format interchange.Format, dir string, force bool) error {
	var files []interchange.File
	var err error
	if format == interchange.Octez {
		files, err = interchange.OctezFiles(es)
	} else {
		files, err = interchange.ReferenceFiles(es)
	}
	if err != nil {
		return err
	}
	if err := interchange.WriteFiles(dir, files, force); err != nil {
		return err
	}
	names := make([]string, len(files))
	for i, f := range files {
		names[i] = f.Name
	}
	fmt.Fprintf(g.stderr, "exported %d watermarks from the %s store to %s (%s files: %s)\n", len(es), backend, dir, format,
		strings.Join(names, ", "))
	return nil
}

// writeFileDurably replaces path with what write produces (durable.WriteFile: temp file, fsync,
// rename, directory fsync).
func writeFileDurably(path string, write func(*os.File) error) error {
	return durable.WriteFile(path, ".export-", func(w io.Writer) error { return write(w.(*os.File)) })
}

type importItemJSON struct {
	Chain   string        `json:"chain_id"`
	PKH     string        `json:"pkh"`
	Class   string        `json:"class"`
	Level   int32         `json:"level"`
	Round   int32         `json:"round"`
	Digest  *string       `json:"digest"`
	Outcome string        `json:"outcome"`
	Stored  *storedMarkJS `json:"stored"`
}

type storedMarkJS struct {
	Level  int32   `json:"level"`
	Round  int32   `json:"round"`
	Digest *string `json:"digest"`
}

func digestString(m watermark.Mark) *string {
	if !m.HasDigest {
		return nil
	}
	s := tezos.PayloadHashString(&m.Digest)
	return &s
}

func newWatermarkImport(g *globals) *cobra.Command {
	var format, chain, class string
	var dryRun bool
	cmd := &cobra.Command{
		Use:   "import <file or directory>...",
		Short: "Raise watermarks from an export, reference watermark_v2 files or octez-signer high-watermark files",
		Long: `Record the marks found in the given files into the configured store. Import only ever raises a
watermark: a mark is written only where the store has none or a strictly lower (level, round);
everything else is kept as it is. The report lists what was raised and what was kept.

Formats (told from the name and content, or given with --format):
  signatory  the output of 'signatory watermark export'
  reference  the reference signer's <base_dir>/watermark_v2/<chain id>.json (chain from the name or --chain)
  octez      octez-signer's <base_dir>/{block,preattestation,attestation}_high_watermarks
             (also the older preendorsement/endorsement names; class from the name or --class)
  reference-v1, reference-v0
             the reference signer's older watermark_v1/<chain id>.json and watermark/<chain id>.json
             (never guessed: give --format; consensus marks are mapped to today's classes)
A directory is searched for such files, and its watermark_v2 subdirectory too.

With the file backend, stop every signatory that uses the same base_dir first: the file store is
not shared between processes, and a running signer would overwrite the imported marks.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts := interchange.Options{Format: interchange.Format(format), Chain: chain}
			switch opts.Format {
			case interchange.Auto, interchange.Signatory, interchange.Reference, interchange.Octez,
				interchange.ReferenceV1, interchange.ReferenceV0:
			default:
				return fmt.Errorf("--format %q: want signatory, reference, reference-v1, reference-v0 or octez", format)
			}
			if class != "" {
				c, ok := watermark.ClassOf(class)
				if !ok {
					return fmt.Errorf("--class %q: want block, preattestation or attestation", class)
				}
				opts.Class = c
			}
			// Read and check every file before touching the store.
			var entries []watermark.Entry
			for _, path := range args {
				srcs, err := interchange.Read(path, opts)
				if err != nil {
					return err
				}
				for _, s := range srcs {
					fmt.Fprintf(g.stderr, "read %d watermarks from %s (%s)\n", len(s.Entries), s.Path, s.Format)
					entries = append(entries, s.Entries...)
				}
			}
			cfg, log, err := g.load()
			if err != nil {
				return err
			}
			return g.raise(cmd.Context(), cfg, log, entries, dryRun)
		},
	}
	cmd.Flags().StringVar(&format, "format", "", "file format: signatory, reference, reference-v1, reference-v0 or octez (default: tell from name and content)")
	cmd.Flags().StringVar(&chain, "chain", "", "chain id of reference files whose name is not <chain id>.json")
	cmd.Flags().StringVar(&class, "class", "", "class of octez files whose name is not <kind>_high_watermarks")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "report what would be raised and kept, write nothing")
	cmd.Flags().BoolVar(&g.jsonOut, "json", false, "print the report as JSON")
	return cmd
}

// raise imports entries into the configured store (only ever raising: interchange.Import) and
// prints the report: watermark import, watermark floor and threshold marks.
func (g *globals) raise(ctx context.Context, cfg *config.Config, log *slog.Logger, entries []watermark.Entry, dryRun bool) error {
	store, err := daemon.OpenWatermark(ctx, cfg, log, false)
	if err != nil {
		return err
	}
	defer store.Close()
	if store.Name() == wmfile.Driver && !dryRun {
		log.Warn("writing into the file store: make sure no signatory is running on base_dir " + cfg.BaseDir)
	}
	rep, err := interchange.Import(ctx, store, entries, dryRun)
	if rep != nil {
		if perr := g.printImport(rep, store.Name(), dryRun); perr != nil && err == nil {
			err = perr
		}
	}
	return err
}

func (g *globals) printImport(rep *interchange.Report, backend string, dryRun bool) error {
	if g.jsonOut {
		out := struct {
			Backend string           `json:"backend"`
			DryRun  bool             `json:"dry_run"`
			Raised  int              `json:"raised"`
			Kept    int              `json:"kept"`
			Items   []importItemJSON `json:"items"`
		}{backend, dryRun, rep.Count(interchange.Raised), rep.Count(interchange.Kept), []importItemJSON{}}
		for _, it := range rep.Items {
			j := importItemJSON{Chain: it.Chain, PKH: it.PKH, Class: string(it.Class), Level: it.Imported.Level,
				Round: it.Imported.Round, Digest: digestString(it.Imported), Outcome: string(it.Outcome)}
			if it.HasStored {
				j.Stored = &storedMarkJS{Level: it.Stored.Level, Round: it.Stored.Round, Digest: digestString(it.Stored)}
			}
			out.Items = append(out.Items, j)
		}
		return g.printJSON(out)
	}
	verb := map[interchange.Outcome]string{interchange.Raised: "raised", interchange.Kept: "kept"}
	if dryRun {
		verb[interchange.Raised] = "would raise"
	}
	for _, it := range rep.Items {
		was := "(no mark before)"
		switch {
		case it.HasStored && it.Stored == it.Imported:
			was = "(already recorded)"
		case it.HasStored && it.Outcome == interchange.Kept:
			was = fmt.Sprintf("(store has level %d round %d)", it.Stored.Level, it.Stored.Round)
		case it.HasStored:
			was = fmt.Sprintf("(was level %d round %d)", it.Stored.Level, it.Stored.Round)
		}
		d := "-"
		if it.Imported.HasDigest {
			d = hex.EncodeToString(it.Imported.Digest[:4])
		}
		fmt.Fprintf(g.stdout, "%-11s %s  %s  %-14s level %d round %d digest %s %s\n", verb[it.Outcome], it.Chain, it.PKH,
			it.Class, it.Imported.Level, it.Imported.Round, d, was)
	}
	fmt.Fprintf(g.stdout, "%d %s, %d kept (%s store)\n", rep.Count(interchange.Raised), verb[interchange.Raised],
		rep.Count(interchange.Kept), backend)
	return nil
}

// checkKeyChain checks the --key and --chain flags of floor and threshold marks.
func checkKeyChain(pkh, chain string) error {
	if _, err := tezos.ParsePublicKeyHash(pkh); err != nil {
		return fmt.Errorf("--key: %w", err)
	}
	if _, err := tezos.ParseChainID(chain); err != nil {
		return fmt.Errorf("--chain: %w", err)
	}
	return nil
}

// newWatermarkFloor: `signatory watermark floor`.
func newWatermarkFloor(g *globals) *cobra.Command {
	var pkh, chain string
	var level, round int32
	var dryRun bool
	cmd := &cobra.Command{
		Use:   "floor",
		Short: "Raise a key's watermarks on a chain to a level, in every class (a threshold share's history)",
		Long: `Raise the watermarks of --key on --chain to --level in every class: block, preattestation
and attestation. The whole level is covered (every round) unless --round names the last round
signed at it. Only ever raises, as import does. This is one way an operator gives a threshold
share (share_of in its policy) a history, beside importing marks and taking them from the group
(signatory threshold marks): a share with no marks on a chain signs no block or consensus
operation there. Give the level the group's key has signed up to (a level at or
above the chain's head is always safe; a brand-new group key that never signed can start at 0).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkKeyChain(pkh, chain); err != nil {
				return err
			}
			if level < 0 || round < 0 {
				return errors.New("--level and --round are at least 0")
			}
			if !cmd.Flags().Changed("round") {
				round = math.MaxInt32 // every round of the level
			}
			var entries []watermark.Entry
			for _, c := range []watermark.Class{watermark.Block, watermark.Preattestation, watermark.Attestation} {
				entries = append(entries, watermark.Entry{Key: watermark.Key{Chain: chain, PKH: pkh, Class: c}, Mark: watermark.Mark{Level: level, Round: round}})
			}
			cfg, log, err := g.load()
			if err != nil {
				return err
			}
			return g.raise(cmd.Context(), cfg, log, entries, dryRun)
		},
	}
	cmd.Flags().StringVar(&pkh, "key", "", "the key's address (tz1…tz4)")
	cmd.Flags().StringVar(&chain, "chain", "", "the chain id (NetXdQprcVkpaWU is mainnet)")
	cmd.Flags().Int32Var(&level, "level", 0, "the level to raise the marks to")
	cmd.Flags().Int32Var(&round, "round", 0, "the last round signed at that level (default: every round)")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "report what would be raised and kept, write nothing")
	cmd.Flags().BoolVar(&g.jsonOut, "json", false, "print the report as JSON")
	_ = cmd.MarkFlagRequired("key")
	_ = cmd.MarkFlagRequired("chain")
	_ = cmd.MarkFlagRequired("level")
	return cmd
}
