package interop

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ecadlabs/goblst/minpk"
	"github.com/ecadlabs/gotez/v2/crypt"

	"github.com/signatory-go/signatory/internal/request/requesttest"
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
	MemberPolicy   string `json:"member_policy"`
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
	members, ceremony := newCeremony(t, n, th)
	return members, runMembers(t, ceremony, members, nil)
}

// newCeremony makes n members (identities made with `signatory threshold identity`, files, a
// signer daemon not started) and their ceremony config with threshold th; it returns them and the
// config's path.
func newCeremony(t *testing.T, n, th int) ([]*dkgMember, string) {
	t.Helper()
	bin := testdaemon.Binary(t)
	var members []*dkgMember
	var cfg strings.Builder
	// Ceremony ports below the ephemeral range, so that no other test's port 0 takes one.
	base := freePorts(t, n)
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
		fmt.Fprintf(&cfg, "  - {index: %d, identity: %s, address: 127.0.0.1:%d, url: http://%s}\n", i, m.identity, base+i-1, m.daemon.Addr)
		members = append(members, m)
	}
	ceremony := filepath.Join(t.TempDir(), "ceremony.yaml")
	if err := os.WriteFile(ceremony, []byte(cfg.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return members, ceremony
}

// memberProc is one `signatory threshold dkg` process.
type memberProc struct {
	m      *dkgMember
	cmd    *exec.Cmd
	stdout bytes.Buffer
	mu     sync.Mutex
	stderr bytes.Buffer
	done   chan struct{}
	err    error
}

func (p *memberProc) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stderr.Write(b)
}

func (p *memberProc) log() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stderr.String()
}

// startMember starts member m's part in the ceremony, with extra flags.
func startMember(t *testing.T, ceremony string, m *dkgMember, extra ...string) *memberProc {
	t.Helper()
	args := append([]string{"threshold", "dkg", "--ceremony", ceremony, "--identity", filepath.Join(m.dir, "identity"), "--secret-keys", m.secretKeys, "--json"}, extra...)
	p := &memberProc{m: m, cmd: exec.Command(testdaemon.Binary(t), args...), done: make(chan struct{})}
	p.cmd.Stdout = &p.stdout
	p.cmd.Stderr = p
	testdaemon.DieWithTest(p.cmd)
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() { p.cmd.Process.Kill(); <-p.done })
	return p
}

// result waits for the process and returns its output, or its error with its log.
func (p *memberProc) result(t *testing.T) (ceremonyOutput, error) {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(5 * time.Minute):
		t.Fatalf("member %d still running after 5 minutes:\n%s", p.m.index, p.log())
	}
	var o ceremonyOutput
	if p.err != nil {
		return o, fmt.Errorf("%w\n%s", p.err, p.log())
	}
	return o, json.Unmarshal(p.stdout.Bytes(), &o)
}

// waitLog waits until the member's log holds s (a bound against a hang, not a measure).
func (p *memberProc) waitLog(t *testing.T, s string) {
	t.Helper()
	testdaemon.Eventually(t, 2*time.Minute, fmt.Sprintf("member %d logs %q", p.m.index, s), func() error {
		if strings.Contains(p.log(), s) {
			return nil
		}
		select {
		case <-p.done:
			t.Fatalf("member %d exited before logging %q:\n%s", p.m.index, s, p.log())
		default:
		}
		return fmt.Errorf("not yet")
	})
}

// runMembers runs `signatory threshold dkg` for every member at once, with the ceremony config
// and each member's own files, plus extra(member)'s flags; it returns each member's output, by
// index, and fails the test if one fails.
func runMembers(t *testing.T, ceremony string, members []*dkgMember, extra func(*dkgMember) []string) map[int]ceremonyOutput {
	t.Helper()
	var procs []*memberProc
	for _, m := range members {
		var args []string
		if extra != nil {
			args = extra(m)
		}
		procs = append(procs, startMember(t, ceremony, m, args...))
	}
	outs := map[int]ceremonyOutput{}
	for _, p := range procs {
		o, err := p.result(t)
		if err != nil {
			t.Fatalf("member %d: %v", p.m.index, err)
		}
		outs[p.m.index] = o
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
				if !strings.HasPrefix(o.MemberPolicy, o.Share+":\n") || !strings.Contains(o.MemberPolicy, "share_of: "+o.GroupPublicKey+"\n") {
					t.Fatalf("member %d's printed policy does not declare its share of the group:\n%s", m.index, o.MemberPolicy)
				}
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
			signedItems := signThrough(t, coord, first.GroupPKH, first.GroupPublicKey)
			// Issue 16's race with members born of a ceremony: a second coordinator over the same
			// members, conflicting attestations through both at once, at most one per slot.
			second := startCoordinator(t, outs[2].VaultConfig.PublicKey, outs[2].VaultConfig.Threshold, outs[2].VaultConfig.Members)
			raced := raceConflicting(t, []*testdaemon.Daemon{coord, second}, first.GroupPKH, "b3d79f99", 10, 29)
			if len(raced) == 0 {
				t.Fatal("the race signed nothing")
			}
			verifyWithTaquito(t, nodeBin, first.GroupPublicKey, append(signedItems, raced...))
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
			requesttest.Block(chain, level, 0, 1),
			requesttest.Preattestation(chain, level, 0, 1),
			requesttest.Attestation(chain, level, 0, 1),
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
	base := freePorts(t, len(all))
	addrs := map[int]string{}
	var cfg strings.Builder
	fmt.Fprintf(&cfg, "name: reshare\nthreshold: 3\nmembers:\n")
	for _, m := range all {
		addrs[m.index] = fmt.Sprintf("127.0.0.1:%d", base+m.index-1)
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
	status, body := coord.Sign(first.GroupPKH, requesttest.Block("b3d79f99", 10, 0, 1))
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

// noShare fails the test if member m's secret_keys file exists.
func noShare(t *testing.T, m *dkgMember) {
	t.Helper()
	if _, err := os.Stat(m.secretKeys); !os.IsNotExist(err) {
		t.Fatalf("member %d wrote %s (%v) although its ceremony failed", m.index, m.secretKeys, err)
	}
}

// TestDKGCheatersProcesses: in a ceremony of 5 processes (threshold 3), a member whose deal to
// member 2 does not match its commitments (and which does not answer the complaint) and a member
// that joins and then sends nothing are left out and named by every other member, which form the
// group; the two get no share. With 2 cheaters of 3 members (threshold 2), the honest member
// aborts and writes nothing.
func TestDKGCheatersProcesses(t *testing.T) {
	t.Run("excluded", func(t *testing.T) {
		members, ceremony := newCeremony(t, 5, 3)
		var procs []*memberProc
		metricsFile := filepath.Join(t.TempDir(), "dkg.prom")
		for _, m := range members {
			args := []string{"--phase-timeout", "10s"}
			switch m.index {
			case 1:
				args = append(args, "--metrics-file", metricsFile)
			case 4:
				args = append(args, "--misbehave", "bad-deal-to=2;no-justification")
			case 5:
				args = append(args, "--misbehave", "silent")
			}
			procs = append(procs, startMember(t, ceremony, m, args...))
		}
		var first *ceremonyOutput
		for _, p := range procs {
			o, err := p.result(t)
			if p.m.index >= 4 {
				if err == nil {
					t.Fatalf("cheating member %d got a share", p.m.index)
				}
				noShare(t, p.m)
				continue
			}
			if err != nil {
				t.Fatalf("member %d: %v", p.m.index, err)
			}
			if len(o.Excluded) != 2 || o.Excluded[0].Index != 4 || o.Excluded[1].Index != 5 || len(o.Members) != 3 {
				t.Fatalf("member %d: excluded %v, members %v", p.m.index, o.Excluded, o.Members)
			}
			if first == nil {
				first = &o
			} else if o.GroupPublicKey != first.GroupPublicKey || o.Transcript != first.Transcript {
				t.Fatalf("member %d reports another outcome", p.m.index)
			}
			if len(readShareFile(t, p.m.secretKeys)) != 1 {
				t.Fatalf("member %d's share file", p.m.index)
			}
		}
		// Member 1's metrics file: the last step, the group's size, who was left out, the
		// complaint.
		checkMetrics(t, metricsFile, `phase="complete"} 1\n`, `phase="aborted"} 0\n`, `signatory_dkg_members{ceremony="[^"]+"} 3\n`,
			`signatory_dkg_excluded_members{ceremony="[^"]+"} 2\n`, `signatory_dkg_complaints{ceremony="[^"]+"} [1-9]`, `signatory_dkg_duration_seconds{ceremony="[^"]+"} [0-9]`)
	})
	t.Run("too many", func(t *testing.T) {
		members, ceremony := newCeremony(t, 3, 2)
		var procs []*memberProc
		for _, m := range members {
			args := []string{"--phase-timeout", "10s"}
			switch m.index {
			case 2:
				args = append(args, "--misbehave", "bad-deal-to=1,3;no-justification")
			case 3:
				args = append(args, "--misbehave", "bad-deal-to=1,2;no-justification")
			}
			procs = append(procs, startMember(t, ceremony, m, args...))
		}
		for _, p := range procs {
			if _, err := p.result(t); err == nil && p.m.index == 1 {
				t.Fatal("the honest member got a share among two cheaters")
			}
		}
		noShare(t, members[0])
	})
}

// TestDKGKilledProcesses: kill -9 of a member of a 2-of-3 ceremony at each step.
//   - Before dealing (it has joined): the two others form the group without it and name it.
//   - Before confirming (it holds the outcome): the others abort, nothing is written anywhere,
//     and the same ceremony run again succeeds.
//   - After every confirmation, before writing its share: the others complete; it has no share
//     (as if its disk had failed then: the group stands with the others' shares).
func TestDKGKilledProcesses(t *testing.T) {
	for _, step := range []string{"deal", "confirm", "write"} {
		t.Run(step, func(t *testing.T) {
			members, ceremony := newCeremony(t, 3, 2)
			var procs []*memberProc
			for _, m := range members {
				args := []string{"--phase-timeout", "10s"}
				if m.index == 2 {
					args = append(args, "--misbehave", "hold="+step)
				}
				if m.index == 1 {
					args = append(args, "--metrics-file", filepath.Join(m.dir, "dkg.prom"))
				}
				procs = append(procs, startMember(t, ceremony, m, args...))
			}
			procs[1].waitLog(t, "ceremony: holding before "+step)
			if err := procs[1].cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			<-procs[1].done
			noShare(t, members[1])
			outs := map[int]ceremonyOutput{}
			for _, p := range []*memberProc{procs[0], procs[2]} {
				o, err := p.result(t)
				if step == "confirm" {
					if err == nil {
						t.Fatalf("member %d completed although member 2 never confirmed", p.m.index)
					}
					noShare(t, p.m)
					continue
				}
				if err != nil {
					t.Fatalf("member %d: %v", p.m.index, err)
				}
				outs[p.m.index] = o
			}
			switch step {
			case "deal":
				for i, o := range outs {
					if len(o.Excluded) != 1 || o.Excluded[0].Index != 2 || len(o.Members) != 2 {
						t.Fatalf("member %d: excluded %v, members %v", i, o.Excluded, o.Members)
					}
				}
			case "write":
				for i, o := range outs {
					if len(o.Excluded) != 0 || len(o.Members) != 3 {
						t.Fatalf("member %d: excluded %v, members %v", i, o.Excluded, o.Members)
					}
				}
			case "confirm":
				checkMetrics(t, filepath.Join(members[0].dir, "dkg.prom"), `phase="aborted"} 1\n`, `phase="complete"} 0\n`)
				// Run again, everyone honest: it succeeds.
				again := runMembers(t, ceremony, members, nil)
				if again[1].GroupPublicKey != again[2].GroupPublicKey || again[2].Transcript != again[3].Transcript {
					t.Fatal("the rerun's members disagree")
				}
			}
		})
	}
}

// checkMetrics fails the test unless the metrics file matches each of want (regular expressions).
func checkMetrics(t *testing.T, path string, want ...string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range want {
		if !regexp.MustCompile(w).Match(b) {
			t.Fatalf("the metrics file has no %q:\n%s", w, b)
		}
	}
}
