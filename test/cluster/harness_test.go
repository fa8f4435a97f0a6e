// Package cluster runs three real signatory processes that share one watermark store (PostgreSQL,
// then etcd) under a conflicting load, while an instance is killed and while the store restarts,
// and checks that no (key, class, level, round) is ever signed with two different payloads.
package cluster

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ecadlabs/gotez/v2/crypt"

	"github.com/signatory-go/signatory/internal/tezos"
)

var signatoryBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "signatory-bin")
	if err != nil {
		panic(err)
	}
	signatoryBin = filepath.Join(dir, "signatory")
	cmd := exec.Command("go", "build", "-o", signatoryBin, "github.com/signatory-go/signatory/cmd/signatory")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building signatory:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func freePort(t testing.TB) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

type testKey struct {
	priv crypt.PrivateKey
	pkh  string
}

// newKeys writes a secret_keys.json with n fresh ed25519 keys and returns them and the file path.
func newKeys(t testing.TB, n int) ([]testKey, string) {
	var ks []testKey
	var entries []map[string]string
	for i := range n {
		priv, err := tezos.GenerateKey(tezos.Ed25519)
		if err != nil {
			t.Fatal(err)
		}
		ks = append(ks, testKey{priv: priv, pkh: priv.Public().Hash().String()})
		entries = append(entries, map[string]string{"name": fmt.Sprintf("k%d", i), "value": "unencrypted:" + string(priv.ToBase58())})
	}
	js, _ := json.Marshal(entries)
	path := filepath.Join(t.TempDir(), "secret_keys.json")
	if err := os.WriteFile(path, js, 0o600); err != nil {
		t.Fatal(err)
	}
	return ks, path
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

// instance is one `signatory serve` process; restarts keep its config, ports and data.
type instance struct {
	t       testing.TB
	name    string
	config  string
	addr    string
	utility string
	logs    *syncBuffer

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan error
}

// newInstance writes the config of one cluster member: the shared key file, its own base_dir and
// ports, and the shared watermark section (already indented under `watermark:`).
func newInstance(t testing.TB, name, keyFile string, ks []testKey, watermark string) *instance {
	dir := t.TempDir()
	in := &instance{t: t, name: name, config: filepath.Join(dir, "signatory.yaml"), addr: freePort(t), utility: freePort(t), logs: &syncBuffer{}}
	var tz strings.Builder
	for _, k := range ks {
		fmt.Fprintf(&tz, "  %s:\n", k.pkh)
	}
	cfg := fmt.Sprintf(`base_dir: %s
server:
  address: %s
  utility_address: %s
vaults:
  local:
    driver: file
    config:
      file: %s
watermark:
%stezos:
%s`, filepath.Join(dir, "data"), in.addr, in.utility, keyFile, watermark, tz.String())
	if err := os.WriteFile(in.config, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(in.kill)
	return in
}

// start runs the process and waits (up to 30 s) until /healthz answers 200.
func (in *instance) start() {
	in.t.Helper()
	in.mu.Lock()
	defer in.mu.Unlock()
	fmt.Fprintf(in.logs, "---- start %s\n", time.Now().Format(time.RFC3339Nano))
	in.cmd = exec.Command(signatoryBin, "serve", "--no-list", "-c", in.config)
	in.cmd.Stdout, in.cmd.Stderr = in.logs, in.logs
	in.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} // never outlive the test
	if err := in.cmd.Start(); err != nil {
		in.t.Fatal(err)
	}
	done := make(chan error, 1)
	in.done = done
	go func(c *exec.Cmd) { done <- c.Wait() }(in.cmd)
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-done:
			in.t.Fatalf("%s exited at start: %v\n%s", in.name, err, in.logs)
		default:
		}
		if resp, err := http.Get("http://" + in.utility + "/healthz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	in.t.Fatalf("%s not healthy within 30 s:\n%s", in.name, in.logs)
}

// kill sends SIGKILL and waits for the exit; a no-op when the process is not running.
func (in *instance) kill() {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.cmd == nil {
		return
	}
	_ = in.cmd.Process.Signal(syscall.SIGKILL)
	<-in.done
	in.cmd = nil
}

// health returns the /healthz status code, or 0 when the request fails.
func (in *instance) health() int {
	resp, err := http.Get("http://" + in.utility + "/healthz")
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}
