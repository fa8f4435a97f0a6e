package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/signatory-go/signatory/internal/doctor"
)

func newDoctor(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "doctor",
		Short: "Check a config and this machine before running the signer (exit status 1 on an error)",
		Long: "Checks the config and the machine the way a careful baker would before mainnet: the kinds each consensus key needs,\n" +
			"keys missing from the vaults or the policy, base_dir (persistent storage, permissions, free space, fsync, the lock,\n" +
			"the journal), allowed_chains, the ports' exposure and authentication, TLS certificates, and that every vault opens.\n" +
			"Each finding says how serious it is and the fix. It changes nothing.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, _, err := g.load()
			if err != nil {
				return err
			}
			findings := doctor.Run(cmd.Context(), cfg, doctor.Options{})
			if g.jsonOut {
				if findings == nil {
					findings = []doctor.Finding{}
				}
				if err := g.printJSON(findings); err != nil {
					return err
				}
			} else {
				for _, f := range findings {
					subject := ""
					if f.Subject != "" {
						subject = " " + f.Subject
					}
					fmt.Fprintf(g.stdout, "%-7s %s%s: %s\n        fix: %s\n", f.Severity, f.Check, subject, f.Problem, f.Fix)
				}
				if len(findings) == 0 {
					fmt.Fprintln(g.stdout, "no findings")
				}
			}
			n := 0
			for _, f := range findings {
				if f.Severity == doctor.Error {
					n++
				}
			}
			if n > 0 {
				return fmt.Errorf("doctor: %d error(s)", n)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&g.jsonOut, "json", false, "print the findings as JSON")
	return cmd
}
