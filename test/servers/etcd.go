package servers

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Etcd is a scratch single-member etcd server listening on 127.0.0.1, without authentication.
type Etcd struct {
	t          testing.TB
	bin        string
	dir        string
	client     int // client port
	peer       int // peer port
	healthHTTP *http.Client

	mu   sync.Mutex
	proc *process
}

// StartEtcd starts etcd ($SIGNATORY_ETCD_BIN, or etcd on $PATH; Debian's etcd-server package) with
// its data in a temporary directory. The server is stopped when t ends.
func StartEtcd(t testing.TB) *Etcd {
	t.Helper()
	bin := os.Getenv("SIGNATORY_ETCD_BIN")
	if bin == "" {
		bin, _ = exec.LookPath("etcd")
	}
	if _, err := os.Stat(bin); bin == "" || err != nil {
		missing(t, "etcd not found (install the etcd-server package, or set $SIGNATORY_ETCD_BIN)")
	}
	e := &Etcd{t: t, bin: bin, dir: t.TempDir(), healthHTTP: &http.Client{Timeout: time.Second}}
	t.Cleanup(e.Stop)
	for attempt := 0; ; attempt++ {
		ports := freePorts(t, 2)
		e.client, e.peer = ports[0], ports[1]
		err := e.start()
		if err == nil {
			return e
		}
		if attempt < 3 && addrInUse(err) {
			os.RemoveAll(filepath.Join(e.dir, "data"))
			continue
		}
		t.Fatal(err)
	}
}

// Endpoint returns the client URL, e.g. http://127.0.0.1:23790.
func (e *Etcd) Endpoint() string { return fmt.Sprintf("http://127.0.0.1:%d", e.client) }

func (e *Etcd) start() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.proc != nil {
		return nil
	}
	peer := fmt.Sprintf("http://127.0.0.1:%d", e.peer)
	cmd := exec.Command(e.bin, "--name", "t", "--data-dir", filepath.Join(e.dir, "data"),
		"--listen-client-urls", e.Endpoint(), "--advertise-client-urls", e.Endpoint(),
		"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
		"--initial-cluster", "t="+peer, "--logger", "zap", "--log-level", "warn")
	proc, err := startProcess(cmd, syscall.SIGKILL)
	if err != nil {
		return fmt.Errorf("starting etcd: %w", err)
	}
	if err := waitReady(proc, "etcd", e.healthy); err != nil {
		proc.stop(syscall.SIGKILL)
		return err
	}
	e.proc = proc
	return nil
}

// healthy asks the /health endpoint, which answers true once the member has a leader.
func (e *Etcd) healthy() error {
	resp, err := e.healthHTTP.Get(e.Endpoint() + "/health")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var h struct{ Health string }
	if err := json.NewDecoder(resp.Body).Decode(&h); err != nil {
		return err
	}
	if h.Health != "true" {
		return fmt.Errorf("etcd /health: %q", h.Health)
	}
	return nil
}

// Start restarts a stopped server on the same ports and data; it is a no-op when it runs.
func (e *Etcd) Start() {
	e.t.Helper()
	if err := e.start(); err != nil {
		e.t.Fatal(err)
	}
}

// Stop shuts the server down (SIGTERM) and waits for it to exit; a no-op when it is not running.
func (e *Etcd) Stop() {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.proc != nil {
		e.proc.stop(syscall.SIGTERM)
		e.proc = nil
	}
}

// Log returns the end of the server's output, for failure messages.
func (e *Etcd) Log() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.proc == nil {
		return ""
	}
	return e.proc.out.tail(4000)
}
