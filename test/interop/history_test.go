package interop

import (
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	tz "github.com/ecadlabs/gotez/v2"
	"github.com/ecadlabs/gotez/v2/crypt"

	"github.com/signatory-go/signatory/internal/testdaemon"
	"github.com/signatory-go/signatory/internal/tezos"
	"github.com/signatory-go/signatory/internal/threshold"
)

// TestMemberWithoutHistory is the attack a member with a lost store allowed: 2-of-3, member 3
// down; coordinator 1 signs attestation A at level 10 through members 1 and 2; member 2's
// watermark directory is lost and it restarts empty; member 3 returns; coordinator 2 asks for a
// different attestation B at level 10. With share_of in the members' policies (each member's
// history initialised at the start with `watermark floor`), member 2 refuses for want of a
// history and member 1 on its mark, so B gets one partial and is refused: one signature per slot.
// Once the operator gives member 2 its history back (a floor at the group's level), the group
// signs the next level.
func TestMemberWithoutHistory(t *testing.T) {
	priv, err := tezos.GenerateKey(tezos.BLS)
	if err != nil {
		t.Fatal(err)
	}
	group := priv.Public()
	shares, err := threshold.Split(priv.(*crypt.BLSPrivateKey), 2, 3, nil)
	if err != nil {
		t.Fatal(err)
	}
	const chainHex = "b3d79f99"
	var id tz.ChainID
	b, _ := hex.DecodeString(chainHex)
	copy(id[:], b)
	chain := id.String()
	bin := testdaemon.Binary(t)
	floor := func(d *testdaemon.Daemon, share string, level int) {
		t.Helper()
		out, err := exec.Command(bin, "-c", d.Config, "watermark", "floor", "--key", share, "--chain", chain, "--level", fmt.Sprint(level)).CombinedOutput()
		if err != nil {
			t.Fatalf("floor: %v\n%s", err, out)
		}
	}
	var members []*testdaemon.Daemon
	for _, s := range shares {
		keyFile := filepath.Join(t.TempDir(), "secret_keys.json")
		testdaemon.WriteKeyFile(t, keyFile, "share", s.Key)
		share := s.Key.Public().Hash().String()
		policy := testdaemon.ConsensusPolicy(share) + "    share_of: " + group.String() + "\n"
		d := testdaemon.NewMember(t, fmt.Sprintf("member-%d", s.Index), keyFile, "  driver: file\n", policy)
		floor(d, share, 0) // a new group key: nothing signed yet
		members = append(members, d)
	}
	members[0].ServeMember()
	members[1].ServeMember()
	var cfg strings.Builder
	fmt.Fprintf(&cfg, "vaults:\n  baker:\n    driver: threshold\n    config:\n      public_key: %s\n      threshold: 2\n      timeout: 30s\n      members:\n", group)
	for i, s := range shares {
		fmt.Fprintf(&cfg, "        - {index: %d, url: http://%s, key: %s}\n", s.Index, members[i].Addr, s.Key.Public().Hash())
	}
	var coords []*testdaemon.Daemon
	for i := range 2 {
		d := testdaemon.New(t)
		d.Name = fmt.Sprintf("coordinator-%d", i+1)
		d.WriteConfig(cfg.String() + "watermark:\n  driver: file\ntezos:\n" + testdaemon.ConsensusPolicy(group.Hash().String()))
		d.Serve("--no-list")
		coords = append(coords, d)
	}
	pkh := group.Hash().String()
	if status, body := coords[0].Sign(pkh, testdaemon.Attestation(chainHex, 10, 0, 1)); status != 200 {
		t.Fatalf("A at level 10 through members 1 and 2: %d %s", status, body)
	}
	// Member 2 loses its watermarks and restarts empty; member 3 comes back.
	members[1].Kill()
	if err := os.RemoveAll(filepath.Join(members[1].Dir, "data")); err != nil {
		t.Fatal(err)
	}
	members[1].ServeMember()
	members[2].ServeMember()
	status, body := coords[1].Sign(pkh, testdaemon.Attestation(chainHex, 10, 0, 2))
	if status == 200 {
		t.Fatal("two group signatures for one slot: B at level 10 was signed after member 2 lost its store")
	}
	if status != 409 || !strings.Contains(members[1].Logs(), "no watermark history") {
		t.Fatalf("B at level 10: %d %s\nmember 2:\n%s", status, body, members[1].Logs())
	}
	// The operator gives member 2 its history back: a floor at the level the group has signed.
	members[1].Kill()
	floor(members[1], shares[1].Key.Public().Hash().String(), 10)
	members[1].ServeMember()
	for i, c := range coords {
		if status, body := c.Sign(pkh, testdaemon.Attestation(chainHex, int32(11+i), 0, 1)); status != 200 {
			t.Fatalf("level %d after member 2's floor: %d %s", 11+i, status, body)
		}
	}
}
