// Package awskmstest runs local-kms, an AWS KMS emulator, for tests: it finds the binary on PATH
// or installs the pinned version with `go install`, and starts it on a free port in a temp folder.
package awskmstest

import (
	"bytes"
	"context"
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

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"
)

// Module is the pinned local-kms version (DEPENDENCIES.md §2b).
const Module = "github.com/nsmithuk/local-kms@v0.0.0-20260228092603-2a5e92d09ab6"

// Region and Account are what the emulator is started with; any credentials are accepted.
const (
	Region    = "us-east-1"
	Account   = "111122223333"
	AccessKey = "AKIDLOCALKMS"
	SecretKey = "local-kms-secret"
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
	binOnce sync.Once
	binPath string
	binErr  error
)

// Binary returns the path of local-kms: from PATH, or installed once per machine into a folder
// under the temp dir (go install into a private GOBIN, then an atomic rename).
func Binary(t testing.TB) string {
	t.Helper()
	binOnce.Do(func() { binPath, binErr = install() })
	if binErr != nil {
		Unavailable(t, "local-kms is not available: %v", binErr)
	}
	return binPath
}

func install() (string, error) {
	if p, err := exec.LookPath("local-kms"); err == nil {
		return p, nil
	}
	cache := filepath.Join(os.TempDir(), "signatory-test-bin", "local-kms-2a5e92d09ab6")
	target := filepath.Join(cache, "local-kms")
	if _, err := os.Stat(target); err == nil {
		return target, nil
	}
	if err := os.MkdirAll(cache, 0o755); err != nil {
		return "", err
	}
	gobin, err := os.MkdirTemp(cache, "gobin-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(gobin)
	cmd := exec.Command("go", "install", Module)
	cmd.Dir = gobin
	cmd.Env = append(os.Environ(), "GOBIN="+gobin, "GOWORK=off", "GOFLAGS=-mod=mod")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go install %s: %v\n%s", Module, err, bytes.TrimSpace(out))
	}
	if err := os.Rename(filepath.Join(gobin, "local-kms"), target); err != nil {
		return "", err
	}
	return target, nil
}

// Server is a running local-kms.
type Server struct {
	t        testing.TB
	bin      string
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

// Start runs local-kms on a free port with its data in a temp folder; it is killed at cleanup.
func Start(t testing.TB) *Server {
	t.Helper()
	s := &Server{t: t, bin: Binary(t), dataDir: t.TempDir(), port: freePort(t)}
	s.Endpoint = "http://127.0.0.1:" + strconv.Itoa(s.port)
	s.start()
	t.Cleanup(s.Stop)
	return s
}

func freePort(t testing.TB) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func (s *Server) start() {
	s.t.Helper()
	s.logs = new(logBuffer)
	s.cmd = exec.Command(s.bin)
	s.cmd.Env = append(os.Environ(), "PORT="+strconv.Itoa(s.port), "KMS_DATA_PATH="+s.dataDir,
		"KMS_REGION="+Region, "KMS_ACCOUNT_ID="+Account)
	s.cmd.Stdout, s.cmd.Stderr = s.logs, s.logs
	if err := s.cmd.Start(); err != nil {
		Unavailable(s.t, "cannot start local-kms: %v", err)
	}
	done := make(chan struct{})
	s.done = done
	go func() { _ = s.cmd.Wait(); close(done) }()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-done:
			s.t.Fatalf("local-kms exited at start:\n%s", s.logs)
		default:
		}
		if c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(s.port), time.Second); err == nil {
			c.Close()
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	s.t.Fatalf("local-kms did not listen on port %d within 20 s:\n%s", s.port, s.logs)
}

// Stop kills the emulator (keys stay in its data folder); it can be called twice.
func (s *Server) Stop() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGCONT)
	_ = s.cmd.Process.Kill()
	<-s.done
	s.cmd = nil
}

// Restart starts the emulator again on the same port with the same keys.
func (s *Server) Restart() {
	s.t.Helper()
	s.Stop()
	s.start()
}

// Pause freezes the process (SIGSTOP): connections are accepted by the kernel but never answered.
func (s *Server) Pause() { _ = s.cmd.Process.Signal(syscall.SIGSTOP) }

// Resume undoes Pause.
func (s *Server) Resume() { _ = s.cmd.Process.Signal(syscall.SIGCONT) }

// Client returns an SDK client for the emulator.
func (s *Server) Client() *kms.Client {
	return kms.New(kms.Options{
		Region:       Region,
		BaseEndpoint: aws.String(s.Endpoint),
		Credentials:  credentials.NewStaticCredentialsProvider(AccessKey, SecretKey, ""),
	})
}

// CreateKey creates a key with usage and spec and returns its id and ARN.
func (s *Server) CreateKey(t testing.TB, usage types.KeyUsageType, spec types.KeySpec) (id, arn string) {
	t.Helper()
	out, err := s.Client().CreateKey(context.Background(), &kms.CreateKeyInput{KeyUsage: usage, KeySpec: spec})
	if err != nil {
		t.Fatalf("CreateKey %s %s: %v", usage, spec, err)
	}
	return *out.KeyMetadata.KeyId, *out.KeyMetadata.Arn
}

// CreateAlias points alias ("alias/…") at key.
func (s *Server) CreateAlias(t testing.TB, alias, key string) {
	t.Helper()
	_, err := s.Client().CreateAlias(context.Background(), &kms.CreateAliasInput{AliasName: aws.String(alias), TargetKeyId: aws.String(key)})
	if err != nil {
		t.Fatalf("CreateAlias %s: %v", alias, err)
	}
}
