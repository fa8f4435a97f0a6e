package interop

import (
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

	"github.com/ecadlabs/goblst/minpk"
	"github.com/ecadlabs/gotez/v2/crypt"

	"github.com/signatory-go/signatory/internal/blsthreshold"
	"github.com/signatory-go/signatory/internal/request/requesttest"
	"github.com/signatory-go/signatory/internal/testdaemon"
	"github.com/signatory-go/signatory/internal/tezos"
)

// TestThresholdProcesses: a tz4 key split 2-of-3 among three member daemons (each with the share
// in a file vault and its own file watermark store) and two coordinator daemons (threshold
// vault), all real `signatory serve` processes on loopback. The members require authentication
// (server.authorized_keys); the coordinators sign ?authentication= with a key of another vault
// (authentication_key).
//
//   - The two coordinators race conflicting attestations at every level: never do both answer
//     200 for one level.
//   - Every combined signature, and the group key's proof of possession combined from the
//     members' proofs over it, verify with Taquito's BLS verifier, an implementation this project
//     did not write, against the group key.
//   - kill -9 of one member: a coordinator still signs; of a second: 503 naming the members.
//   - A member restarted after kill -9 keeps its watermark: a conflicting payload at a level it
//     signed is still refused.
//   - The requests of an octez v25 baker with a tz4 consensus key (GET /authorized_keys, BLS-mode
//     preattestations and attestations with ?version=3) are signed through either coordinator.
func TestThresholdProcesses(t *testing.T) {
	nodeBin := requireNode(t)
	priv, err := tezos.GenerateKey(tezos.BLS)
	if err != nil {
		t.Fatal(err)
	}
	group := priv.Public()
	shares, err := blsthreshold.Split(priv.(*crypt.BLSPrivateKey), 2, 3, nil)
	if err != nil {
		t.Fatal(err)
	}
	// The members accept only requests authenticated by the coordinators' key (a tz1 key in
	// another vault of theirs, named by authentication_key).
	auth, err := tezos.GenerateKey(tezos.Ed25519)
	if err != nil {
		t.Fatal(err)
	}
	authFile := filepath.Join(t.TempDir(), "secret_keys.json")
	testdaemon.WriteKeyFile(t, authFile, "auth", auth)
	var members []*testdaemon.Daemon
	for _, s := range shares {
		keyFile := filepath.Join(t.TempDir(), "secret_keys.json")
		testdaemon.WriteKeyFile(t, keyFile, "share", s.Key)
		tezosSection := testdaemon.ConsensusPolicy(s.Key.Public().Hash().String()) + "    allow_proof_of_possession_for: [" + group.String() + "]\n"
		d := testdaemon.NewMember(t, fmt.Sprintf("member-%d", s.Index), keyFile, "  driver: file\n", tezosSection)
		d.WriteConfig(fmt.Sprintf("  authorized_keys: [%s]\n", auth.Public()) + testdaemon.FileVault(keyFile) +
			"watermark:\n  driver: file\ntezos:\n" + tezosSection)
		d.ServeMember()
		members = append(members, d)
	}
	if status, body := members[0].Sign(shares[0].Key.Public().Hash().String(), requesttest.Attestation("b3d79f99", 1000, 0, 1)); status != 401 {
		t.Fatalf("a member signed a request without authentication: %d %s", status, body)
	}
	var cfg strings.Builder
	fmt.Fprintf(&cfg, "vaults:\n  auth:\n    driver: file\n    config:\n      file: %s\n", authFile)
	fmt.Fprintf(&cfg, "  baker:\n    driver: threshold\n    config:\n      public_key: %s\n      threshold: 2\n      timeout: 30s\n      authentication_key: %s\n      members:\n",
		group, auth.Public().Hash())
	for i, s := range shares {
		fmt.Fprintf(&cfg, "        - {index: %d, url: http://%s, key: %s}\n", s.Index, members[i].Addr, s.Key.Public().Hash())
	}
	var coords []*testdaemon.Daemon
	for i := range 2 {
		d := testdaemon.New(t)
		d.Name = fmt.Sprintf("coordinator-%d", i)
		d.WriteConfig(cfg.String() + "watermark:\n  driver: file\ntezos:\n" + testdaemon.ConsensusPolicy(group.Hash().String()) +
			"    allow_proof_of_possession: true\n")
		d.Serve("--no-list")
		coords = append(coords, d)
	}
	pkh := group.Hash().String()
	const chain = "b3d79f99"
	var verified []signed

	// The group key's proof of possession (to reveal it), from the members' proofs over it.
	status, body := coords[0].Get("/bls_prove_possession/" + pkh)
	var pop struct {
		Proof string `json:"bls_prove_possession"`
	}
	if err := json.Unmarshal([]byte(body), &pop); status != 200 || err != nil {
		t.Fatalf("proof of possession through a coordinator: %d %s", status, body)
	}
	verified = append(verified, signed{Msg: hex.EncodeToString((*minpk.PublicKey)(group.(*crypt.BLSPublicKey)).Bytes()), Sig: pop.Proof, PoP: true})

	// Conflicting attestations through both coordinators at once.
	verified = append(verified, raceConflicting(t, coords, pkh, chain, 1, 20)...)
	if len(verified) == 0 {
		t.Fatal("nothing was signed")
	}

	// One member killed: still signing; two: 503 naming them.
	members[0].Kill()
	for level := int32(21); level <= 23; level++ {
		msg := requesttest.Attestation(chain, level, 0, 1)
		status, sig := coords[0].Sign(pkh, msg)
		if status != 200 {
			t.Fatalf("one member down, level %d: %d %s", level, status, sig)
		}
		verified = append(verified, signed{Msg: msg, Sig: sig})
	}
	members[1].Kill()
	if status, msg := coords[0].Sign(pkh, requesttest.Attestation(chain, 24, 0, 1)); status != 503 ||
		!strings.Contains(msg, "member 1") || !strings.Contains(msg, "member 2") {
		t.Fatalf("two members down: %d %s", status, msg)
	}
	// Restarted members keep their watermarks: level 23 was signed with variant 1 by members 2
	// and 3; variant 2 at level 23 gathers no second partial.
	members[0].ServeMember()
	members[1].ServeMember()
	if status, msg := coords[1].Sign(pkh, requesttest.Attestation(chain, 23, 0, 2)); status != 409 {
		t.Fatalf("conflicting level 23 after the members restarted: %d %s", status, msg)
	}
	msg := requesttest.Attestation(chain, 25, 0, 1)
	status, sig := coords[1].Sign(pkh, msg)
	if status != 200 {
		t.Fatalf("after the members restarted: %d %s", status, sig)
	}
	verified = append(verified, signed{Msg: msg, Sig: sig})

	// What an octez v25 baker with a tz4 consensus key asks a remote signer, in order: whether
	// authentication is needed, then BLS-mode (tag 40 and 41) consensus operations with the
	// protocol's signing version (?version=3 for Ushuaia, 2 before).
	if status, body := coords[0].Get("/authorized_keys"); status != 200 || strings.TrimSpace(body) != "{}" {
		t.Fatalf("GET /authorized_keys: %d %s", status, body)
	}
	for i, m := range []string{
		requesttest.ConsensusTag(requesttest.TagBLSPreattestation, chain, 30, 0, 1),
		requesttest.ConsensusTag(requesttest.TagBLSAttestation, chain, 30, 0, 1),
		requesttest.ConsensusTag(requesttest.TagBLSAttestation, chain, 31, 0, 1),
	} {
		version := []string{"3", "3", "2"}[i]
		status, sig := coords[i%2].Sign(pkh+"?version="+version, m)
		if status != 200 {
			t.Fatalf("%s with version %s: %d %s", m[:12], version, status, sig)
		}
		verified = append(verified, signed{Msg: m, Sig: sig})
	}

	verifyWithTaquito(t, nodeBin, group.String(), verified)
}

// signed is a message and its signature (or proof of possession, PoP) for verifyWithTaquito.
type signed struct {
	Msg, Sig string
	PoP      bool
}

// raceConflicting asks both coordinators at once for conflicting attestations (variants 1 and 2)
// at each level of from … to, fails the test when both are signed at a level or an answer is
// neither 200 nor 409, and returns what was signed.
func raceConflicting(t *testing.T, coords []*testdaemon.Daemon, pkh, chain string, from, to int32) []signed {
	t.Helper()
	var out []signed
	for level := from; level <= to; level++ {
		var wg sync.WaitGroup
		var status [2]int
		var body [2]string
		for i, c := range coords[:2] {
			wg.Go(func() { status[i], body[i] = c.Sign(pkh, requesttest.Attestation(chain, level, 0, byte(i+1))) })
		}
		wg.Wait()
		if status[0] == 200 && status[1] == 200 {
			t.Fatalf("level %d: both coordinators signed conflicting attestations", level)
		}
		for i := range 2 {
			switch status[i] {
			case 200:
				out = append(out, signed{Msg: requesttest.Attestation(chain, level, 0, byte(i+1)), Sig: body[i]})
			case 409:
			default:
				t.Fatalf("level %d, coordinator %d: %d %s", level, i+1, status[i], body[i])
			}
		}
	}
	return out
}

// verifyWithTaquito has Taquito's verifier, an implementation this project did not write, check
// every item against pk.
func verifyWithTaquito(t *testing.T, nodeBin, pk string, items []signed) {
	t.Helper()
	js, err := json.Marshal(map[string]any{"pk": pk, "items": items})
	if err != nil {
		t.Fatal(err)
	}
	input := filepath.Join(t.TempDir(), "signed.json")
	if err := os.WriteFile(input, js, 0o600); err != nil {
		t.Fatal(err)
	}
	script := `import { verifySignature } from '@taquito/utils';
import { readFileSync } from 'node:fs';
const { pk, items } = JSON.parse(readFileSync(process.argv[1], 'utf8'));
let bad = 0;
for (const { Msg, Sig, PoP } of items) if (!verifySignature(Msg, pk, Sig, undefined, PoP)) { bad++; console.log('does not verify:', Msg, Sig, PoP); }
console.log(items.length - bad, 'of', items.length, 'verified');
process.exit(bad ? 1 : 0);`
	ctx, cancel := context.WithTimeout(context.Background(), nodeTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, nodeBin, "--input-type=module", "-e", script, input)
	out, err := testdaemon.RunTool(cmd)
	if err != nil {
		t.Fatalf("Taquito: %v\n%s", err, out)
	}
	t.Logf("Taquito: %s", strings.TrimSpace(string(out)))
}
