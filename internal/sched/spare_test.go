package sched

import (
	"sync"
	"testing"
	"time"

	"github.com/signatory-go/signatory/internal/testdaemon"
)

// fakeProcs records the GOMAXPROCS values a Spare sets, one per call, on a channel.
type fakeProcs struct{ set chan int }

func (f *fakeProcs) GOMAXPROCS(n int) int { f.set <- n; return 0 }

// fakeClock is a clock the test moves.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

// TestSpare: contention raises GOMAXPROCS to cores+1 once; it stays while contention goes on,
// is lowered to cores once none was seen for the hold time, raised again at the next contention,
// and lowered by Stop, after which nothing changes it.
func TestSpare(t *testing.T) {
	t.Parallel()
	procs := &fakeProcs{set: make(chan int, 16)}
	clock := &fakeClock{t: time.Unix(1000, 0)}
	s := NewSpare(2, 1, procs.GOMAXPROCS)
	s.hold, s.now = time.Millisecond, clock.now // the timer fires often; the fake clock decides

	s.Contend()
	if got := <-procs.set; got != 3 {
		t.Fatalf("raised to %d, want 3", got)
	}
	// Contention goes on while the timer fires: not lowered.
	for range 50 {
		s.Contend()
		time.Sleep(100 * time.Microsecond) // lets the 1 ms timer fire in between: what is tested is that it does not lower
	}
	select {
	case got := <-procs.set:
		t.Fatalf("GOMAXPROCS set to %d while contention went on", got)
	default:
	}
	clock.add(time.Millisecond) // the hold has passed since the last contention
	if got := <-procs.set; got != 2 {
		t.Fatalf("lowered to %d, want 2", got)
	}
	s.Contend()
	if got := <-procs.set; got != 3 {
		t.Fatalf("raised again to %d, want 3", got)
	}
	s.Stop()
	if got := <-procs.set; got != 2 {
		t.Fatalf("Stop set %d, want 2", got)
	}
	s.Contend()
	s.Stop()
	clock.add(time.Hour)
	select {
	case got := <-procs.set:
		t.Fatalf("GOMAXPROCS set to %d after Stop", got)
	default:
	}
}

// TestOnContention: the hook is called when a consensus request is admitted beside generic work
// in flight or waiting, and not when none is.
func TestOnContention(t *testing.T) {
	t.Parallel()
	c := NewCPU(1, 4)
	calls := 0
	c.OnContention(func() { calls++ })
	c.Consensus()() // nothing generic
	if calls != 0 {
		t.Fatalf("%d calls without generic work", calls)
	}
	release, err := c.Generic(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	c.Consensus()() // beside one in flight
	if calls != 1 {
		t.Fatalf("%d calls beside a generic request in flight, want 1", calls)
	}
	release()
	// One waiting (behind a consensus request in flight), none running.
	done := c.Consensus()
	waited := make(chan error, 1)
	go func() {
		r, err := c.Generic(t.Context())
		if err == nil {
			r()
		}
		waited <- err
	}()
	testdaemon.Until(t, "a generic request waits", func() bool { _, _, w := c.Load(); return w == 1 })
	c.Consensus()()
	if calls != 2 {
		t.Fatalf("%d calls beside a waiting generic request, want 2", calls)
	}
	done()
	if err := <-waited; err != nil {
		t.Fatal(err)
	}
}
