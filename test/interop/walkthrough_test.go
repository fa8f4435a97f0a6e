package interop

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/ecadlabs/goblst/minpk"
	"github.com/ecadlabs/gotez/v2/crypt"

	"github.com/signatory-go/signatory/internal/request/requesttest"
	"github.com/signatory-go/signatory/internal/testdaemon"
	"github.com/signatory-go/signatory/internal/tezos"
)

// TestThresholdWalkthrough runs docs/threshold.md's walkthrough, examples/threshold/walkthrough.sh,
// as an operator would (bash, curl and the signatory binary): split, three members and a
// coordinator, signatures, a refused conflict, one member lost (still signing), two lost (503).
// The script checks the HTTP statuses itself; this test also has Taquito verify what it printed
// (the group key's proof of possession and the two attestations) against the group key.
func TestThresholdWalkthrough(t *testing.T) {
	verifyWalkthrough(t, "walkthrough.sh", 14, "walkthrough OK", map[int32]string{1: "level 1", 2: "level 2, member 1 down"})
}

// TestDKGWalkthrough runs docs/threshold.md's key-generation walkthrough,
// examples/threshold/dkg-walkthrough.sh, as an operator would (bash, curl and the signatory
// binary): three members generate a key with no dealer, a coordinator signs with it, the key is
// reshared to four members and then one member is replaced, and the script checks that the group
// key and its proof of possession never change and that each generation signs. This test also
// has Taquito verify the proof and the three attestations against the group key.
func TestDKGWalkthrough(t *testing.T) {
	verifyWalkthrough(t, "dkg-walkthrough.sh", 26, "dkg walkthrough OK",
		map[int32]string{1: "level 1", 2: "level 2, four members", 3: "level 3, member 2 replaced"})
}

// verifyWalkthrough runs examples/threshold/<script> from the repository's root with the binary,
// a temp folder and ports consecutive free ports, checks that it printed done, and has Taquito
// verify what it printed against the group key: the proof of possession and, for each level,
// the BLS-mode attestation on mainnet's chain (variant 1) whose answer it printed under label.
func verifyWalkthrough(t *testing.T, script string, ports int, done string, attestations map[int32]string) {
	t.Helper()
	nodeBin := requireNode(t)
	if _, err := exec.LookPath("curl"); err != nil {
		testdaemon.Unavailable(t, "curl is not in PATH")
	}
	bin := testdaemon.Binary(t)
	port := freePorts(t, ports)
	ctx, cancel := context.WithTimeout(context.Background(), nodeTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "examples/threshold/"+script)
	cmd.Dir = "../.." // the repository's root, where an operator runs it
	cmd.Env = append(cmd.Environ(), "SIGNATORY="+bin, "WORK="+t.TempDir(), "PORT="+strconv.Itoa(port))
	out, err := testdaemon.RunTool(cmd)
	text := string(out)
	t.Logf("walkthrough:\n%s", text)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(text, done) {
		t.Fatal("the walkthrough did not finish")
	}
	field := func(label, name string) string {
		m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(label) + `: (\{.*?\})`).FindStringSubmatch(text)
		if m == nil {
			t.Fatalf("no %q line", label)
		}
		var body map[string]string
		if err := json.Unmarshal([]byte(m[1]), &body); err != nil || body[name] == "" {
			t.Fatalf("%s: %q (%v)", label, m[1], err)
		}
		return body[name]
	}
	pk := field("public key", "public_key")
	pub, err := tezos.ParsePublicKey(pk)
	if err != nil {
		t.Fatal(err)
	}
	const mainnet = "7a06a770"
	items := []signed{{Msg: hex.EncodeToString((*minpk.PublicKey)(pub.(*crypt.BLSPublicKey)).Bytes()), Sig: field("proof of possession", "bls_prove_possession"), PoP: true}}
	for level, label := range attestations {
		items = append(items, signed{Msg: requesttest.ConsensusTag(requesttest.TagBLSAttestation, mainnet, level, 0, 1), Sig: field(label, "signature")})
	}
	verifyWithTaquito(t, nodeBin, pk, items)
}

// freePorts returns the first of n consecutive loopback ports, below the ephemeral range (so no
// other test's port 0 can take one of them meanwhile), that were all free just now.
func freePorts(t *testing.T, n int) int {
	t.Helper()
	for range 200 {
		base := 20000 + rand.IntN(12000)
		var ls []net.Listener
		for i := range n {
			l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", base+i))
			if err != nil {
				break
			}
			ls = append(ls, l)
		}
		for _, l := range ls {
			l.Close()
		}
		if len(ls) == n {
			return base
		}
	}
	t.Fatal("no free ports")
	return 0
}
