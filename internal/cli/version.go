package cli

import (
	"fmt"

	"github.com/spf13/cobra"
)

func newVersion(g *globals) *cobra.Command {
	return &cobra.Command{
		Use: "version", Aliases: []string{"v"}, Short: "Print the version", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			fmt.Fprintf(g.stdout, "Release Version: %s\n", Version)
			return nil
		},
	}
}
