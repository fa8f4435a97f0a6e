package sched

import (
	"context"
	"runtime"
	"sync"
)

// LowerBy is how much Low's threads add to the process's nice value (up to 19, the lowest
// priority): the kernel gives a core to the process's other threads first (at nice 0, a thread
// weighs about ten times a nice-10 one). Not 19: the runtime's stop-the-world pauses (each
// garbage collection has two) wait for every thread that holds a processor, a niced one too, so a
// thread the kernel serves too rarely stalls the whole process. Measured on two cores with two
// busy processes beside the signer and a flood of generic requests: a baker's slowest request
// took 95–123 ms at nice 19, 16 ms at nice 10 and 20–28 ms without Low (docs/benchmarks.md).
const LowerBy = 10

// Low runs functions on threads of low priority (LowerBy), so that while consensus requests and
// generic ones contend, the CPU work of the generic ones (an in-process signing and its check, a
// signature's verification) yields the cores to the consensus requests' threads at the kernel's
// run queue too, the last queue the two share. Strict priority at the CPU admission (CPU) cannot
// reach that queue: a generic request already signing runs until its next step, and the
// threads that read, decode and answer requests all run at one priority.
type Low struct {
	tids chan int // the threads' ids, for tests
	jobs chan func()
	stop chan struct{}
	once sync.Once
	wg   sync.WaitGroup
}

// StartLow starts n threads, each lowerBy below the priority of the thread that starts it. It
// fails, with none left running, where the system cannot set a thread's priority alone
// (lowerThreadPriority). The runtime never clones a thread of Low: it creates threads from a
// thread of its own when asked on a locked one (runtime.LockOSThread).
func StartLow(n, lowerBy int) (*Low, error) {
	n = max(1, n)
	l := &Low{tids: make(chan int, n), jobs: make(chan func()), stop: make(chan struct{})}
	started := make(chan error, n)
	for range n {
		l.wg.Add(1)
		go l.worker(lowerBy, started)
	}
	var err error
	for range n {
		if e := <-started; e != nil {
			err = e
		}
	}
	if err != nil {
		l.Stop()
		return nil, err
	}
	return l, nil
}

func (l *Low) worker(lowerBy int, started chan<- error) {
	defer l.wg.Done()
	// Never unlocked (but on the main thread, below): the thread ends with this goroutine, and its
	// priority with it; no other goroutine ever runs on it.
	runtime.LockOSThread()
	if onMainThread() {
		// The process's main thread: its nice value is the one ps, top and /proc/<pid>/stat show
		// for the whole process, and the runtime never ends it, so a goroutine locked to it that
		// ends leaves it idle for good, at Low's priority. This goroutine holds it, idle, until
		// Stop (no other goroutine runs on a locked thread), and the worker starts again on
		// another thread.
		l.wg.Add(1)
		go l.worker(lowerBy, started)
		<-l.stop
		runtime.UnlockOSThread()
		return
	}
	if err := lowerThreadPriority(lowerBy); err != nil {
		started <- err
		return
	}
	l.tids <- threadID()
	started <- nil
	for {
		select {
		case f := <-l.jobs:
			f()
		case <-l.stop:
			return
		}
	}
}

// Run runs f on one of l's threads and returns when it has; a panic in f is the caller's. After
// Stop it runs f in the caller.
func (l *Low) Run(f func()) {
	var p any
	done := make(chan struct{})
	job := func() {
		defer close(done)
		defer func() { p = recover() }()
		f()
	}
	select {
	case l.jobs <- job:
		<-done
		if p != nil {
			panic(p)
		}
	case <-l.stop:
		f()
	}
}

// Stop ends l's threads once the functions they run return.
func (l *Low) Stop() {
	l.once.Do(func() { close(l.stop) })
	l.wg.Wait()
}

// lowUse is a CPU's Low and when to use it.
type lowUse struct {
	pool   *Low
	active func() bool
}

// SetLow has Background run generic requests' CPU work on low while active reports that
// consensus and generic requests contend (Spare.Raised). To call before c is used.
func (c *CPU) SetLow(low *Low, active func() bool) {
	c.low.Store(&lowUse{pool: low, active: active})
}

// Background runs f, CPU work of a generic request admitted by a CPU (WithGeneric), on a thread
// of low priority while consensus requests contend with generic ones (CPU.SetLow); otherwise,
// and for a context WithGeneric did not mark, in the caller. f must not wait on the network or a
// lock a consensus request may need: it would hold a thread of Low, or a consensus request,
// behind the kernel's lower priority.
func Background(ctx context.Context, f func()) {
	if c, ok := ctx.Value(genericKey{}).(*CPU); ok {
		if u := c.low.Load(); u != nil && u.active() {
			u.pool.Run(f)
			return
		}
	}
	f()
}
