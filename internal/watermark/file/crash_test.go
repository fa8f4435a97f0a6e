package file_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/signatory-go/signatory/internal/testdaemon"
	"github.com/signatory-go/signatory/internal/watermark"
	"github.com/signatory-go/signatory/internal/watermark/file"
	"github.com/signatory-go/signatory/internal/watermark/watermarktest"
)

// crashEnv names the base dir for TestCrashChild; unset, that test skips. crashJournalEnv, when
// set, is the journal size the child opens the store with (small, so that the run also crashes
// inside compactions), and crashLagEnv its chain file lag (short, so that it also crashes inside
// the background rewrites of the chain file).
const (
	crashEnv        = "SIGNATORY_WATERMARK_CRASH_DIR"
	crashJournalEnv = "SIGNATORY_WATERMARK_CRASH_JOURNAL"
	crashLagEnv     = "SIGNATORY_WATERMARK_CRASH_LAG"
)

const crashKeys = 4

// TestCrashChild is the child of TestCrash: it advances crashKeys keys, on two chains, through
// rising levels, one goroutine each, and prints "ACK <key> <level>" only after Advance returned nil.
// It exits when its stdin closes, so it never outlives the parent.
func TestCrashChild(t *testing.T) {
	base := os.Getenv(crashEnv)
	if base == "" {
		t.Skip("run by TestCrash")
	}
	go func() {
		io.Copy(io.Discard, os.Stdin)
		os.Exit(3)
	}()
	s := open(t, base)
	if size, _ := strconv.Atoi(os.Getenv(crashJournalEnv)); size > 0 {
		s.Close()
		lag, _ := time.ParseDuration(os.Getenv(crashLagEnv))
		var err error
		s, err = file.Open(base, file.WithLogger(slog.New(slog.DiscardHandler)), file.WithJournal(int64(size)), file.WithChainFileLag(lag))
		if err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	for g := range crashKeys {
		k := watermarktest.Key(g%2, g, watermark.Block) // two chains, one journal
		m, _ := watermarktest.Stored(t, s, k)
		wg.Go(func() {
			for l := m.Level + 1; l < m.Level+1_000_000; l++ {
				if _, err := s.Advance(t.Context(), k, watermarktest.Mark(l, 0, byte(g))); err != nil {
					fmt.Fprintln(os.Stderr, "advance:", err)
					os.Exit(2)
				}
				fmt.Fprintf(os.Stdout, "ACK %d %d\n", g, l) // one write(2)
			}
		})
	}
	wg.Wait()
}

// TestCrash kills a writing child with SIGKILL, after a random number of acknowledgements or at a
// random moment, and checks that every acknowledged mark survived and the file still parses.
func TestCrash(t *testing.T) {
	if testing.Short() {
		t.Skip("starts child processes")
	}
	t.Parallel()
	t.Run("chain files", func(t *testing.T) { crash(t, 0, 0) })
	t.Run("journal", func(t *testing.T) { crash(t, 4096, 0) })
	// The default journal size, its chain file rewritten a millisecond after each change.
	t.Run("journal with rewrites", func(t *testing.T) { crash(t, file.DefaultJournalSize, time.Millisecond) })
}

// crash is TestCrash with the child's store journaled when journal > 0 (its size), the chain
// file lagging it by at most lag (0: the default).
func crash(t *testing.T, journal int, lag time.Duration) {
	t.Parallel()
	base := t.TempDir()
	r := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
	prev := make([]int32, crashKeys) // stored levels before the run
	for run := range 5 {
		byTimer := run%2 == 1
		acked := crashRun(t, base, journal, lag, byTimer, 1+r.IntN(200), time.Duration(r.IntN(50_000))*time.Microsecond)

		s := open(t, base)
		for g := range crashKeys {
			m, _ := watermarktest.Stored(t, s, watermarktest.Key(g%2, g, watermark.Block))
			hi := max(prev[g], acked[g]) + 1 // at most one request in flight per key
			if m.Level < acked[g] || m.Level < prev[g] || m.Level > hi {
				t.Fatalf("run %d key %d: stored level %d, acknowledged %d, before %d", run, g, m.Level, acked[g], prev[g])
			}
			prev[g] = m.Level
		}
		if err := s.Health(t.Context()); err != nil {
			t.Fatalf("run %d: Health after crash: %v", run, err)
		}
		for c := range 2 { // each chain with a mark has a chain file that parses
			if prev[c] > 0 || prev[c+2] > 0 {
				readChainFile(t, s, watermarktest.Chain(c))
			}
		}
		s.Close()
		t.Logf("run %d (kill by %s): stored levels %v, acknowledged %v", run, map[bool]string{true: "timer", false: "count"}[byTimer], prev, acked)
	}
}

// crashRun starts the child (a testdaemon.Process), kills it after killAfter ACK lines (or, with
// byTimer, delay after the first one), reads every line it wrote, and returns the highest
// acknowledged level per key.
func crashRun(t *testing.T, base string, journal int, lag time.Duration, byTimer bool, killAfter int, delay time.Duration) []int32 {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1", "-test.timeout=3m")
	cmd.Env = append(os.Environ(), crashEnv+"="+base, crashJournalEnv+"="+strconv.Itoa(journal), crashLagEnv+"="+lag.String())
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	defer stdin.Close()
	pr, pw := io.Pipe()
	p, err := testdaemon.StartProcess(cmd, pw)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		<-p.Done() // all of the output has been copied
		pw.Close()
	}()
	kill := func() { p.Signal(syscall.SIGKILL) } // not Kill: it would wait for the output read here
	var other bytes.Buffer                       // what is not an acknowledgement: the test framework's output
	acked := make([]int32, crashKeys)
	lines := 0
	sc := bufio.NewScanner(pr)
	for sc.Scan() {
		var g int
		var l int32
		if _, err := fmt.Sscanf(sc.Text(), "ACK %d %d", &g, &l); err != nil || g < 0 || g >= crashKeys {
			fmt.Fprintln(&other, sc.Text())
			continue
		}
		acked[g] = max(acked[g], l)
		lines++
		switch {
		case byTimer && lines == 1:
			time.AfterFunc(delay, kill)
		case !byTimer && lines == killAfter:
			kill()
		}
	}
	_, _ = io.Copy(io.Discard, pr) // after a line too long for the scanner, if ever
	err = p.Err()
	if ctx.Err() != nil {
		t.Fatalf("child timed out; output:\n%s", other.Bytes())
	}
	var exit *exec.ExitError
	if !errors.As(err, &exit) {
		t.Fatalf("child ended with %v, not SIGKILL; output:\n%s", err, other.Bytes())
	}
	ws, ok := exit.ProcessState.Sys().(syscall.WaitStatus)
	if !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("child ended with %v, not SIGKILL; output:\n%s", err, other.Bytes())
	}
	if lines == 0 {
		t.Fatalf("child acknowledged nothing; output:\n%s", other.Bytes())
	}
	return acked
}
