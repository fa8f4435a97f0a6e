// Package testdaemon is the one home of the tests' infrastructure: it runs the real signatory
// binary, or another program such as an emulator or a database server, as a child process of a
// test, and says what a test does when such a program cannot run here.
//
//   - Unavailable is the one skip-or-fail rule: a test that needs a program from outside Go
//     (PostgreSQL, etcd, SoftHSM2, local-kms, Node) is skipped without it, or fails when
//     RequireServersEnv is "1" (CI). Installed finds or installs such a program once.
//   - Process is every long-running child process of the tests, with its output in a Buffer that
//     can be waited on; RunTool runs the short one-shot tools (initdb, softhsm2-util, go build,
//     npm ci). On Linux every child gets SIGKILL when the test process dies, so that none outlives
//     an aborted test, and Kill ends its whole process group.
//   - Service is a Process serving on free loopback ports (the emulators and servers of the
//     <pkg>test packages: postgrestest, etcdtest, dynamotest, awskmstest), with readiness checks,
//     an orderly stop, restart on the same ports and data, pause and resume.
//   - Binary builds the daemon once per test binary (with the race detector when the tests run
//     with it); Daemon starts `signatory serve` on free loopback ports, waits for /healthz,
//     captures the log, stops it with SIGKILL or SIGTERM and talks to its HTTP API.
//   - NewKeys, NewMember and StartMembers run several daemons on one shared watermark store
//     (cluster.go, for test/cluster and test/adversarial); Eventually waits for a server coming
//     back from an outage.
//   - Outage is the scenario of a vault's backend going away under a running daemon and coming
//     back, which test/hsm (SoftHSM2 token removed) and test/yubihsm (connector stopped) share.
//   - Attestation, Consensus, Block and the other payload builders make what the end-to-end tests
//     sign.
//
// It imports the standard library, testing, internal/tezos and gotez. Production code must not
// import it.
package testdaemon

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
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
	if _, err := RunTool(exec.CommandContext(ctx, "go", append(args, Package)...)); err != nil {
		return "", fmt.Errorf("building signatory: %w", err)
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
// program that a test needs into a failure rather than a skip. This is its only mention in Go
// code: every test goes through Unavailable.
const RequireServersEnv = "SIGNATORY_REQUIRE_SERVERS"

// Unavailable is the one skip-or-fail rule for a server, emulator or tool that cannot run here: it
// skips tb with the reason, or fails it when RequireServersEnv is "1".
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
	return FreeAddrs(tb, 1)[0]
}

// FreeAddrs returns n distinct loopback addresses whose ports were free a moment ago. They are
// held together until all are picked: two FreeAddr calls in a row can return the same port, the
// first being released before the second is chosen, and a daemon given one port for both its
// listeners fails to start.
func FreeAddrs(tb testing.TB, n int) []string {
	tb.Helper()
	addrs := make([]string, n)
	for i := range addrs {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			tb.Fatal(err)
		}
		defer l.Close()
		addrs[i] = l.Addr().String()
	}
	return addrs
}

// Buffer collects output, such as a child process's or a logger's, and can be read, and waited
// on, while it is written to.
type Buffer struct {
	mu   sync.Mutex
	b    bytes.Buffer
	wake chan struct{} // closed by the next Write, for WaitFor
}

func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.wake != nil {
		close(b.wake)
		b.wake = nil
	}
	return b.b.Write(p)
}

// String returns everything written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// WaitCount waits until the output holds s n times (or more), woken by each write, and reports
// whether it does; it gives up when ctx ends.
func (b *Buffer) WaitCount(ctx context.Context, s string, n int) bool {
	for {
		b.mu.Lock()
		if bytes.Count(b.b.Bytes(), []byte(s)) >= n {
			b.mu.Unlock()
			return true
		}
		if b.wake == nil {
			b.wake = make(chan struct{})
		}
		wake := b.wake
		b.mu.Unlock()
		select {
		case <-wake:
		case <-ctx.Done():
			return strings.Count(b.String(), s) >= n
		}
	}
}

// WaitFor waits until the output holds s, woken by each write (no polling), and reports whether
// it does; it gives up when ctx ends.
func (b *Buffer) WaitFor(ctx context.Context, s string) bool { return b.WaitCount(ctx, s, 1) }
