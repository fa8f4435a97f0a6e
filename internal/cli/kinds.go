package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/signatory-go/signatory/internal/request"
)

// list-requests and list-ops print what a policy can name, as the reference's commands do.

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
