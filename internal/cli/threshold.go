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

	"github.com/signatory-go/signatory/internal/blsthreshold"
	"github.com/signatory-go/signatory/internal/durable"
	"github.com/signatory-go/signatory/internal/tezos"
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
	cmd := &cobra.Command{Use: "threshold", Short: "Threshold tz4 keys: generate one with no dealer (dkg), or split an existing BLS key into shares"}
	var t, n int
	var generate, unsafe bool
	var passwordFile, keysDir, format, fromOctez string
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
(--unsafe-threshold allows less).

octez-client's shares (octez v23 and later) are the same construction: share i is the secret
polynomial at x = i, and partial signatures combine by Lagrange interpolation at 0.
  --format octez    prints octez-client's 'share bls secret key … between n shares with
                    threshold t' JSON ({"public_key", "public_key_hash", "proof",
                    "secret_shares": [{"id", "secret_key"}]}), which octez-client's
                    'threshold bls signatures' can combine from;
  --from-octez F    takes the shares from that JSON (F, or - for stdin) instead of splitting:
                    give -t, the threshold they were made for (octez's JSON does not hold it).
                    The group key's proof must verify, and every share, with t − 1 others, must
                    interpolate to the group key; then the shares are printed and written as
                    with a split.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if format != "signatory" && format != "octez" {
				return fmt.Errorf("--format %q: signatory or octez", format)
			}
			var password []byte
			if passwordFile != "" {
				if format == "octez" {
					return errors.New("--format octez prints unencrypted shares, as octez-client does: drop --password-file, or use --secret-keys-dir with --format signatory")
				}
				var err error
				if password, err = readPasswordFile(passwordFile); err != nil {
					return err
				}
			}
			var (
				group  *crypt.BLSPublicKey
				shares []blsthreshold.Share
				proof  crypt.Signature
			)
			if fromOctez != "" {
				if !cmd.Flags().Changed("threshold") {
					return errors.New("--from-octez needs -t: the threshold the shares were made for (octez's JSON does not hold it)")
				}
				if generate {
					return errors.New("--from-octez and --generate: one or the other")
				}
				var err error
				if group, proof, shares, err = readOctezShares(cmd.InOrStdin(), fromOctez, t); err != nil {
					return err
				}
				n = len(shares)
			}
			if t < 1 || n < t || n > blsthreshold.MaxShares {
				return fmt.Errorf("need 1 ≤ -t ≤ -n ≤ %d", blsthreshold.MaxShares)
			}
			if format == "octez" && n > blsthreshold.OctezMaxShares {
				return fmt.Errorf("--format octez holds at most %d shares (octez's share id is an int8)", blsthreshold.OctezMaxShares)
			}
			if 2*t <= n && !unsafe {
				return fmt.Errorf("-t %d is not more than half of -n %d: two coordinators could each gather %d members for conflicting payloads; use -t %d, or --unsafe-threshold", t, n, t, n/2+1)
			}
			if fromOctez == "" {
				secret, err := readSecretToSplit(cmd.InOrStdin(), generate)
				if err != nil {
					return err
				}
				if shares, err = blsthreshold.Split(secret, t, n, nil); err != nil {
					return err
				}
				group = secret.Public().(*crypt.BLSPublicKey)
				proof = secret.ProvePossession()
			}
			if format == "octez" {
				out := blsthreshold.ToOctez(group, proof, shares)
				if keysDir != "" {
					if err := writeShareFiles(keysDir, shareEntries(shares, nil)); err != nil {
						return err
					}
				}
				return g.printJSON(out)
			}
			out := splitJSON{Threshold: t, Members: n, GroupPublicKey: group.String(), GroupPKH: group.Hash().String()}
			entries := shareEntries(shares, password)
			for _, e := range entries {
				if e.err != nil {
					return e.err
				}
				out.Shares = append(out.Shares, e.shareJSON)
			}
			if keysDir != "" {
				if err := writeShareFiles(keysDir, entries); err != nil {
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
	f.StringVar(&format, "format", "signatory", "output: signatory (text, or --json) or octez (octez-client's share JSON)")
	f.StringVar(&fromOctez, "from-octez", "", "take the shares from octez-client's 'share bls secret key' JSON in this file (- for stdin) instead of splitting")
	f.BoolVar(&g.jsonOut, "json", false, "print JSON")
	cmd.AddCommand(split, newThresholdIdentity(g), newThresholdDKG(g), newThresholdMarks(g))
	return cmd
}

// readPasswordFile reads the password that encrypts shares: the file's text without its line
// end, which must not be empty.
func readPasswordFile(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("password file: %w", err)
	}
	password := []byte(strings.TrimRight(string(b), "\r\n"))
	if len(password) == 0 {
		return nil, errors.New("the password file is empty")
	}
	return password, nil
}

// readSecretToSplit makes a new BLS key (generate) or reads one from stdin.
func readSecretToSplit(stdin io.Reader, generate bool) (*crypt.BLSPrivateKey, error) {
	if generate {
		priv, err := tezos.GenerateKey(tezos.BLS)
		if err != nil {
			return nil, err
		}
		return priv.(*crypt.BLSPrivateKey), nil
	}
	line, err := bufio.NewReader(io.LimitReader(stdin, 4096)).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	s := strings.TrimPrefix(strings.TrimSpace(line), "unencrypted:")
	if s == "" {
		return nil, errors.New("no secret key on stdin (or use --generate)")
	}
	priv, err := tezos.ParseSecretKey(s, nil)
	if errors.Is(err, tezos.ErrNoPassword) {
		return nil, errors.New("the secret key on stdin is encrypted: decrypt it first (octez-client show address … -S)")
	}
	if err != nil {
		return nil, err
	}
	secret, ok := priv.(*crypt.BLSPrivateKey)
	if !ok {
		return nil, fmt.Errorf("a %s key cannot be split: only tz4 (BLS) signatures combine", tezos.CurveOf(priv.Public()))
	}
	return secret, nil
}

// readOctezShares reads octez-client's share JSON from path (- for stdin) and checks it
// (blsthreshold.ParseOctez).
func readOctezShares(stdin io.Reader, path string, t int) (*crypt.BLSPublicKey, crypt.Signature, []blsthreshold.Share, error) {
	var r io.Reader = stdin
	if path != "-" {
		f, err := os.Open(path)
		if err != nil {
			return nil, nil, nil, err
		}
		defer f.Close()
		r = f
	}
	data, err := io.ReadAll(io.LimitReader(r, 1<<20))
	if err != nil {
		return nil, nil, nil, err
	}
	group, proof, shares, err := blsthreshold.ParseOctez(data, t)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("--from-octez: %w", err)
	}
	return group, proof, shares, nil
}

// shareEntry is a share as printed and written, or the error encrypting it.
type shareEntry struct {
	shareJSON
	err error
}

// shareEntries encodes each share's secret key (encrypted when password is set).
func shareEntries(shares []blsthreshold.Share, password []byte) []shareEntry {
	out := make([]shareEntry, 0, len(shares))
	for _, s := range shares {
		enc, err := blsthreshold.SecretKeyText(s.Key, password)
		pub := s.Key.Public()
		out = append(out, shareEntry{shareJSON{Index: s.Index, SecretKey: enc, PublicKey: pub.String(), PKH: pub.Hash().String()}, err})
	}
	return out
}

// writeShareFiles writes <dir>/member-<i>/secret_keys for each share, refusing to overwrite.
func writeShareFiles(dir string, shares []shareEntry) error {
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
