package sched

import (
	"runtime"
	"sync/atomic"
	"testing"
)

// TestEach: every index is called exactly once, on no more goroutines than GOMAXPROCS, and
// Each returns only after the last call; nothing is called for n ≤ 0.
func TestEach(t *testing.T) {
	t.Parallel()
	for _, n := range []int{0, 1, 2, 3, 1000} {
		calls := make([]atomic.Int32, max(n, 1))
		var running, most atomic.Int32
		Each(n, func(i int) {
			r := running.Add(1)
			for {
				m := most.Load()
				if r <= m || most.CompareAndSwap(m, r) {
					break
				}
			}
			calls[i].Add(1)
			runtime.Gosched()
			running.Add(-1)
		})
		for i := range n {
			if c := calls[i].Load(); c != 1 {
				t.Fatalf("n=%d: index %d called %d times", n, i, c)
			}
		}
		if n == 0 && calls[0].Load() != 0 {
			t.Fatal("n=0: called")
		}
		if running.Load() != 0 {
			t.Fatalf("n=%d: Each returned with %d calls running", n, running.Load())
		}
		if m := most.Load(); int(m) > runtime.GOMAXPROCS(0) {
			t.Fatalf("n=%d: %d calls at once on %d procs", n, m, runtime.GOMAXPROCS(0))
		}
	}
	Each(-1, func(int) { t.Fatal("called for n=-1") })
}
