// Package daemon runs the real signatory binary as a separate process: restarts, kill -9,
// graceful shutdown and broken watermark directories.
package daemon

import (
	"bytes"
	"context"
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
	"syscall"
	"testing"
	"time"
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

// freePort returns a loopback address with a currently free port.
func freePort(t testing.TB) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

type daemon struct {
	t       testing.TB
	extra   string // more lines of the server section, indented by two spaces
	dir     string
	config  string
	addr    string
	utility string
	cmd     *exec.Cmd
	logs    *syncBuffer
	done    chan error
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

// newDaemon writes a config in a fresh directory with the given key file content and tezos section.
func newDaemon(t testing.TB, keys, tezos string) *daemon {
	return newDaemonWith(t, keys, tezos, "")
}

// newDaemonWith is newDaemon with extra lines in the server section.
func newDaemonWith(t testing.TB, keys, tezos, serverExtra string) *daemon {
	dir := t.TempDir()
	d := &daemon{t: t, dir: dir, config: filepath.Join(dir, "signatory.yaml"), extra: serverExtra}
	if err := os.WriteFile(filepath.Join(dir, "secret_keys.json"), []byte(keys), 0o600); err != nil {
		t.Fatal(err)
	}
	d.writeConfig(tezos)
	return d
}

func (d *daemon) writeConfig(tezos string) {
	d.addr, d.utility = freePort(d.t), freePort(d.t)
	cfg := fmt.Sprintf(`base_dir: %s
server:
  address: %s
  utility_address: %s
%svaults:
  local:
    driver: file
    config:
      file: %s
watermark:
  driver: file
tezos:
%s`, filepath.Join(d.dir, "data"), d.addr, d.utility, d.extra, filepath.Join(d.dir, "secret_keys.json"), tezos)
	if err := os.WriteFile(d.config, []byte(cfg), 0o600); err != nil {
		d.t.Fatal(err)
	}
}

// start runs the daemon and waits until /healthz answers (200 or 503).
func (d *daemon) start() {
	d.t.Helper()
	d.logs = &syncBuffer{}
	d.cmd = exec.Command(signatoryBin, "serve", "-c", d.config)
	d.cmd.Stdout, d.cmd.Stderr = d.logs, d.logs
	if err := d.cmd.Start(); err != nil {
		d.t.Fatal(err)
	}
	d.done = make(chan error, 1)
	go func() { d.done <- d.cmd.Wait() }()
	d.t.Cleanup(func() {
		if d.cmd.ProcessState == nil {
			_ = d.cmd.Process.Kill()
			<-d.done
		}
	})
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-d.done:
			d.t.Fatalf("daemon exited at start: %v\n%s", err, d.logs)
		default:
		}
		resp, err := http.Get("http://" + d.utility + "/healthz")
		if err == nil { // 503 counts: the daemon is up but reports a store or vault problem
			resp.Body.Close()
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	d.t.Fatalf("daemon not healthy in time:\n%s", d.logs)
}

func (d *daemon) kill() {
	_ = d.cmd.Process.Signal(syscall.SIGKILL)
	<-d.done
}

// stop sends SIGTERM and returns the exit error.
func (d *daemon) stop() error {
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-d.done:
		return err
	case <-time.After(20 * time.Second):
		d.t.Fatal("daemon did not stop within 20 s of SIGTERM")
		return nil
	}
}

var client = &http.Client{Timeout: 30 * time.Second}

// sign posts hex to /keys/pkh and returns the status and the signature or error message.
func (d *daemon) sign(pkh, hexPayload string) (int, string) {
	return signCtx(context.Background(), d.addr, pkh, hexPayload)
}

func signCtx(ctx context.Context, addr, pkh, hexPayload string) (int, string) {
	req, _ := http.NewRequestWithContext(ctx, "POST", "http://"+addr+"/keys/"+pkh, strings.NewReader(`"`+hexPayload+`"`))
	resp, err := client.Do(req)
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
	_ = json.Unmarshal(b, &e)
	if len(e) == 1 {
		return resp.StatusCode, e[0].Msg
	}
	return resp.StatusCode, string(b)
}

// waitLog waits (up to 5 s) for the daemon's log to contain s: the log travels through a pipe,
// so it may arrive just after the HTTP reply.
func (d *daemon) waitLog(s string) bool {
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if strings.Contains(d.logs.String(), s) {
			return true
		}
		time.Sleep(10 * time.Millisecond)
	}
	return false
}
