// Package etcdtest runs a scratch single-member etcd server for tests: a real etcd process on free
// loopback ports (a testdaemon.Service), with its data in a temporary directory.
//
// When etcd is not installed the test is testdaemon.Unavailable: skipped, or failed where the
// test servers are required (CI).
package etcdtest

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/signatory-go/signatory/internal/testdaemon"
)

// BinEnv overrides where the etcd binary is.
const BinEnv = "SIGNATORY_ETCD_BIN"

// Server is a scratch etcd listening on 127.0.0.1, without authentication. Stop shuts it down
// (SIGTERM); Start (after Stop) and Restart bring it back on the same ports and data; both come
// from testdaemon.Service.
type Server struct {
	*testdaemon.Service
	Endpoint string // the client URL, http://127.0.0.1:port
}

// Start starts etcd ($SIGNATORY_ETCD_BIN, or etcd on $PATH; Debian's etcd-server package) with its
// data in a temporary directory. The server is stopped when tb ends.
func Start(tb testing.TB) *Server {
	tb.Helper()
	bin := os.Getenv(BinEnv)
	if bin == "" {
		bin, _ = exec.LookPath("etcd")
	}
	if _, err := os.Stat(bin); bin == "" || err != nil {
		testdaemon.Unavailable(tb, "etcd not found (install the etcd-server package, or set $%s)", BinEnv)
	}
	dir := tb.TempDir()
	s := &Server{}
	s.Service = testdaemon.StartService(tb, testdaemon.ServiceSpec{
		Name:  "etcd",
		Ports: 2, // client, peer
		Command: func(ports []string) *exec.Cmd {
			client, peer := "http://127.0.0.1:"+ports[0], "http://127.0.0.1:"+ports[1]
			// The data directory is named after the port: a start that found its port taken
			// leaves nothing behind for the next ports.
			return exec.Command(bin, "--name", "t", "--data-dir", filepath.Join(dir, "data-"+ports[0]),
				"--listen-client-urls", client, "--advertise-client-urls", client,
				"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
				"--initial-cluster", "t="+peer, "--logger", "zap", "--log-level", "warn")
		},
		Ready:      healthy,
		StopSignal: syscall.SIGTERM,
	})
	s.Endpoint = "http://" + s.Addr
	return s
}

// healthy asks the /health endpoint, which answers true once the member has a leader.
func healthy(ctx context.Context, addr string) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", "http://"+addr+"/health", nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
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
