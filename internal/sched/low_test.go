//go:build linux

package sched

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"testing"

	"github.com/signatory-go/signatory/internal/testdaemon"
)

// threadNice is a thread's nice value, read from /proc.
func threadNice(t *testing.T, stat string) int {
	t.Helper()
	n, err := testdaemon.Nice(stat)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// myNice is the nice value of the calling goroutine's thread, while it stays on it.
func myNice(t *testing.T) int {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	return threadNice(t, "/proc/thread-self/stat")
}

// niced returns the process's threads at nice n, by id.
func niced(t *testing.T, n int) map[string]bool {
	stats, err := filepath.Glob("/proc/self/task/*/stat")
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]bool{}
	for _, s := range stats {
		if _, err := os.Stat(s); err == nil && threadNice(t, s) == n {
			ids[filepath.Base(filepath.Dir(s))] = true
		}
	}
	return ids
}

// TestLowThreads: Low runs its functions on threads LowerBy below the caller's priority (19 at
// most), the caller's own thread unchanged; work that makes the runtime start threads (blocking
// system calls on Low's threads) leaves no other thread at Low's priority; a panic is the
// caller's; after Stop, functions run in the caller.
func TestLowThreads(t *testing.T) {
	base := myNice(t)
	want := min(19, base+LowerBy)
	if want == base {
		t.Skipf("the test runs at nice %d already: Low can go no lower", base)
	}
	before := niced(t, want)
	l, err := StartLow(2, LowerBy)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan int, 8)
	for range 8 {
		go l.Run(func() {
			// blocking system calls on a locked thread: the runtime hands its processor on and
			// may start a thread for it, which must not inherit this thread's priority
			for range 20 {
				if _, err := os.ReadFile("/proc/self/status"); err != nil {
					panic(err)
				}
			}
			done <- threadNice(t, "/proc/thread-self/stat")
		})
	}
	for range 8 {
		if got := <-done; got != want {
			t.Fatalf("Low ran a function at nice %d, want %d", got, want)
		}
	}
	if got := myNice(t); got != base {
		t.Fatalf("the caller's thread went to nice %d from %d", got, base)
	}
	lows := map[string]bool{}
	for range 2 {
		lows[strconv.Itoa(<-l.tids)] = true
	}
	for id := range niced(t, want) {
		if !before[id] && !lows[id] {
			t.Fatalf("thread %s, not one of Low's %v, runs at Low's nice %d", id, lows, want)
		}
	}
	for id := range lows {
		if !niced(t, want)[id] {
			t.Fatalf("Low's thread %s is not at nice %d", id, want)
		}
	}
	func() {
		defer func() {
			if p := recover(); p != "boom" {
				t.Fatalf("recovered %v, want the function's panic", p)
			}
		}()
		l.Run(func() { panic("boom") })
	}()
	l.Stop()
	runtime.LockOSThread()
	var ran int
	l.Run(func() { ran = threadNice(t, "/proc/thread-self/stat") })
	runtime.UnlockOSThread()
	if ran != base {
		t.Fatalf("after Stop ran at nice %d, want the caller's %d", ran, base)
	}
	l.Stop() // twice is harmless
}

// TestBackground: a generic request's work runs on Low while the CPU's contention says so, and in
// the caller otherwise; a consensus request's and an unmarked context's always in the caller.
func TestBackground(t *testing.T) {
	base := myNice(t)
	want := min(19, base+LowerBy)
	if want == base {
		t.Skipf("the test runs at nice %d already: Low can go no lower", base)
	}
	l, err := StartLow(1, LowerBy)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Stop()
	c := NewCPU(2, 4)
	var contending bool
	c.SetLow(l, func() bool { return contending })
	nice := func(ctx context.Context) int {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		var n int
		Background(ctx, func() { n = threadNice(t, "/proc/thread-self/stat") })
		return n
	}
	generic := WithGeneric(t.Context(), c)
	for _, tc := range []struct {
		name       string
		ctx        context.Context
		contending bool
		want       int
	}{
		{"generic, contending", generic, true, want},
		{"generic, alone", generic, false, base},
		{"consensus, contending", WithConsensus(t.Context()), true, base},
		{"unmarked, contending", t.Context(), true, base},
	} {
		contending = tc.contending
		if got := nice(tc.ctx); got != tc.want {
			t.Errorf("%s: ran at nice %d, want %d", tc.name, got, tc.want)
		}
	}
	// A CPU without a Low runs generic work in the caller.
	if got := nice(WithGeneric(t.Context(), NewCPU(2, 4))); got != base {
		t.Errorf("without Low: ran at nice %d", got)
	}
}

// TestLowLeavesMainThread: Low never lowers the process's main thread, whose nice value ps and
// /proc/<pid>/stat show for the whole process, and which the runtime never ends (a goroutine
// locked to it that ends leaves it idle for good). Each round starts and stops a Low while the
// main thread is idle, free for one of Low's goroutines to run on.
func TestLowLeavesMainThread(t *testing.T) {
	base := myNice(t)
	want := min(19, base+LowerBy)
	if want == base {
		t.Skipf("the test runs at nice %d already: Low can go no lower", base)
	}
	main := fmt.Sprintf("/proc/self/task/%d/stat", os.Getpid())
	if got := threadNice(t, main); got != base {
		t.Fatalf("the main thread is at nice %d before the test, want %d", got, base)
	}
	for round := range 50 {
		l, err := StartLow(2, LowerBy)
		if err != nil {
			t.Fatal(err)
		}
		lows := map[string]bool{}
		for range 2 {
			lows[strconv.Itoa(<-l.tids)] = true
		}
		if lows[strconv.Itoa(os.Getpid())] || len(lows) != 2 {
			t.Fatalf("round %d: Low's threads %v include the main thread %d", round, lows, os.Getpid())
		}
		if got := threadNice(t, main); got != base {
			t.Fatalf("round %d: the main thread went to nice %d", round, got)
		}
		l.Stop()
		if got := threadNice(t, main); got != base {
			t.Fatalf("round %d: after Stop the main thread is at nice %d", round, got)
		}
	}
}
