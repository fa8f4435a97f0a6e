package cli

import (
	"encoding/hex"
	"fmt"
	"io"
	"os"

	tz "github.com/ecadlabs/gotez/v2"
	"github.com/spf13/cobra"

	"github.com/signatory-go/signatory/internal/durable"
	"github.com/signatory-go/signatory/internal/watermark"
	wmfile "github.com/signatory-go/signatory/internal/watermark/file"
	"github.com/signatory-go/signatory/internal/watermark/interchange"
)

func newWatermarkExport(g *globals) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "export",
		Short: "Write every stored watermark as JSON, to import into another store or signer",
		Long: `Write every watermark of the configured store as one JSON document:

  {"version":1,"watermarks":[{"chain_id":"Net…","pkh":"tz…","class":"block|preattestation|attestation",
                              "level":N,"round":N,"digest":"vh…"|null}, …]}

digest is the base58 blake2b-256 of the last signed bytes (null when the mark has none). The
export is a snapshot: a signer that keeps running may raise marks after it. 'watermark import'
reads it back, and only ever raises.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			store, _, _, err := g.loadStore(cmd.Context(), false)
			if err != nil {
				return err
			}
			defer store.Close()
			doc, err := interchange.Export(cmd.Context(), store)
			if err != nil {
				return err
			}
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
	cmd.Flags().StringVarP(&output, "output", "o", "", "file to write (default: standard output)")
	return cmd
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
	s := tz.BlockPayloadHash(m.Digest).String()
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
			store, cfg, log, err := g.loadStore(cmd.Context(), false)
			if err != nil {
				return err
			}
			defer store.Close()
			if store.Name() == wmfile.Driver && !dryRun {
				log.Warn("importing into the file store: make sure no signatory is running on base_dir " + cfg.BaseDir)
			}
			rep, err := interchange.Import(cmd.Context(), store, entries, dryRun)
			if rep != nil {
				if perr := g.printImport(rep, store.Name(), dryRun); perr != nil && err == nil {
					err = perr
				}
			}
			return err
		},
	}
	cmd.Flags().StringVar(&format, "format", "", "file format: signatory, reference, reference-v1, reference-v0 or octez (default: tell from name and content)")
	cmd.Flags().StringVar(&chain, "chain", "", "chain id of reference files whose name is not <chain id>.json")
	cmd.Flags().StringVar(&class, "class", "", "class of octez files whose name is not <kind>_high_watermarks")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "report what would be raised and kept, write nothing")
	cmd.Flags().BoolVar(&g.jsonOut, "json", false, "print the report as JSON")
	return cmd
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
