package sched

import (
	"runtime"
	"sync"
	"sync/atomic"
)

// Each calls f(i) for every i in [0, n), each exactly once, on up to GOMAXPROCS goroutines, and
// returns when every call has returned. It is for start-up work that no request waits on (parsing
// 10,000 keys and their policies); f records its own result, by index, so that the caller can
// report the first error in input order whatever order the calls ran in.
func Each(n int, f func(i int)) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(runtime.GOMAXPROCS(0), n) {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
				f(i)
			}
		})
	}
	wg.Wait()
}
