// Package dynamotest runs dynalite, a DynamoDB emulator on Node.js pinned under test/dynalite,
// for tests: it installs the package with npm ci when needed and starts it on a free port.
package dynamotest

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Credentials the tests use; dynalite accepts any.
const (
	Region    = "us-east-1"
	AccessKey = "AKIDDYNALITE"
	SecretKey = "dynalite-secret"
)

// Unavailable skips t with the reason, or fails it when SIGNATORY_REQUIRE_SERVERS=1 (CI).
func Unavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if os.Getenv("SIGNATORY_REQUIRE_SERVERS") == "1" {
		t.Fatalf("%s (SIGNATORY_REQUIRE_SERVERS=1)", msg)
	}
	t.Skipf("%s; set SIGNATORY_REQUIRE_SERVERS=1 to make this a failure", msg)
}

var (
	installOnce sync.Once
	cliPath     string
	installErr  error
)

// CLI returns the path of dynalite's cli.js, running `npm ci` in test/dynalite first if the
// package is not installed (under a lock, as test packages run in parallel).
func CLI(t testing.TB) string {
	t.Helper()
	installOnce.Do(func() { cliPath, installErr = install() })
	if installErr != nil {
		Unavailable(t, "dynalite is not available: %v", installErr)
	}
	return cliPath
}

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
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("npm ci in %s: %v\n%s", dir, err, bytes.TrimSpace(out))
	}
	return cli, nil
}

// Server is a running dynalite with its data on disk, so that it can be restarted.
type Server struct {
	t        testing.TB
	cli      string
	port     int
	dataDir  string
	Endpoint string // http://127.0.0.1:port
	cmd      *exec.Cmd
	done     chan struct{}
	logs     *logBuffer
}

// logBuffer collects the emulator's output; it is safe to read while the process writes.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// Start runs dynalite on a free loopback port with a LevelDB store in a temp folder; it is
// killed at cleanup.
func Start(t testing.TB) *Server {
	t.Helper()
	s := &Server{t: t, cli: CLI(t), dataDir: t.TempDir()}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.port = l.Addr().(*net.TCPAddr).Port
	l.Close()
	s.Endpoint = "http://127.0.0.1:" + strconv.Itoa(s.port)
	s.start()
	t.Cleanup(s.Stop)
	return s
}

func (s *Server) start() {
	s.t.Helper()
	s.logs = new(logBuffer)
	s.cmd = exec.Command("node", s.cli, "--host", "127.0.0.1", "--port", strconv.Itoa(s.port),
		"--path", s.dataDir, "--createTableMs", "50", "--deleteTableMs", "50", "--updateTableMs", "50")
	s.cmd.Stdout, s.cmd.Stderr = s.logs, s.logs
	if err := s.cmd.Start(); err != nil {
		Unavailable(s.t, "cannot start dynalite: %v", err)
	}
	done := make(chan struct{})
	s.done = done
	go func() { _ = s.cmd.Wait(); close(done) }()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-done:
			s.t.Fatalf("dynalite exited at start:\n%s", s.logs)
		default:
		}
		if c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(s.port), time.Second); err == nil {
			c.Close()
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	s.t.Fatalf("dynalite did not listen on port %d within 30 s:\n%s", s.port, s.logs)
}

// Stop kills the emulator (the data stays on disk); it can be called twice.
func (s *Server) Stop() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGCONT)
	_ = s.cmd.Process.Kill()
	<-s.done
	s.cmd = nil
}

// Restart starts the emulator again on the same port over the same data.
func (s *Server) Restart() {
	s.t.Helper()
	s.Stop()
	s.start()
}

// Pause freezes the process (SIGSTOP): connections are accepted by the kernel but never answered.
func (s *Server) Pause() { _ = s.cmd.Process.Signal(syscall.SIGSTOP) }

// Resume undoes Pause.
func (s *Server) Resume() { _ = s.cmd.Process.Signal(syscall.SIGCONT) }
