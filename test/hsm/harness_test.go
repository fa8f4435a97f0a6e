// Package hsm runs the real signatory binary with a pkcs11 vault on a SoftHSM2 token: signing
// over HTTP on every curve, watermarks, concurrent load, the CLI's generate and import, and a
// token that disappears and comes back while the daemon runs.
package hsm

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
	"github.com/signatory-go/signatory/internal/vault/pkcs11/softhsmtest"
)

var (
	signatoryBin string
	tools        *softhsmtest.Tools
	toolsErr     error
)

func TestMain(m *testing.M) {
	tools, toolsErr = softhsmtest.Find()
	dir, err := os.MkdirTemp("", "signatory-bin")
	if err != nil {
		panic(err)
	}
	signatoryBin = filepath.Join(dir, "signatory")
	if toolsErr == nil || os.Getenv(softhsmtest.RequireEnv) == "1" {
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
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

const pin = "1234"

// hsm is a SoftHSM2 token "signer" in a fresh store, and a daemon config using it.
type hsm struct {
	t       *testing.T
	store   *softhsmtest.Store
	dir     string
	config  string
	addr    string
	utility string
	env     []string
	cmd     *exec.Cmd
	logs    *syncBuffer
	done    chan error
}

// newHSM makes the token with keys k1 (P-256), k2 (secp256k1) and k3 (Ed25519).
func newHSM(t *testing.T) *hsm {
	if toolsErr != nil {
		softhsmtest.Missing(t, toolsErr)
	}
	dir := t.TempDir()
	store, err := softhsmtest.NewStore(tools, filepath.Join(dir, "softhsm"))
	if err != nil {
		t.Fatal(err)
	}
	if err := store.InitToken("signer", pin, "5678"); err != nil {
		t.Fatal(err)
	}
	for _, k := range [][3]string{{"EC:prime256v1", "01", "k1"}, {"EC:secp256k1", "02", "k2"}, {"EC:edwards25519", "03", "k3"}} {
		if err := store.KeyPair("signer", pin, k[0], k[1], k[2]); err != nil {
			t.Fatal(err)
		}
	}
	h := &hsm{t: t, store: store, dir: dir, config: filepath.Join(dir, "signatory.yaml"),
		env: append(os.Environ(), store.Env(), "TEST_HSM_PIN="+pin)}
	h.writeConfig(nil)
	return h
}

// writeConfig writes the config with a policy allowing transactions and consensus for pkhs.
func (h *hsm) writeConfig(pkhs []string) {
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
  hsm:
    driver: pkcs11
    config:
      library_path: %s
      token_label: signer
      pin_env: TEST_HSM_PIN
      sessions: 4
watermark:
  driver: file
tezos:
%s`, filepath.Join(h.dir, "data"), h.addr, h.utility, tools.Module, tz.String())
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

// cli runs a signatory command with the token's environment and decodes its JSON output.
func (h *hsm) cli(stdin string, args ...string) []keyJSON {
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

// pkhs lists the token's keys with the CLI, by reference (label).
func (h *hsm) pkhs() map[string]string {
	out := map[string]string{}
	for _, k := range h.cli("", "list") {
		out[k.Reference] = k.PKH
	}
	return out
}

func (h *hsm) start() {
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
func (h *hsm) checkAlive() {
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
func (h *hsm) sign(pkh, payload string) (int, string) {
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
func (h *hsm) verify(pkh, payload, sig string) error {
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
func (h *hsm) health() (int, string) {
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
