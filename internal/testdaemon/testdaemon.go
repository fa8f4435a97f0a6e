// Package testdaemon is for tests only: it runs the real signatory binary, or another program
// such as an emulator, as a child process of a test.
//
// Binary builds the daemon once per test binary (with the race detector when the tests run with
// it); Daemon starts `signatory serve` on free loopback ports, waits for /healthz, captures the
// log, stops it with SIGKILL or SIGTERM and talks to its HTTP API; Process is the bare child
// process under it, with a Buffer for its output; Attestation and Consensus build the consensus
// payloads the end-to-end tests sign. On Linux every child gets SIGKILL when the test process
// dies, so that none outlives an aborted test.
//
// It imports the standard library, testing and internal/tezos. Production code must not import it.
package testdaemon

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

// Package is the main package of the daemon that Binary builds.
const Package = "github.com/signatory-go/signatory/cmd/signatory"

var build struct {
	once sync.Once
	mu   sync.Mutex // guards dir against Cleanup
	dir  string
	bin  string
	err  error
}

// Binary returns the path of the signatory binary, built on first use and then shared by every
// test of the test binary; it fails tb when the build fails. The binary is built with -race when
// the tests run with the race detector.
//
// It is built into a folder next to the test binary, which go test removes at the end of the
// run (or, when that folder cannot be written, into the temp dir). A package with a TestMain
// removes it itself by calling Main or Cleanup.
func Binary(tb testing.TB) string {
	tb.Helper()
	return BinaryContext(context.Background(), tb)
}

// BinaryContext is Binary with a context that bounds the build, when this call is the one that
// builds.
func BinaryContext(ctx context.Context, tb testing.TB) string {
	tb.Helper()
	build.once.Do(func() { build.bin, build.err = buildBinary(ctx) })
	if build.err != nil {
		tb.Fatal(build.err)
	}
	return build.bin
}

func buildBinary(ctx context.Context) (string, error) {
	dir, err := os.MkdirTemp(workDir(), "signatory-bin-")
	if err != nil {
		return "", err
	}
	build.mu.Lock()
	build.dir = dir
	build.mu.Unlock()
	bin := filepath.Join(dir, "signatory")
	args := []string{"build", "-o", bin}
	if raceEnabled {
		args = append(args, "-race")
	}
	// go test puts the toolchain that runs the tests first in PATH.
	out, err := exec.CommandContext(ctx, "go", append(args, Package)...).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("building signatory: %v\n%s", err, out)
	}
	return bin, nil
}

// workDir is the folder of the test binary when it can be written (go test's work directory,
// removed when the run ends), or else the temp dir.
func workDir() string {
	if exe, err := os.Executable(); err == nil {
		if f, err := os.CreateTemp(filepath.Dir(exe), ".w"); err == nil {
			f.Close()
			os.Remove(f.Name())
			return filepath.Dir(exe)
		}
	}
	return os.TempDir()
}

// Cleanup removes the binary that Binary built, if any. It is for a TestMain, after m.Run.
func Cleanup() {
	build.mu.Lock()
	defer build.mu.Unlock()
	if build.dir != "" {
		os.RemoveAll(build.dir)
		build.dir = ""
	}
}

// Main is a TestMain that removes the built binary at the end:
//
//	func TestMain(m *testing.M) { testdaemon.Main(m) }
func Main(m *testing.M) {
	code := m.Run()
	Cleanup()
	os.Exit(code)
}

// RequireServersEnv is the environment variable that, set to "1" (as in CI), turns a missing
// program that a test needs into a failure rather than a skip.
const RequireServersEnv = "SIGNATORY_REQUIRE_SERVERS"

// Unavailable skips tb with the reason, or fails it when RequireServersEnv is "1".
func Unavailable(tb testing.TB, format string, args ...any) {
	tb.Helper()
	msg := fmt.Sprintf(format, args...)
	if os.Getenv(RequireServersEnv) == "1" {
		tb.Fatalf("%s (%s=1)", msg, RequireServersEnv)
	}
	tb.Skipf("%s; set %s=1 to make this a failure", msg, RequireServersEnv)
}

// Installed returns a function that gives the path of a program a test needs: install finds or
// installs it, once per test binary; when it fails, the test is Unavailable.
func Installed(name string, install func() (string, error)) func(testing.TB) string {
	installed := sync.OnceValues(install)
	return func(tb testing.TB) string {
		tb.Helper()
		path, err := installed()
		if err != nil {
			Unavailable(tb, "%s is not available: %v", name, err)
		}
		return path
	}
}

// FreeAddr returns a loopback address "127.0.0.1:port" with a port that was free a moment ago.
func FreeAddr(tb testing.TB) string {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// Buffer collects output, such as a child process's or a logger's, and can be read while it is
// written to.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

// String returns everything written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
