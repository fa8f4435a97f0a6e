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
		Index     int    `json:"index"`
		PublicKey string `json:"public_key"`
		PKH       string `json:"public_key_hash"`
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
	return members, runMembers(t, ceremony, members, nil)
}

// runMembers runs `signatory threshold dkg` for every member at once, with the ceremony config
// and each member's own files, plus extra(member)'s flags; it returns each member's output, by
// index.
func runMembers(t *testing.T, ceremony string, members []*dkgMember, extra func(*dkgMember) []string) map[int]ceremonyOutput {
	t.Helper()
	bin := testdaemon.Binary(t)
	outs := map[int]ceremonyOutput{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, m := range members {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			args := []string{"threshold", "dkg", "--ceremony", ceremony, "--identity", filepath.Join(m.dir, "identity"), "--secret-keys", m.secretKeys, "--json"}
			if extra != nil {
				args = append(args, extra(m)...)
			}
			cmd := exec.CommandContext(ctx, bin, args...)
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
	return outs
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
				serveShare(t, m, outs[m.index].GroupPublicKey, outs[m.index].Share)
			}
			coord := startCoordinator(t, outs[1].VaultConfig.PublicKey, outs[1].VaultConfig.Threshold, outs[1].VaultConfig.Members)
			verifyWithTaquito(t, nodeBin, first.GroupPublicKey, signThrough(t, coord, first.GroupPKH, first.GroupPublicKey))
		})
	}
}

// serveShare (re)starts member m's signer serving the share shareKeys (its tz4 addresses) from
// its secret_keys file, with a consensus policy and proofs of possession over the group key.
func serveShare(t *testing.T, m *dkgMember, group string, shareKeys ...string) {
	t.Helper()
	var policy strings.Builder
	for _, k := range shareKeys {
		policy.WriteString(testdaemon.ConsensusPolicy(k) + "    allow_proof_of_possession_for: [" + group + "]\n")
	}
	m.daemon.Kill()
	m.daemon.StartTimeout = 60 * time.Second
	m.daemon.WriteConfig(testdaemon.FileVault(m.secretKeys) + "watermark:\n  driver: file\ntezos:\n" + policy.String())
	m.daemon.Serve("--no-list")
}

// vaultMember is a member line of a threshold vault config.
type vaultMember = struct {
	Index int    `json:"index"`
	URL   string `json:"url"`
	Key   string `json:"key"`
}

// startCoordinator starts a coordinator (its own base_dir) whose threshold vault is the given
// group, with the baker's consensus policy and proofs of possession.
func startCoordinator(t *testing.T, public string, threshold int, members []vaultMember) *testdaemon.Daemon {
	t.Helper()
	group, err := tezos.ParseBLSPublicKey(public)
	if err != nil {
		t.Fatal(err)
	}
	var cfg strings.Builder
	fmt.Fprintf(&cfg, "vaults:\n  baker:\n    driver: threshold\n    config:\n      public_key: %s\n      threshold: %d\n      timeout: 30s\n      members:\n", public, threshold)
	for _, m := range members {
		fmt.Fprintf(&cfg, "        - {index: %d, url: %s, key: %s}\n", m.Index, m.URL, m.Key)
	}
	coord := testdaemon.New(t)
	coord.Name = "coordinator"
	coord.StartTimeout = 60 * time.Second
	coord.FailureLogLines = 50
	coord.WriteConfig(cfg.String() + "watermark:\n  driver: file\ntezos:\n" + testdaemon.ConsensusPolicy(group.Hash().String()) + "    allow_proof_of_possession: true\n")
	coord.Serve("--no-list")
	return coord
}

// signThrough has the coordinator make the group key's proof of possession and sign a block, a
// preattestation and an attestation at levels 1 to 3; it returns them in that order.
func signThrough(t *testing.T, coord *testdaemon.Daemon, pkh, public string) []signed {
	t.Helper()
	const chain = "b3d79f99"
	var out []signed
	status, body := coord.Get("/bls_prove_possession/" + pkh)
	var pop struct {
		Proof string `json:"bls_prove_possession"`
	}
	if err := json.Unmarshal([]byte(body), &pop); status != 200 || err != nil {
		t.Fatalf("proof of possession through the coordinator: %d %s", status, body)
	}
	group, err := tezos.ParseBLSPublicKey(public)
	if err != nil {
		t.Fatal(err)
	}
	out = append(out, signed{Msg: hex.EncodeToString((*minpk.PublicKey)(group).Bytes()), Sig: pop.Proof, PoP: true})
	for level := int32(1); level <= 3; level++ {
		for _, msg := range []string{
			testdaemon.Block(chain, level, 0, 1),
			testdaemon.Preattestation(chain, level, 0, 1),
			testdaemon.Attestation(chain, level, 0, 1),
		} {
			status, sig := coord.Sign(pkh, msg)
			if status != 200 {
				t.Fatalf("level %d, %s…: %d %s", level, msg[:12], status, sig)
			}
			out = append(out, signed{Msg: msg, Sig: sig})
		}
	}
	return out
}

// TestDKGReshareProcesses: a 2-of-3 key made by a ceremony of processes is reshared to 4 members
// (threshold 3) by a second ceremony of processes, in which the three members deal their shares
// (named with --old-alias) and a newcomer receives. The group key is unchanged; a coordinator
// over the new shares signs the same block, preattestations, attestations and proof of
// possession byte for byte as the first group's coordinator did; and a coordinator given a
// member's old share key beside the new ones names that member and signs nothing.
func TestDKGReshareProcesses(t *testing.T) {
	nodeBin := requireNode(t)
	members, outs := runCeremony(t, 3, 2)
	first := outs[1]
	for _, m := range members {
		serveShare(t, m, first.GroupPublicKey, outs[m.index].Share)
	}
	before := signThrough(t, startCoordinator(t, first.VaultConfig.PublicKey, 2, first.VaultConfig.Members), first.GroupPKH, first.GroupPublicKey)

	// The newcomer, then the resharing ceremony: members 1–3 of both groups, member 4 new.
	bin := testdaemon.Binary(t)
	m4 := &dkgMember{index: 4, dir: t.TempDir()}
	m4.secretKeys = filepath.Join(m4.dir, "secret_keys")
	out, err := exec.Command(bin, "threshold", "identity", "--out", filepath.Join(m4.dir, "identity"), "--json").Output()
	if err != nil {
		t.Fatal(err)
	}
	var id struct{ Identity string }
	if err := json.Unmarshal(out, &id); err != nil {
		t.Fatal(err)
	}
	m4.identity = id.Identity
	m4.daemon = testdaemon.New(t)
	m4.daemon.Name = "member-4"
	all := append(append([]*dkgMember{}, members...), m4)
	addrs := map[int]string{}
	var cfg strings.Builder
	fmt.Fprintf(&cfg, "name: reshare\nthreshold: 3\nmembers:\n")
	for _, m := range all {
		addrs[m.index] = testdaemon.FreeAddr(t)
		fmt.Fprintf(&cfg, "  - {index: %d, identity: %s, address: %s, url: http://%s}\n", m.index, m.identity, addrs[m.index], m.daemon.Addr)
	}
	fmt.Fprintf(&cfg, "previous:\n  public_key: %s\n  threshold: 2\n  members:\n", first.GroupPublicKey)
	for _, m := range members {
		fmt.Fprintf(&cfg, "    - {index: %d, identity: %s, address: %s, share: %s}\n", m.index, m.identity, addrs[m.index], first.Members[m.index-1].PublicKey)
	}
	ceremony := filepath.Join(t.TempDir(), "reshare.yaml")
	if err := os.WriteFile(ceremony, []byte(cfg.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	firstAlias := "dkg-" + strings.ReplaceAll(t.Name(), "/", "-")
	reshared := runMembers(t, ceremony, all, func(m *dkgMember) []string {
		if m.index == 4 {
			return []string{"--alias", "second"}
		}
		return []string{"--alias", "second", "--old-alias", firstAlias}
	})
	second := reshared[1]
	for _, m := range all {
		o := reshared[m.index]
		if o.GroupPublicKey != first.GroupPublicKey || o.Transcript != second.Transcript || len(o.Members) != 4 {
			t.Fatalf("member %d after the resharing: %s %s (%d members); before: %s", m.index, o.GroupPKH, o.Transcript, len(o.Members), first.GroupPKH)
		}
		if m.index <= 3 && o.Share == outs[m.index].Share {
			t.Fatalf("member %d's share did not change", m.index)
		}
	}

	// The new group signs the same bytes byte for byte.
	for _, m := range all {
		serveShare(t, m, first.GroupPublicKey, reshared[m.index].Share)
	}
	after := signThrough(t, startCoordinator(t, second.VaultConfig.PublicKey, 3, second.VaultConfig.Members), first.GroupPKH, first.GroupPublicKey)
	for i := range before {
		if before[i].Msg != after[i].Msg || before[i].Sig != after[i].Sig {
			t.Fatalf("item %d: before the resharing %s, after %s", i, before[i].Sig, after[i].Sig)
		}
	}
	verifyWithTaquito(t, nodeBin, first.GroupPublicKey, after)

	// Member 1 still serving its old share (not erased), and a coordinator given that share's
	// key among the new ones: the old share does not combine with the new ones, and the
	// coordinator says which member's share does not fit.
	serveShare(t, members[0], first.GroupPublicKey, reshared[1].Share, outs[1].Share)
	mixed := append([]vaultMember{}, second.VaultConfig.Members...)
	mixed[0].Key = outs[1].Share
	coord := startCoordinator(t, second.VaultConfig.PublicKey, 3, mixed)
	status, body := coord.Sign(first.GroupPKH, testdaemon.Block("b3d79f99", 10, 0, 1))
	if status == 200 || !strings.Contains(coord.Logs(), "the share of member 1 (with members [1 2 3]) does not interpolate to the group key") {
		t.Fatalf("a coordinator with an old share among new ones: %d %s\n%s", status, body, coord.Logs())
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
