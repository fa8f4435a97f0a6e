// Package interop proves that the real signatory binary works with a real Tezos client: it
// starts two daemons on loopback ports and runs the Taquito suite (*.test.mjs, node --test)
// against them. Taquito comes from npm, pinned in package-lock.json; without node_modules (or
// Node 20) the test is testdaemon.Unavailable: skipped, or failed where the test servers and
// tools are required (CI).
package interop

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ecadlabs/gotez/v2/crypt"

	"github.com/signatory-go/signatory/internal/testdaemon"
	tv "github.com/signatory-go/signatory/internal/testvectors"
	"github.com/signatory-go/signatory/internal/tezos"
)

const (
	// Sandbox bootstrap1: a fixed, public test key, so that the known-answer signature in
	// remote_signer.test.mjs is reproducible.
	fixedTz1SK  = "edsk3gUfUPyBSfrS9CCgmCiQsTCHGkviBDusMxDJstFtojtc1zcpsh"
	fixedTz1PKH = "tz1KqTpEZ7Yob7QbPE4Hy4Wo8fHG8LhKxZSx"

	buildTimeout   = 5 * time.Minute
	startTimeout   = 30 * time.Second
	nodeTimeout    = 5 * time.Minute
	perTestTimeout = 2 * time.Minute
)

// key is one entry of SIGNATORY_INTEROP_KEYS. SK is set only where the JS side needs it (known
// answers and client authentication keys); all keys are throwaway test keys.
type key struct {
	PKH string `json:"pkh"`
	PK  string `json:"pk,omitempty"`
	SK  string `json:"sk,omitempty"`
}

func newKey(t *testing.T, c tezos.Curve) *key {
	t.Helper()
	priv, err := tezos.GenerateKey(c)
	if err != nil {
		t.Fatal(err)
	}
	return keyOf(priv)
}

func keyOf(priv crypt.PrivateKey) *key {
	return &key{
		PKH: priv.Public().Hash().String(),
		PK:  priv.Public().String(),
		SK:  string(priv.ToBase58()),
	}
}

// withoutSK returns a copy that the JS side gets without its secret key.
func (k *key) withoutSK() *key { c := *k; c.SK = ""; return &c }

func TestMain(m *testing.M) { testdaemon.Main(m) }

// requireNode is testdaemon.RequireNode for this suite's npm packages.
func requireNode(t *testing.T) string { return testdaemon.RequireNode(t, "test/interop") }

func TestTaquitoInterop(t *testing.T) {
	nodeBin := requireNode(t)

	buildCtx, cancelBuild := context.WithTimeout(context.Background(), buildTimeout)
	testdaemon.BinaryContext(buildCtx, t)
	cancelBuild()

	// Keys of the main daemon.
	fixed, err := tezos.ParseSecretKey(fixedTz1SK, nil)
	if err != nil {
		t.Fatal(err)
	}
	tz1 := keyOf(fixed)
	if tz1.PKH != fixedTz1PKH {
		t.Fatalf("fixed key hash %s, want %s", tz1.PKH, fixedTz1PKH)
	}
	tz2 := newKey(t, tezos.Secp256k1)
	tz3 := newKey(t, tezos.P256)
	tz4 := newKey(t, tezos.BLS)
	tz5SK, tz5PK := tv.OctezTz5() // octez's fixed tz5 key: socket.test.mjs checks its nonce
	tz5 := &key{PKH: tv.OctezTz5PKH, PK: tz5PK, SK: tz5SK}
	unlisted := newKey(t, tezos.Ed25519)   // in the vault, not under tezos:
	restricted := newKey(t, tezos.Ed25519) // allow: generic: [transaction] only
	unknown := newKey(t, tezos.Ed25519)    // in no vault at all
	// Keys of the authenticating daemon.
	authTz1 := newKey(t, tezos.Ed25519)
	authTz4 := newKey(t, tezos.BLS)
	// Authorized client keys, one per curve, in this config order.
	clients := []*key{newKey(t, tezos.Ed25519), newKey(t, tezos.P256), newKey(t, tezos.Secp256k1), newKey(t, tezos.BLS)}
	intruder := newKey(t, tezos.Ed25519) // not authorized

	consensusAllow := `    allow_deterministic_nonce: true
    allow:
      block:
      preattestation:
      attestation:
      attestation_with_dal:
      generic: [transaction, reveal, delegation, origination]
`
	mainTezos := fmt.Sprintf(`  %s:
%s  %s:
%s  %s:
%s  %s:
    allow_proof_of_possession: true
    allow_deterministic_nonce: true
    allow:
      block:
      preattestation:
      attestation:
      generic: [reveal]
  %s:
    allow:
      generic: [transaction]
  %s:
    allow_deterministic_nonce: true
    allow:
      generic: [transaction]
`, tz1.PKH, consensusAllow, tz2.PKH, consensusAllow, tz3.PKH, consensusAllow, tz4.PKH, restricted.PKH, tz5.PKH)
	// Both daemons also serve octez-signer's socket protocol (socket.test.mjs).
	sockets := testdaemon.FreeAddrs(t, 2)
	mainSocket, authSocket := sockets[0], sockets[1]
	mainUnix := filepath.Join(t.TempDir(), "main.sock")
	mainD := startDaemon(t, "main", []*key{tz1, tz2, tz3, tz4, unlisted, restricted, tz5},
		"  allow_list_known_keys: true\n  socket_address: "+mainSocket+"\n  unix_socket: "+mainUnix+"\n", mainTezos)

	authServer := "  socket_address: " + authSocket + "\n  authorized_keys:\n"
	for _, c := range clients {
		authServer += "    - " + c.PK + "\n"
	}
	authTezos := fmt.Sprintf(`  %s:
    allow:
      attestation:
      generic: [transaction]
  %s:
    allow_proof_of_possession: true
    allow:
      attestation:
`, authTz1.PKH, authTz4.PKH)
	auth := startDaemon(t, "auth", []*key{authTz1, authTz4}, authServer, authTezos)

	keys := map[string]*key{
		"tz1":        tz1,
		"tz2":        tz2, // the secret keys of tz1 to tz4: socket.test.mjs computes their
		"tz3":        tz3, // deterministic nonces itself
		"tz4":        tz4, // BLS signing is deterministic: compared with Taquito's InMemorySigner
		"tz5":        tz5,
		"unlisted":   unlisted.withoutSK(),
		"restricted": restricted.withoutSK(),
		"unknown":    unknown.withoutSK(),
		"auth_tz1":   authTz1.withoutSK(),
		"auth_tz4":   authTz4.withoutSK(),
		"client":     clients[0],
		"client2":    clients[1],
		"client3":    clients[2],
		"client4":    clients[3],
		"intruder":   intruder,
	}
	keysJSON, err := json.Marshal(keys)
	if err != nil {
		t.Fatal(err)
	}

	files, err := filepath.Glob("*.test.mjs")
	if err != nil || len(files) == 0 {
		t.Fatalf("no *.test.mjs files found (%v)", err)
	}
	sort.Strings(files)

	ctx, cancel := context.WithTimeout(context.Background(), nodeTimeout)
	defer cancel()
	args := append([]string{
		"--test",
		"--test-reporter=spec",
		"--test-timeout=" + strconv.Itoa(int(perTestTimeout.Milliseconds())),
	}, files...)
	cmd := exec.CommandContext(ctx, nodeBin, args...)
	cmd.Env = append(os.Environ(),
		"SIGNATORY_ENCRYPTED_KEYS="+encryptedKeys(t),
		"SIGNATORY_URL=http://"+mainD.Addr,
		"SIGNATORY_AUTH_URL=http://"+auth.Addr,
		"SIGNATORY_INTEROP_KEYS="+string(keysJSON),
		"SIGNATORY_SOCKET="+mainSocket,
		"SIGNATORY_UNIX_SOCKET="+mainUnix,
		"SIGNATORY_AUTH_SOCKET="+authSocket,
		"NO_COLOR=1",
	)
	cmd.WaitDelay = 10 * time.Second
	runStreaming(t, cmd)
	if ctx.Err() != nil {
		t.Errorf("node --test did not finish within %v", nodeTimeout)
	}
}

// startDaemon writes a key file and a config into a fresh directory and starts `signatory serve`
// on free loopback ports, retrying with new ports if one was taken in the meantime.
func startDaemon(t *testing.T, name string, keys []*key, serverExtra, tezosSection string) *testdaemon.Daemon {
	t.Helper()
	type entry struct {
		Name  string `json:"name"`
		Value string `json:"value"`
	}
	var entries []entry
	for i, k := range keys {
		entries = append(entries, entry{Name: fmt.Sprintf("%s-%d", name, i), Value: "unencrypted:" + k.SK})
	}
	js, err := json.MarshalIndent(entries, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(t.TempDir(), "secret_keys.json")
	if err := os.WriteFile(keyFile, js, 0o600); err != nil {
		t.Fatal(err)
	}
	for attempt := 0; ; attempt++ {
		d := testdaemon.New(t)
		d.Name = name + " daemon"
		d.StartTimeout = startTimeout
		d.Ready = func(status int, body []byte) bool {
			var h struct {
				Ready bool `json:"ready"`
			}
			return status == http.StatusOK && json.Unmarshal(body, &h) == nil && h.Ready
		}
		d.FailureLogLines = logTail
		d.WriteConfig(serverExtra + testdaemon.FileVault(keyFile) + "watermark:\n  driver: file\ntezos:\n" + tezosSection)
		d.Launch("serve", "-c", d.Config)
		err := d.WaitReady()
		if err == nil {
			return d
		}
		d.Kill()
		if errors.Is(err, testdaemon.ErrExited) && strings.Contains(d.Logs(), "address already in use") && attempt < 3 {
			t.Logf("%s: %v; retrying on other ports", d.Name, err)
			continue
		}
		cfg, _ := os.ReadFile(d.Config)
		t.Fatalf("%s: %v\nconfig:\n%s\nlog:\n%s", d.Name, err, cfg, d.Logs())
	}
}

const logTail = 200

// runStreaming runs cmd (a testdaemon.Process: killed with its group when its context ends or
// the test process dies) with its stdout and stderr streamed line by line to t.Log, and fails the
// test if it exits non-zero.
func runStreaming(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	pr, pw := io.Pipe()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64*1024), 1024*1024)
		for sc.Scan() {
			t.Log(sc.Text())
		}
		_, _ = io.Copy(io.Discard, pr)
	}()
	p, err := testdaemon.StartProcess(cmd, pw)
	if err == nil {
		err = p.Err()
	}
	pw.Close()
	wg.Wait()
	if err != nil {
		t.Errorf("node --test failed: %v", err)
	}
}

// encryptedKeys encrypts fresh tz1, tz2 and tz3 keys the way `signatory generate` writes them into
// an encrypted file vault, for encrypted_keys.test.mjs to decrypt with Taquito's InMemorySigner.
func encryptedKeys(t *testing.T) string {
	t.Helper()
	type encKey struct {
		Encrypted string `json:"encrypted"`
		Password  string `json:"password"`
		PKH       string `json:"pkh"`
	}
	var out []encKey
	for _, c := range []tezos.Curve{tezos.Ed25519, tezos.Secp256k1, tezos.P256} {
		priv, err := tezos.GenerateKey(c)
		if err != nil {
			t.Fatal(err)
		}
		pw := "interop password " + string(c)
		enc, err := tezos.EncryptSecretKey(priv, []byte(pw))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, encKey{Encrypted: enc, Password: pw, PKH: priv.Public().Hash().String()})
	}
	b, _ := json.Marshal(out)
	return string(b)
}
