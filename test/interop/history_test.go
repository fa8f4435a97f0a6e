package interop

import (
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	tz "github.com/ecadlabs/gotez/v2"
	"github.com/ecadlabs/gotez/v2/crypt"

	"github.com/signatory-go/signatory/internal/blsthreshold"
	"github.com/signatory-go/signatory/internal/request/requesttest"
	"github.com/signatory-go/signatory/internal/testdaemon"
	"github.com/signatory-go/signatory/internal/tezos"
)

const historyChainHex = "b3d79f99"

// historyGroup is a threshold group of member processes with share_of in their policies, and
// the coordinators over it.
type historyGroup struct {
	t       *testing.T
	group   crypt.PublicKey
	th      int
	shares  []blsthreshold.Share
	members []*testdaemon.Daemon
	chain   string // the chain id of historyChainHex
	bin     string
	// signed is the oracle: every payload a coordinator signed, by slot ("<class> <level>
	// <round>"). Two payloads for one slot are two group signatures for it: a double sign.
	signed map[string]string
}

// newHistoryGroup splits secret into t-of-n shares and makes a member process for each (not
// started), each with its own file vault and watermark store, a consensus policy for its share
// and share_of the group key.
func newHistoryGroup(t *testing.T, secret *crypt.BLSPrivateKey, th, n int, name string) *historyGroup {
	t.Helper()
	shares, err := blsthreshold.Split(secret, th, n, nil)
	if err != nil {
		t.Fatal(err)
	}
	var id tz.ChainID
	b, _ := hex.DecodeString(historyChainHex)
	copy(id[:], b)
	g := &historyGroup{t: t, th: th, group: secret.Public(), shares: shares, chain: id.String(), bin: testdaemon.Binary(t), signed: map[string]string{}}
	for _, s := range shares {
		keyFile := filepath.Join(t.TempDir(), "secret_keys.json")
		testdaemon.WriteKeyFile(t, keyFile, "share", s.Key)
		policy := testdaemon.ConsensusPolicy(g.share(len(g.members))) + "    share_of: " + g.group.String() + "\n"
		g.members = append(g.members, testdaemon.NewMember(t, fmt.Sprintf("%s-%d", name, s.Index), keyFile, "  driver: file\n", policy))
	}
	return g
}

// share is the tz4 address of member i's share (0-based).
func (g *historyGroup) share(i int) string { return g.shares[i].Key.Public().Hash().String() }

// run runs the signatory CLI with args and returns its output and error.
func (g *historyGroup) run(args ...string) (string, error) {
	out, err := exec.Command(g.bin, args...).CombinedOutput()
	return string(out), err
}

// floor gives member i's share a history: `watermark floor` at level (0 for a new group key).
func (g *historyGroup) floor(i, level int) {
	g.t.Helper()
	if out, err := g.run("-c", g.members[i].Config, "watermark", "floor", "--key", g.share(i), "--chain", g.chain, "--level", fmt.Sprint(level)); err != nil {
		g.t.Fatalf("floor: %v\n%s", err, out)
	}
}

// show returns member i's stored marks (`watermark show --json`; the member stopped).
func (g *historyGroup) show(i int) string {
	g.t.Helper()
	out, err := g.run("-c", g.members[i].Config, "watermark", "show", "--json")
	if err != nil {
		g.t.Fatalf("watermark show: %v\n%s", err, out)
	}
	return out
}

// takeMarks runs `threshold marks` for member i (stopped) from the group config of coordinator
// from.
func (g *historyGroup) takeMarks(i int, from *testdaemon.Daemon) (string, error) {
	return g.run("-c", g.members[i].Config, "threshold", "marks", "--key", g.share(i), "--from", from.Config, "--chain", g.chain)
}

// coordinator starts a coordinator (its own store) over the group.
func (g *historyGroup) coordinator(name string) *testdaemon.Daemon {
	g.t.Helper()
	var cfg strings.Builder
	fmt.Fprintf(&cfg, "vaults:\n  baker:\n    driver: threshold\n    config:\n      public_key: %s\n      threshold: %d\n      timeout: 30s\n      members:\n",
		g.group, g.th)
	for i, s := range g.shares {
		fmt.Fprintf(&cfg, "        - {index: %d, url: http://%s, key: %s}\n", s.Index, g.members[i].Addr, g.share(i))
	}
	d := testdaemon.New(g.t)
	d.Name = name
	d.FailureLogLines = 50
	d.WriteConfig(cfg.String() + "watermark:\n  driver: file\ntezos:\n" + testdaemon.ConsensusPolicy(g.group.Hash().String()))
	d.Serve("--no-list")
	return d
}

// attest asks coordinator c for an attestation at level (round 0) in variant v, records a 200 in
// the oracle (failing the test on a second payload for the slot) and returns the status.
func (g *historyGroup) attest(c *testdaemon.Daemon, level int32, v byte) (int, string) {
	g.t.Helper()
	msg := requesttest.Attestation(historyChainHex, level, 0, v)
	status, body := c.Sign(g.group.Hash().String(), msg)
	if status == 200 {
		slot := fmt.Sprintf("attestation %d 0", level)
		if prev, ok := g.signed[slot]; ok && prev != msg {
			g.t.Fatalf("two group signatures for one slot (%s), through %s", slot, c.Name)
		}
		g.signed[slot] = msg
	}
	return status, body
}

// lastRun is the log of d's last start (ServeMember).
func lastRun(d *testdaemon.Daemon) string {
	logs := d.Logs()
	return logs[max(0, strings.LastIndex(logs, "---- start")):]
}

// TestMemberWithoutHistory is the attack a member with a lost store allowed: 2-of-3, member 3
// down; coordinator 1 signs attestation A at level 10 through members 1 and 2; member 2's
// watermark directory is lost and it restarts empty; member 3 returns; coordinator 2 asks for a
// different attestation B at level 10. With share_of in the members' policies (each member's
// history initialised at the start with `watermark floor`), member 2 refuses for want of a
// history and member 1 on its mark, so B gets one partial and is refused: one signature per slot.
// Member 2's history comes back from a backup (`watermark import`), and it refuses B itself. It
// loses its store again and then takes its history from the others (`threshold marks`): with
// member 3 down one answer is too few and nothing is written; with both, it takes level 10 from
// member 1 and refuses B itself; the group signs the next levels. Floor, import and marks: each
// way of giving a share its history.
func TestMemberWithoutHistory(t *testing.T) {
	priv, err := tezos.GenerateKey(tezos.BLS)
	if err != nil {
		t.Fatal(err)
	}
	g := newHistoryGroup(t, priv.(*crypt.BLSPrivateKey), 2, 3, "member")
	for i := range g.members {
		g.floor(i, 0) // a new group key: nothing signed yet
	}
	g.members[0].ServeMember()
	g.members[1].ServeMember()
	coords := []*testdaemon.Daemon{g.coordinator("coordinator-1"), g.coordinator("coordinator-2")}
	if status, body := g.attest(coords[0], 10, 1); status != 200 {
		t.Fatalf("A at level 10 through members 1 and 2: %d %s", status, body)
	}
	// The operator keeps a backup of member 2's marks (watermark export).
	g.members[1].Kill()
	backup, err := g.run("-c", g.members[1].Config, "watermark", "export")
	if err != nil || !strings.Contains(backup, g.share(1)) {
		t.Fatalf("export of member 2's marks: %v\n%s", err, backup)
	}
	backupFile := filepath.Join(t.TempDir(), "member-2.json")
	if err := os.WriteFile(backupFile, []byte(backup), 0o600); err != nil {
		t.Fatal(err)
	}
	// refusesOnItsMark: member 2 (stopped) starts again, and B, with member 1 stopped so that it
	// reaches members 2 and 3 only, is refused by member 2's own mark, not for want of history.
	refusesOnItsMark := func(when string) {
		t.Helper()
		g.members[0].Kill()
		g.members[1].ServeMember()
		if status, body := g.attest(coords[1], 10, 2); status != 409 || strings.Contains(lastRun(g.members[1]), "no watermark history") {
			t.Fatalf("B at level 10 through members 2 and 3 %s: %d %s\n%s", when, status, body, g.members[1].Logs())
		}
		g.members[0].ServeMember()
	}
	// Member 2 loses its watermarks and restarts empty; member 3 comes back.
	lose := func() {
		g.members[1].Kill()
		if err := os.RemoveAll(filepath.Join(g.members[1].Dir, "data")); err != nil {
			t.Fatal(err)
		}
	}
	lose()
	g.members[1].ServeMember()
	g.members[2].ServeMember()
	status, body := g.attest(coords[1], 10, 2)
	if status == 200 {
		t.Fatal("two group signatures for one slot: B at level 10 was signed after member 2 lost its store")
	}
	if status != 409 || !g.members[1].WaitLogWithin("no watermark history", time.Minute) { // the log comes through a pipe
		t.Fatalf("B at level 10: %d %s\nmember 2:\n%s", status, body, g.members[1].Logs())
	}
	// Its history back from the backup (watermark import): member 2 refuses B on its own mark,
	// with member 1 stopped so that B reaches members 2 and 3 only.
	g.members[1].Kill()
	if out, err := g.run("-c", g.members[1].Config, "watermark", "import", backupFile); err != nil || !strings.Contains(out, "raised") {
		t.Fatalf("import of member 2's backup: %v\n%s", err, out)
	}
	if out := g.show(1); !strings.Contains(out, `"level": 10`) {
		t.Fatalf("member 2's marks after the import:\n%s", out)
	}
	refusesOnItsMark("after member 2's import")
	// Member 2 loses its store again, and this time has no backup.
	lose()

	// Member 2 takes its history from the group: not from member 1 alone (member 3 down).
	g.members[2].Kill()
	if out, err := g.takeMarks(1, coords[0]); err == nil || !strings.Contains(out, "1 of the group's members answered with marks that verify; 2 are needed") {
		t.Fatalf("marks from one member of 2-of-3: %v\n%s", err, out)
	}
	// Nothing was written: member 2's store holds no mark for its share.
	if out := g.show(1); strings.Contains(out, g.share(1)) {
		t.Fatalf("member 2's store after a refused marks:\n%s", out)
	}
	g.members[2].ServeMember()
	out, err := g.takeMarks(1, coords[0])
	if err != nil || !strings.Contains(out, "3 raised") {
		t.Fatalf("marks from members 1 and 3: %v\n%s", err, out)
	}
	if out := g.show(1); !strings.Contains(out, `"level": 10`) {
		t.Fatalf("member 2's marks after taking them:\n%s", out)
	}
	// Member 2 alone now refuses B.
	refusesOnItsMark("after member 2 took its marks")
	for i, c := range coords {
		if status, body := g.attest(c, int32(11+i), 1); status != 200 {
			t.Fatalf("level %d after member 2 took its marks: %d %s", 11+i, status, body)
		}
	}
}

// TestReshareHistory: the group key signs attestation A at level 10 through 2-of-3 members; the
// key is then reshared to four new members (3-of-4, fresh stores: new shares of the same key)
// and a coordinator over them asks for a different attestation B at level 10. The new members
// refuse for want of a history (without share_of, they would sign: two group signatures for one
// slot). The old group's coordinator stops; each new member takes the old group's highest marks
// (`threshold marks --from` the old coordinator's config) and refuses B on its own mark; the new
// group signs level 11. The oracle holds over every 200.
func TestReshareHistory(t *testing.T) {
	priv, err := tezos.GenerateKey(tezos.BLS)
	if err != nil {
		t.Fatal(err)
	}
	secret := priv.(*crypt.BLSPrivateKey)
	old := newHistoryGroup(t, secret, 2, 3, "old")
	for i, m := range old.members {
		old.floor(i, 0)
		m.ServeMember()
	}
	oldCoord := old.coordinator("old-coordinator")
	if status, body := old.attest(oldCoord, 10, 1); status != 200 {
		t.Fatalf("A at level 10 through the old group: %d %s", status, body)
	}

	fresh := newHistoryGroup(t, secret, 3, 4, "new")
	fresh.signed = old.signed // one oracle: the group key is the same
	for _, m := range fresh.members {
		m.ServeMember()
	}
	newCoord := fresh.coordinator("new-coordinator")
	// All four refuse; the coordinator answers once two have (3 of 4 can no longer sign), and
	// logs their reasons (through a pipe: waited for).
	status, body := fresh.attest(newCoord, 10, 2)
	if status != 409 || !newCoord.WaitLogWithin("no watermark history", time.Minute) {
		t.Fatalf("B at level 10 through new members without history: %d %s", status, body)
	}

	oldCoord.Kill()
	for i, m := range fresh.members {
		m.Kill()
		if out, err := fresh.takeMarks(i, oldCoord); err != nil || !strings.Contains(out, "3 raised") {
			t.Fatalf("new member %d takes the old group's marks: %v\n%s", i+1, err, out)
		}
		m.ServeMember()
	}
	if status, body := fresh.attest(newCoord, 10, 2); status != 409 || strings.Contains(lastRun(fresh.members[0]), "no watermark history") {
		t.Fatalf("B at level 10 after the new members took the old group's marks: %d %s", status, body)
	}
	if status, body := fresh.attest(newCoord, 11, 2); status != 200 {
		t.Fatalf("level 11 through the new group: %d %s", status, body)
	}
}
