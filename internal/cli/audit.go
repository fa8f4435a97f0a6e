package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/signatory-go/signatory/internal/audit"
)

func newAudit(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "audit", Short: "Work with the audit journal"}
	var partial bool
	verify := &cobra.Command{
		Use:   "verify <journal file> [more files…]",
		Short: "Check the journal's hash chain and report the first broken line",
		Long: `Check the hash chain of an audit journal. With one file, its rotated predecessors
(<file>.<timestamp>) are checked first, oldest first; with several, they are taken in the order given.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			files := args
			if len(args) == 1 {
				var err error
				if files, err = audit.Files(args[0]); err != nil {
					return err
				}
			}
			n, err := audit.Verify(partial, files...)
			if err != nil {
				return fmt.Errorf("journal broken after %d good lines: %w", n, err)
			}
			fmt.Fprintf(g.stdout, "ok: %d lines in %d file(s), hash chain intact\n", n, len(files))
			return nil
		},
	}
	verify.Flags().BoolVar(&partial, "partial", false, "accept a first line that continues a deleted older file")
	cmd.AddCommand(verify)
	return cmd
}
