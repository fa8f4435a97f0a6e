// Package yubihsm runs the real signatory binary with a yubihsm vault against the in-process
// YubiHSM 2 emulator (yubihsmfake) on a loopback port: signing over HTTP on every curve,
// watermarks, a connector that stops and comes back, sessions the device forgets, and the CLI's
// generate and import.
package yubihsm

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/signatory-go/signatory/internal/tezos"
	"github.com/signatory-go/signatory/internal/vault/yubihsm/yubihsmfake"
)

var signatoryBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "signatory-bin")
	if err != nil {
		panic(err)
	}
	signatoryBin = filepath.Join(dir, "signatory")
	args := []string{"build", "-o", signatoryBin}
	if raceEnabled {
		args = append(args, "-race")
	}
	cmd := exec.Command("go", append(args, "github.com/signatory-go/signatory/cmd/signatory")...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building signatory:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

const password = "test yubihsm password"

// harness is an emulated YubiHSM 2 behind an emulated yubihsm-connector, and a daemon config
// with a yubihsm vault "yubi" on it.
type harness struct {
	t       *testing.T
	dev     *yubihsmfake.Device
	conn    *yubihsmfake.Connector
	dir     string
	config  string
	addr    string
	utility string
	env     []string
	cmd     *exec.Cmd
	logs    *syncBuffer
	done    chan error
}

// newHarness makes the device with authentication key 1 and keys 0101 (P-256), 0102
// (secp256k1) and 0103 (Ed25519).
func newHarness(t *testing.T) *harness {
	dev := yubihsmfake.New()
	dev.PutAuthKey(1, password, 0, 0)
	for i, c := range []tezos.Curve{tezos.P256, tezos.Secp256k1, tezos.Ed25519} {
		priv, err := tezos.GenerateKey(c)
		if err != nil {
			t.Fatal(err)
		}
		if err := dev.PutKey(uint16(0x0101+i), fmt.Sprintf("k%d", i+1), 1, 0, priv); err != nil {
			t.Fatal(err)
		}
	}
	conn, err := yubihsmfake.Start(dev, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(conn.Stop)
	dir := t.TempDir()
	h := &harness{t: t, dev: dev, conn: conn, dir: dir, config: filepath.Join(dir, "signatory.yaml"),
		env: append(os.Environ(), "TEST_YUBIHSM_PASSWORD="+password)}
	h.writeConfig(nil)
	return h
}

// writeConfig writes the config with a policy allowing transactions and consensus for pkhs.
func (h *harness) writeConfig(pkhs []string) {
	h.addr, h.utility = freePort(h.t), freePort(h.t)
	var tz strings.Builder
	for _, p := range pkhs {
		fmt.Fprintf(&tz, "  %s:\n    allow:\n      generic: [transaction]\n      block:\n      preattestation:\n      attestation:\n", p)
	}
	cfg := fmt.Sprintf(`base_dir: %s
server:
  address: %s
  utility_address: %s
vaults:
  yubi:
    driver: yubihsm
    config:
      address: %s
      password_env: TEST_YUBIHSM_PASSWORD
      auth_key_id: 1
      sessions: 2
watermark:
  driver: file
tezos:
%s`, filepath.Join(h.dir, "data"), h.addr, h.utility, h.conn.Addr(), tz.String())
	if err := os.WriteFile(h.config, []byte(cfg), 0o600); err != nil {
		h.t.Fatal(err)
	}
}

type keyJSON struct {
	PKH       string `json:"pkh"`
	PublicKey string `json:"public_key"`
	Curve     string `json:"curve"`
	Reference string `json:"reference"`
}

// cli runs a signatory command and decodes its JSON output.
func (h *harness) cli(stdin string, args ...string) []keyJSON {
	h.t.Helper()
	cmd := exec.Command(signatoryBin, append(args, "-c", h.config, "--json")...)
	cmd.Env = h.env
	cmd.Stdin = strings.NewReader(stdin)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		h.t.Fatalf("signatory %s: %v\n%s%s", strings.Join(args, " "), err, out, stderr.String())
	}
	var keys []keyJSON
	if err := json.Unmarshal(out, &keys); err != nil {
		h.t.Fatalf("signatory %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return keys
}

// pkhs lists the device's keys with the CLI, by reference (object ID).
func (h *harness) pkhs() map[string]string {
	out := map[string]string{}
	for _, k := range h.cli("", "list") {
		out[k.Reference] = k.PKH
	}
	return out
}

func (h *harness) start() {
	h.t.Helper()
	h.logs = &syncBuffer{}
	h.cmd = exec.Command(signatoryBin, "serve", "-c", h.config)
	h.cmd.Env = h.env
	h.cmd.Stdout, h.cmd.Stderr = h.logs, h.logs
	if err := h.cmd.Start(); err != nil {
		h.t.Fatal(err)
	}
	h.done = make(chan error, 1)
	go func() { h.done <- h.cmd.Wait() }()
	h.t.Cleanup(func() {
		select {
		case <-h.done:
		default:
			_ = h.cmd.Process.Kill()
			<-h.done
		}
		if strings.Contains(h.logs.String(), "WARNING: DATA RACE") {
			h.t.Errorf("the daemon reported a data race:\n%s", h.logs)
		}
	})
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		h.checkAlive()
		if resp, err := http.Get("http://" + h.utility + "/healthz"); err == nil {
			resp.Body.Close()
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	h.t.Fatalf("daemon not up in time:\n%s", h.logs)
}

// checkAlive fails the test if the daemon has exited.
func (h *harness) checkAlive() {
	h.t.Helper()
	select {
	case err := <-h.done:
		h.done <- err
		h.t.Fatalf("daemon exited: %v\n%s", err, h.logs)
	default:
	}
}

var client = &http.Client{Timeout: 30 * time.Second}

// sign posts hex to /keys/pkh and returns the status and the signature or error message.
func (h *harness) sign(pkh, payload string) (int, string) {
	resp, err := client.Post("http://"+h.addr+"/keys/"+pkh, "application/json", strings.NewReader(`"`+payload+`"`))
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode == 200 {
		var r struct{ Signature string }
		_ = json.Unmarshal(b, &r)
		return 200, r.Signature
	}
	var e []struct{ Msg string }
	if json.Unmarshal(b, &e) == nil && len(e) == 1 {
		return resp.StatusCode, e[0].Msg
	}
	return resp.StatusCode, string(b)
}

// verify checks sig over payload with the public key served by GET /keys/pkh.
func (h *harness) verify(pkh, payload, sig string) error {
	resp, err := client.Get("http://" + h.addr + "/keys/" + pkh)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var r struct {
		PublicKey string `json:"public_key"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		return err
	}
	pub, err := tezos.ParsePublicKey(r.PublicKey)
	if err != nil {
		return err
	}
	if pub.Hash().String() != pkh {
		return fmt.Errorf("GET /keys/%s served the key of %s", pkh, pub.Hash())
	}
	s, err := tezos.ParseSignature(sig)
	if err != nil {
		return fmt.Errorf("signature %q: %v", sig, err)
	}
	msg, _ := hex.DecodeString(payload)
	if !tezos.IsLowS(s) || !tezos.Verify(pub, s, msg, 2) {
		return fmt.Errorf("signature %s over %s… does not verify (or is high-S)", sig, payload[:8])
	}
	return nil
}

// health returns the /healthz status and body.
func (h *harness) health() (int, string) {
	resp, err := client.Get("http://" + h.utility + "/healthz")
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

const chain = "ed9d217c" // NetXxkAx4woPLyu

// attestation builds a tag-21 attestation: 0x13 ‖ chain ‖ branch ‖ 21 ‖ slot ‖ level ‖ round ‖
// payload hash; variant changes the branch.
func attestation(level, round int32, variant byte) string {
	b, _ := hex.DecodeString("13" + chain)
	branch := make([]byte, 32)
	branch[0] = variant
	b = append(b, branch...)
	b = append(b, 21, 0, 7)
	b = binary.BigEndian.AppendUint32(b, uint32(level))
	b = binary.BigEndian.AppendUint32(b, uint32(round))
	return hex.EncodeToString(append(b, make([]byte, 32)...))
}

func freePort(t testing.TB) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
