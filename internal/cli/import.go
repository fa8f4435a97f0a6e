package cli

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/signatory-go/signatory/internal/tezos"
	"github.com/signatory-go/signatory/internal/vault"
)

func newImport(g *globals) *cobra.Command {
	var vaultName, name, passwordFile string
	cmd := &cobra.Command{
		Use:   "import [secret-key]",
		Short: "Import an existing secret key (edsk/spsk/p2sk/BLsk/mdsk or encrypted) into a vault; read from stdin when not given",
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
