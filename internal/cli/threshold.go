package cli

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/ecadlabs/gotez/v2/crypt"
	"github.com/spf13/cobra"

	"github.com/signatory-go/signatory/internal/durable"
	"github.com/signatory-go/signatory/internal/tezos"
	"github.com/signatory-go/signatory/internal/threshold"
)

// shareJSON is one share as `threshold split --json` prints it.
type shareJSON struct {
	Index     int    `json:"index"`
	SecretKey string `json:"secret_key"` // BLsk…, or encrypted (BLesk…) with a password
	PublicKey string `json:"public_key"`
	PKH       string `json:"pkh"`
}

type splitJSON struct {
	Threshold      int         `json:"threshold"`
	Members        int         `json:"members"`
	GroupPublicKey string      `json:"group_public_key"`
	GroupPKH       string      `json:"group_pkh"`
	Shares         []shareJSON `json:"shares"`
}

func newThreshold(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "threshold", Short: "Threshold tz4 keys: split a BLS key into shares"}
	var t, n int
	var generate, unsafe bool
	var passwordFile, keysDir string
	split := &cobra.Command{
		Use:   "split",
		Short: "Split a tz4 secret key (read from stdin) into n shares of which any t sign for it",
		Long: `Split a tz4 (BLS) secret key into n Shamir shares of which any t combine into the key's
signature. The key is read from stdin (BLsk…, or unencrypted:BLsk…; never from a flag, which
would leave it in the shell's history and in the process list), or made with --generate.

Each share is an ordinary tz4 secret key for one member signer. With --password-file the shares
are written encrypted as octez-client does; with --secret-keys-dir each member's share goes to
<dir>/member-<i>/secret_keys (mode 0600), an octez-client secret_keys file with one key named
share-<i>, for a file vault.

t must be more than n/2: two conflicting payloads would then need two disjoint sets of t members,
which cannot both exist, so no double signature can be made whatever the coordinators do
(--unsafe-threshold allows less).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if t < 1 || n < t || n > threshold.MaxShares {
				return fmt.Errorf("need 1 ≤ -t ≤ -n ≤ %d", threshold.MaxShares)
			}
			if 2*t <= n && !unsafe {
				return fmt.Errorf("-t %d is not more than half of -n %d: two coordinators could each gather %d members for conflicting payloads; use -t %d, or --unsafe-threshold", t, n, t, n/2+1)
			}
			var secret *crypt.BLSPrivateKey
			if generate {
				priv, err := tezos.GenerateKey(tezos.BLS)
				if err != nil {
					return err
				}
				secret = priv.(*crypt.BLSPrivateKey)
			} else {
				line, err := bufio.NewReader(io.LimitReader(cmd.InOrStdin(), 4096)).ReadString('\n')
				if err != nil && !errors.Is(err, io.EOF) {
					return err
				}
				s := strings.TrimPrefix(strings.TrimSpace(line), "unencrypted:")
				if s == "" {
					return errors.New("no secret key on stdin (or use --generate)")
				}
				priv, err := tezos.ParseSecretKey(s, nil)
				if errors.Is(err, tezos.ErrNoPassword) {
					return errors.New("the secret key on stdin is encrypted: decrypt it first (octez-client show address … -S)")
				}
				if err != nil {
					return err
				}
				var ok bool
				if secret, ok = priv.(*crypt.BLSPrivateKey); !ok {
					return fmt.Errorf("a %s key cannot be split: only tz4 (BLS) signatures combine", tezos.CurveOf(priv.Public()))
				}
			}
			var password []byte
			if passwordFile != "" {
				b, err := os.ReadFile(passwordFile)
				if err != nil {
					return fmt.Errorf("password file: %w", err)
				}
				if password = []byte(strings.TrimRight(string(b), "\r\n")); len(password) == 0 {
					return errors.New("the password file is empty")
				}
			}
			shares, err := threshold.Split(secret, t, n, nil)
			if err != nil {
				return err
			}
			group := secret.Public()
			out := splitJSON{Threshold: t, Members: n, GroupPublicKey: group.String(), GroupPKH: group.Hash().String()}
			for _, s := range shares {
				enc := "unencrypted:" + string(s.Key.ToProtocol().ToBase58())
				if password != nil {
					if enc, err = tezos.EncryptSecretKey(s.Key, password); err != nil {
						return err
					}
					enc = "encrypted:" + enc
				}
				pub := s.Key.Public()
				out.Shares = append(out.Shares, shareJSON{Index: s.Index, SecretKey: enc, PublicKey: pub.String(), PKH: pub.Hash().String()})
			}
			if keysDir != "" {
				if err := writeShareFiles(keysDir, out.Shares); err != nil {
					return err
				}
			}
			if g.jsonOut {
				return g.printJSON(out)
			}
			w := g.stdout
			fmt.Fprintf(w, "Group key (the baker's tz4 key, any %d of %d members sign for it):\n  %s\n  %s\n", t, n, out.GroupPKH, out.GroupPublicKey)
			for _, s := range out.Shares {
				fmt.Fprintf(w, "Member %d:\n  share key:  %s\n  public key: %s\n  secret key: %s\n", s.Index, s.PKH, s.PublicKey, s.SecretKey)
			}
			if keysDir != "" {
				fmt.Fprintf(w, "Each member's secret_keys file is in %s/member-<index>/.\n", keysDir)
			}
			return nil
		},
	}
	f := split.Flags()
	f.IntVarP(&t, "threshold", "t", 2, "shares needed to sign (more than half of -n)")
	f.IntVarP(&n, "members", "n", 3, "shares to make")
	f.BoolVar(&generate, "generate", false, "make a new key instead of reading one from stdin")
	f.BoolVar(&unsafe, "unsafe-threshold", false, "allow a threshold of half the members or fewer (conflicting payloads could both be signed)")
	f.StringVar(&passwordFile, "password-file", "", "encrypt the shares with the password in this file")
	f.StringVar(&keysDir, "secret-keys-dir", "", "write each share to <dir>/member-<i>/secret_keys")
	f.BoolVar(&g.jsonOut, "json", false, "print JSON")
	cmd.AddCommand(split)
	return cmd
}

// writeShareFiles writes <dir>/member-<i>/secret_keys for each share, refusing to overwrite.
func writeShareFiles(dir string, shares []shareJSON) error {
	for _, s := range shares {
		d := filepath.Join(dir, fmt.Sprintf("member-%d", s.Index))
		if err := os.MkdirAll(d, 0o700); err != nil {
			return err
		}
		path := filepath.Join(d, "secret_keys")
		if _, err := os.Stat(path); err == nil {
			return fmt.Errorf("%s exists: not overwritten", path)
		}
		data, err := json.MarshalIndent([]map[string]string{{"name": fmt.Sprintf("share-%d", s.Index), "value": s.SecretKey}}, "", "  ")
		if err != nil {
			return err
		}
		if err := durable.WriteBytes(path, ".share-tmp-", append(data, '\n')); err != nil {
			return err
		}
	}
	return nil
}
