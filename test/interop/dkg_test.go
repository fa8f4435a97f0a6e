package interop

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ecadlabs/goblst/minpk"
	"github.com/ecadlabs/gotez/v2/crypt"

	"github.com/signatory-go/signatory/internal/testdaemon"
	"github.com/signatory-go/signatory/internal/tezos"
)

// ceremonyOutput is what `signatory threshold dkg --json` prints.
type ceremonyOutput struct {
	Index          int    `json:"index"`
	GroupPublicKey string `json:"group_public_key"`
	GroupPKH       string `json:"group_public_key_hash"`
	Transcript     string `json:"transcript"`
	Share          string `json:"share_public_key_hash"`
	Members        []struct {
		Index int    `json:"index"`
		PKH   string `json:"public_key_hash"`
	} `json:"members"`
	Excluded    []struct{ Index int } `json:"excluded"`
	VaultConfig struct {
		PublicKey string `json:"public_key"`
		Threshold int    `json:"threshold"`
		Members   []struct {
			Index int    `json:"index"`
			URL   string `json:"url"`
			Key   string `json:"key"`
		} `json:"members"`
	} `json:"vault_config"`
}

// dkgMember is one member of a ceremony run as processes: its identity, its files and its signer.
type dkgMember struct {
	index      int
	dir        string
	identity   string // BLpk
	secretKeys string
	daemon     *testdaemon.Daemon
}

// runCeremony makes n identities with `signatory threshold identity`, writes one ceremony config
// and runs `signatory threshold dkg` for every member at once, each a process with its own files;
// it returns each member's output, by index.
func runCeremony(t *testing.T, n, th int) ([]*dkgMember, map[int]ceremonyOutput) {
	t.Helper()
	bin := testdaemon.Binary(t)
	var members []*dkgMember
	var cfg strings.Builder
	fmt.Fprintf(&cfg, "name: %s\nthreshold: %d\nmembers:\n", strings.ReplaceAll(t.Name(), "/", "-"), th)
	for i := 1; i <= n; i++ {
		m := &dkgMember{index: i, dir: t.TempDir()}
		m.secretKeys = filepath.Join(m.dir, "secret_keys")
		out, err := exec.Command(bin, "threshold", "identity", "--out", filepath.Join(m.dir, "identity"), "--json").Output()
		if err != nil {
			t.Fatalf("identity: %v", err)
		}
		var id struct{ Identity string }
		if err := json.Unmarshal(out, &id); err != nil {
			t.Fatal(err)
		}
		m.identity = id.Identity
		m.daemon = testdaemon.New(t)
		m.daemon.Name = fmt.Sprintf("member-%d", i)
		fmt.Fprintf(&cfg, "  - {index: %d, identity: %s, address: %s, url: http://%s}\n", i, m.identity, testdaemon.FreeAddr(t), m.daemon.Addr)
		members = append(members, m)
	}
	ceremony := filepath.Join(t.TempDir(), "ceremony.yaml")
	if err := os.WriteFile(ceremony, []byte(cfg.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	outs := map[int]ceremonyOutput{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, m := range members {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, bin, "threshold", "dkg", "--ceremony", ceremony, "--identity", filepath.Join(m.dir, "identity"),
				"--secret-keys", m.secretKeys, "--json")
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			testdaemon.DieWithTest(cmd)
			out, err := cmd.Output()
			var o ceremonyOutput
			if err == nil {
				err = json.Unmarshal(out, &o)
			}
			if err != nil {
				t.Errorf("member %d: %v\n%s%s", m.index, err, out, stderr.String())
			}
			mu.Lock()
			outs[m.index] = o
			mu.Unlock()
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	return members, outs
}

// TestDKGProcesses: a tz4 key made by 3 members (threshold 2) and by 5 (threshold 3), each a
// `signatory threshold dkg` process with its own identity and files, no dealer. Every member
// reports the same group key and transcript; each member's secret_keys file holds its own share
// and nothing else. Then each member serves its share as an ordinary signer, a coordinator runs
// the vault config the ceremony printed, and blocks, preattestations, attestations and the group
// key's proof of possession signed through it verify with Taquito's BLS verifier (@noble/curves),
// an implementation this project did not write, against the group key.
func TestDKGProcesses(t *testing.T) {
	nodeBin := requireNode(t)
	for _, tc := range []struct{ n, t int }{{3, 2}, {5, 3}} {
		t.Run(fmt.Sprintf("%d-of-%d", tc.t, tc.n), func(t *testing.T) {
			members, outs := runCeremony(t, tc.n, tc.t)
			first := outs[1]
			shares := map[string]bool{}
			for _, m := range members {
				o := outs[m.index]
				if o.GroupPublicKey != first.GroupPublicKey || o.Transcript != first.Transcript || len(o.Members) != tc.n || len(o.Excluded) != 0 {
					t.Fatalf("member %d reports %s %s (%d members, %d excluded); member 1: %s %s", m.index, o.GroupPKH, o.Transcript, len(o.Members), len(o.Excluded), first.GroupPKH, first.Transcript)
				}
				if o.Index != m.index || o.Members[m.index-1].PKH != o.Share {
					t.Fatalf("member %d: index %d, share %s, listed %s", m.index, o.Index, o.Share, o.Members[m.index-1].PKH)
				}
				shares[o.Share] = true
				// The member's files: its identity, and its share alone.
				keys := readShareFile(t, m.secretKeys)
				if len(keys) != 1 || keys[0].Public().Hash().String() != o.Share {
					t.Fatalf("member %d's secret_keys holds %d keys, not only its share %s", m.index, len(keys), o.Share)
				}
				if keys[0].Public().String() == first.GroupPublicKey {
					t.Fatalf("member %d holds the group key", m.index)
				}
			}
			if len(shares) != tc.n {
				t.Fatalf("%d distinct shares for %d members", len(shares), tc.n)
			}

			// Each member serves its share; a coordinator runs the printed vault config.
			for _, m := range members {
				o := outs[m.index]
				policy := testdaemon.ConsensusPolicy(o.Share) + "    allow_proof_of_possession_for: [" + o.GroupPublicKey + "]\n"
				m.daemon.StartTimeout = 60 * time.Second
				m.daemon.WriteConfig(testdaemon.FileVault(m.secretKeys) + "watermark:\n  driver: file\ntezos:\n" + policy)
				m.daemon.Serve("--no-list")
			}
			vc := first.VaultConfig
			var cfg strings.Builder
			fmt.Fprintf(&cfg, "vaults:\n  baker:\n    driver: threshold\n    config:\n      public_key: %s\n      threshold: %d\n      timeout: 30s\n      members:\n", vc.PublicKey, vc.Threshold)
			for _, m := range vc.Members {
				fmt.Fprintf(&cfg, "        - {index: %d, url: %s, key: %s}\n", m.Index, m.URL, m.Key)
			}
			coord := testdaemon.New(t)
			coord.Name = "coordinator"
			coord.StartTimeout = 60 * time.Second
			coord.WriteConfig(cfg.String() + "watermark:\n  driver: file\ntezos:\n" + testdaemon.ConsensusPolicy(first.GroupPKH) + "    allow_proof_of_possession: true\n")
			coord.Serve("--no-list")

			const chain = "b3d79f99"
			var verified []signed
			status, body := coord.Get("/bls_prove_possession/" + first.GroupPKH)
			var pop struct {
				Proof string `json:"bls_prove_possession"`
			}
			if err := json.Unmarshal([]byte(body), &pop); status != 200 || err != nil {
				t.Fatalf("proof of possession through the coordinator: %d %s", status, body)
			}
			group, err := tezos.ParseBLSPublicKey(first.GroupPublicKey)
			if err != nil {
				t.Fatal(err)
			}
			verified = append(verified, signed{Msg: hex.EncodeToString((*minpk.PublicKey)(group).Bytes()), Sig: pop.Proof, PoP: true})
			for level := int32(1); level <= 3; level++ {
				for _, msg := range []string{
					testdaemon.Block(chain, level, 0, 1),
					testdaemon.Preattestation(chain, level, 0, 1),
					testdaemon.Attestation(chain, level, 0, 1),
				} {
					status, sig := coord.Sign(first.GroupPKH, msg)
					if status != 200 {
						t.Fatalf("level %d, %s…: %d %s", level, msg[:12], status, sig)
					}
					verified = append(verified, signed{Msg: msg, Sig: sig})
				}
			}
			verifyWithTaquito(t, nodeBin, first.GroupPublicKey, verified)
		})
	}
}

// readShareFile reads the keys of an octez-client secret_keys file.
func readShareFile(t *testing.T, path string) []crypt.PrivateKey {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("%s: mode %04o", path, st.Mode().Perm())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var entries []struct{ Name, Value string }
	if err := json.Unmarshal(b, &entries); err != nil {
		t.Fatal(err)
	}
	var keys []crypt.PrivateKey
	for _, e := range entries {
		k, err := tezos.ParseSecretKey(strings.TrimPrefix(e.Value, "unencrypted:"), nil)
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, k)
	}
	return keys
}
