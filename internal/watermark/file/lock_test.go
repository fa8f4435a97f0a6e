package file_test

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/signatory-go/signatory/internal/testdaemon"
	"github.com/signatory-go/signatory/internal/watermark"
	"github.com/signatory-go/signatory/internal/watermark/file"
	"github.com/signatory-go/signatory/internal/watermark/watermarktest"
)

// TestExclusive: while one Store is open on a directory a second Open fails at once, naming the
// lock file and its holder; after Close the directory opens again with the marks written.
func TestExclusive(t *testing.T) {
	t.Parallel()
	base := t.TempDir()
	s1, err := file.Open(base)
	if err != nil {
		t.Fatal(err)
	}
	k := watermarktest.Key(0, 0, watermark.Block)
	watermarktest.MustAdvance(t, s1, k, watermarktest.Mark(5, 0, 1))
	_, err = file.Open(base)
	if !errors.Is(err, file.ErrLocked) {
		t.Fatalf("second Open = %v, want ErrLocked", err)
	}
	lock := filepath.Join(base, file.DirName, file.LockName)
	if msg := err.Error(); !strings.Contains(msg, lock) || !strings.Contains(msg, "pid ") {
		t.Fatalf("error does not name the lock and its holder: %s", msg)
	}
	// A read-only snapshot (`watermark show`) needs no lock, sees the marks and cannot write.
	ro, err := file.Open(base, file.ReadOnly())
	if err != nil {
		t.Fatalf("read-only Open while locked: %v", err)
	}
	if m, ok := watermarktest.Stored(t, ro, k); !ok || m != watermarktest.Mark(5, 0, 1) {
		t.Fatalf("snapshot shows %+v, %v", m, ok)
	}
	if _, err := ro.Advance(t.Context(), k, watermarktest.Mark(6, 0, 1)); err == nil || watermark.IsConflict(err) {
		t.Fatalf("Advance on a snapshot = %v", err)
	}
	if err := ro.Health(t.Context()); err != nil {
		t.Fatalf("snapshot Health = %v", err)
	}
	ro.Close()
	if err := s1.Close(); err != nil {
		t.Fatal(err)
	}
	s2, err := file.Open(base)
	if err != nil {
		t.Fatalf("Open after Close: %v", err)
	}
	defer s2.Close()
	watermarktest.MustRefuse(t, s2, k, watermarktest.Mark(5, 0, 2))
}

// TestExclusiveAcrossProcesses: a Store open in another process refuses Open here, naming that
// process; once it is killed with SIGKILL, Open succeeds (the kernel drops the lock).
func TestExclusiveAcrossProcesses(t *testing.T) {
	t.Parallel()
	base := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestLockHolderProcess$")
	cmd.Env = append(os.Environ(), "WM_LOCK_HOLDER="+base)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	defer stdin.Close()
	var out testdaemon.Buffer
	p, err := testdaemon.StartProcess(cmd, &out)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Kill()
	if err := p.WaitOutput(&out, "locked\n", time.Minute); err != nil {
		t.Fatalf("holder did not start: %v\n%s", err, out.String())
	}
	_, err = file.Open(base)
	if !errors.Is(err, file.ErrLocked) || !strings.Contains(err.Error(), fmt.Sprintf("pid %d ", p.Pid())) {
		t.Fatalf("Open while another process holds the lock = %v", err)
	}
	p.Kill() // SIGKILL, and wait for the exit
	s, err := file.Open(base)
	if err != nil {
		t.Fatalf("Open after the holder died: %v", err)
	}
	s.Close()
}

// TestLockHolderProcess is the other process of TestExclusiveAcrossProcesses.
func TestLockHolderProcess(t *testing.T) {
	base := os.Getenv("WM_LOCK_HOLDER")
	if base == "" {
		t.Skip("run by TestExclusiveAcrossProcesses")
	}
	s, err := file.Open(base)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	fmt.Println("locked")
	io.Copy(io.Discard, os.Stdin) // until the parent closes stdin or kills us
}

// TestCloseReleasesWhileChildrenStart: a process that starts children (a fork, then an exec) while
// a Store closes must not keep the directory locked: between its fork and its exec a child holds a
// copy of the lock's descriptor, so Close unlocks explicitly rather than only closing. Reopening
// right after Close, while another goroutine starts children as fast as it can, always succeeds.
func TestCloseReleasesWhileChildrenStart(t *testing.T) {
	t.Parallel()
	truePath, err := exec.LookPath("true")
	if err != nil {
		t.Skip("no `true` program to start")
	}
	base := t.TempDir()
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
			}
			_, _ = testdaemon.RunTool(exec.Command(truePath))
		}
	}()
	defer func() { close(stop); <-done }()
	for i := range 300 {
		s, err := file.Open(base, file.WithJournal(4096))
		if err != nil {
			t.Fatalf("open %d: %v", i, err)
		}
		watermarktest.MustAdvance(t, s, watermarktest.Key(0, 0, watermark.Block), watermarktest.Mark(int32(i+1), 0, 1))
		if err := s.Close(); err != nil {
			t.Fatalf("close %d: %v", i, err)
		}
	}
}
