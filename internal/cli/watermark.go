package cli

import (
	"encoding/hex"
	"fmt"
	"sort"

	"github.com/spf13/cobra"
)

func newWatermark(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "watermark", Short: "Inspect the high watermarks"}
	show := &cobra.Command{
		Use:   "show",
		Short: "Show every stored watermark",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			store, _, log, err := g.loadStore(cmd.Context(), true)
			if err != nil {
				return err
			}
			defer store.Close()
			if err := store.Health(cmd.Context()); err != nil {
				log.Warn("watermark store is not healthy", "err", err)
			}
			// On an error (a mark that cannot be read), the text output still lists what was read,
			// for the operator's repair, and the command fails; --json prints nothing then.
			entries, listErr := store.List(cmd.Context())
			if listErr != nil && g.jsonOut {
				return listErr
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
			if len(rows) == 0 && listErr == nil {
				fmt.Fprintln(g.stdout, "no watermarks recorded")
			}
			for _, r := range rows {
				fmt.Fprintf(g.stdout, "%s  %s  %-15s level %d round %d\n", r.Chain, r.PKH, r.Class, r.Level, r.Round)
			}
			if listErr != nil {
				fmt.Fprintln(g.stdout, "INCOMPLETE: marks that cannot be read are not listed above")
			}
			return listErr
		},
	}
	show.Flags().BoolVar(&g.jsonOut, "json", false, "print JSON")
	cmd.AddCommand(show)
	cmd.AddCommand(newWatermarkExport(g), newWatermarkImport(g), newWatermarkFloor(g))
	return cmd
}
