// Package dynamotest runs dynalite, a DynamoDB emulator on Node.js pinned under test/dynalite,
// for tests: it installs the package with npm ci when needed and starts it on a free port.
package dynamotest

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/signatory-go/signatory/internal/testdaemon"
)

// Credentials the tests use; dynalite accepts any.
const (
	Region    = "us-east-1"
	AccessKey = "AKIDDYNALITE"
	SecretKey = "dynalite-secret"
)

// CLI returns the path of dynalite's cli.js, running `npm ci` in test/dynalite first if the
// package is not installed (under a lock, as test packages run in parallel).
var CLI = testdaemon.Installed("dynalite", install)

// packageDir finds test/dynalite above the working directory (the module root holds go.mod).
func packageDir() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return filepath.Join(dir, "test", "dynalite"), nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("go.mod not found above the working directory")
		}
		dir = parent
	}
}

func install() (string, error) {
	if _, err := exec.LookPath("node"); err != nil {
		return "", errors.New("node is not on PATH")
	}
	dir, err := packageDir()
	if err != nil {
		return "", err
	}
	cli := filepath.Join(dir, "node_modules", "dynalite", "cli.js")
	if _, err := os.Stat(cli); err == nil {
		return cli, nil
	}
	if _, err := exec.LookPath("npm"); err != nil {
		return "", errors.New("npm is not on PATH and test/dynalite/node_modules is missing")
	}
	lock, err := os.OpenFile(filepath.Join(os.TempDir(), "signatory-dynalite-npm.lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return "", err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return "", err
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)
	if _, err := os.Stat(cli); err == nil {
		return cli, nil // another test process installed it meanwhile
	}
	cmd := exec.Command("npm", "ci", "--no-audit", "--no-fund", "--loglevel=error")
	cmd.Dir = dir
	if _, err := testdaemon.RunTool(cmd); err != nil {
		return "", fmt.Errorf("in %s: %w", dir, err)
	}
	return cli, nil
}

// Server is a running dynalite with its data on disk; Stop, Restart (on the same port over the
// same data), Pause and Resume come from testdaemon.Service.
type Server struct {
	*testdaemon.Service
	Endpoint string // http://127.0.0.1:port
}

// Start runs dynalite on a free loopback port with a LevelDB store in a temp folder; it is
// killed at cleanup.
func Start(t testing.TB) *Server {
	t.Helper()
	cli, dataDir := CLI(t), t.TempDir()
	svc := testdaemon.StartService(t, testdaemon.ServiceSpec{Name: "dynalite", Command: func(ports []string) *exec.Cmd {
		return exec.Command("node", cli, "--host", "127.0.0.1", "--port", ports[0],
			"--path", dataDir, "--createTableMs", "50", "--deleteTableMs", "50", "--updateTableMs", "50")
	}})
	return &Server{Service: svc, Endpoint: "http://" + svc.Addr}
}
