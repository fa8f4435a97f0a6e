package sched

import (
	"context"
	"errors"
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/signatory-go/signatory/internal/testdaemon"
)

// strictCPU is NewCPU without aging (an hour's MaxWait), so that a loaded machine's delays
// between two steps of a test change nothing.
func strictCPU(cores, queue int) *CPU {
	c := NewCPU(cores, queue)
	c.SetMaxWait(time.Hour)
	return c
}

func (p *Pool) waiting() (cons, gen int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.cons), len(p.gen)
}

// TestCPU: generic requests take every core; a consensus request never waits, and no generic
// request starts while one is in flight, even on a free core; the queue is bounded; a waiter
// whose context ends leaves it.
func TestCPU(t *testing.T) {
	t.Parallel()
	c := strictCPU(2, 2)
	g1, err1 := c.Generic(t.Context())
	g2, err2 := c.Generic(t.Context())
	if err1 != nil || err2 != nil {
		t.Fatal("two generic requests on two idle cores:", err1, err2)
	}
	started := make(chan func(), 1)
	go func() {
		r, err := c.Generic(context.Background())
		if err != nil {
			t.Error(err)
		}
		started <- r
	}()
	testdaemon.Until(t, "a third generic request waits", func() bool { _, _, w := c.Load(); return w == 1 })

	cons := c.Consensus() // all cores taken by generic requests: it still does not wait
	g1()
	g2()
	if gen, n, w := c.Load(); gen != 0 || n != 1 || w != 1 {
		t.Fatalf("after the generic releases with a consensus request in flight: generic %d, consensus %d, waiting %d; want 0 1 1", gen, n, w)
	}
	cons()
	g3 := <-started // the consensus request is answered
	if gen, n, w := c.Load(); gen != 1 || n != 0 || w != 0 {
		t.Fatalf("after the consensus release: %d %d %d", gen, n, w)
	}
	g2, _ = c.Generic(t.Context())

	// The queue holds 2; a third is refused at once.
	ctx, cancel := context.WithCancel(t.Context())
	errs := make(chan error, 2)
	for range 2 {
		go func() { _, err := c.Generic(ctx); errs <- err }()
	}
	testdaemon.Until(t, "two waiting", func() bool { _, _, w := c.Load(); return w == 2 })
	if _, err := c.Generic(t.Context()); !errors.Is(err, ErrOverloaded) {
		t.Fatalf("past the queue: %v", err)
	}
	cancel()
	for range 2 {
		if err := <-errs; !errors.Is(err, ErrOverloaded) {
			t.Fatalf("a waiter whose context ended: %v", err)
		}
	}
	if gen, _, w := c.Load(); gen != 2 || w != 0 {
		t.Fatalf("after the waiters left: generic %d waiting %d", gen, w)
	}
	g2()
	g3()
	if gen, n, w := c.Load(); gen+n+w != 0 {
		t.Fatalf("idle: %d %d %d", gen, n, w)
	}
}

// TestPool: a freed slot goes to the oldest waiting consensus request before any generic one,
// and generic ones are served in order.
func TestPool(t *testing.T) {
	t.Parallel()
	p := NewPool(1)
	if err := p.Acquire(t.Context()); err != nil {
		t.Fatal(err)
	}
	order := make(chan string, 3)
	var wg sync.WaitGroup
	acquire := func(name string, ctx context.Context) {
		wg.Go(func() {
			if err := p.Acquire(ctx); err != nil {
				t.Error(name, err)
				return
			}
			order <- name
		})
	}
	acquire("generic 1", t.Context())
	testdaemon.Until(t, "generic 1 waits", func() bool { _, g := p.waiting(); return g == 1 })
	acquire("generic 2", t.Context())
	testdaemon.Until(t, "generic 2 waits", func() bool { _, g := p.waiting(); return g == 2 })
	acquire("consensus", WithConsensus(t.Context()))
	testdaemon.Until(t, "consensus waits", func() bool { c, _ := p.waiting(); return c == 1 })
	for _, want := range []string{"consensus", "generic 1", "generic 2"} {
		p.Release()
		if got := <-order; got != want {
			t.Fatalf("slot went to %s, want %s", got, want)
		}
	}
	p.Release()
	wg.Wait()
	if p.InUse() != 0 {
		t.Fatalf("%d in use when idle", p.InUse())
	}

	// A waiter whose context ends leaves the queue and takes no slot.
	if !p.TryAcquire() || p.TryAcquire() {
		t.Fatal("TryAcquire on a pool of one")
	}
	ctx, cancel := context.WithCancel(WithConsensus(t.Context()))
	done := make(chan error, 1)
	go func() { done <- p.Acquire(ctx) }()
	testdaemon.Until(t, "the consensus waiter", func() bool { c, _ := p.waiting(); return c == 1 })
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("canceled waiter: %v", err)
	}
	p.Release()
	if p.InUse() != 0 {
		t.Fatalf("%d in use after the canceled waiter", p.InUse())
	}
}

// TestRandomized: many goroutines of both classes acquire, cancel and release at random; the slots
// in use never exceed the size (pool) and no generic request starts while the cores are taken
// (CPU), and everything is free at the end.
func TestRandomized(t *testing.T) {
	t.Parallel()
	p := NewPool(3)
	c := strictCPU(2, 1000)
	var inPool, genRunning, consRunning atomic.Int64
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(g), 1))
			for range 300 {
				ctx := t.Context()
				cons := r.IntN(3) == 0
				if cons {
					ctx = WithConsensus(ctx)
				}
				cctx, cancel := context.WithCancel(ctx)
				if r.IntN(8) == 0 {
					cancel()
				}
				if err := p.Acquire(cctx); err == nil {
					if n := inPool.Add(1); n > 3 {
						t.Errorf("%d slots of 3 in use", n)
					}
					runtime.Gosched()
					inPool.Add(-1)
					p.Release()
				}
				if cons {
					rel := c.Consensus()
					consRunning.Add(1)
					runtime.Gosched()
					consRunning.Add(-1)
					rel()
				} else if rel, err := c.Generic(cctx); err == nil {
					genRunning.Add(1)
					runtime.Gosched()
					genRunning.Add(-1)
					rel()
				}
				cancel()
			}
		})
	}
	wg.Wait()
	if p.InUse() != 0 {
		t.Fatalf("pool: %d in use at the end", p.InUse())
	}
	if gen, n, w := c.Load(); gen+n+w != 0 {
		t.Fatalf("CPU at the end: %d %d %d", gen, n, w)
	}
}

// TestCPUNeverAboveCores: generic requests never exceed the cores, yields included (checked under
// the CPU's own lock).
func TestCPUNeverAboveCores(t *testing.T) {
	t.Parallel()
	c := strictCPU(3, 1000)
	var wg sync.WaitGroup
	for g := range 12 {
		wg.Go(func() {
			for i := range 200 {
				if (g+i)%4 == 0 {
					rel := c.Consensus()
					runtime.Gosched()
					rel()
					continue
				}
				rel, err := c.Generic(t.Context())
				if err != nil {
					t.Error(err)
					return
				}
				c.mu.Lock()
				if c.generic > c.cores {
					t.Errorf("%d generic requests on %d cores", c.generic, c.cores)
				}
				c.mu.Unlock()
				Yield(WithGeneric(t.Context(), c))
				runtime.Gosched()
				rel()
			}
		})
	}
	wg.Wait()
}

// TestYield: a generic request yields its core while a consensus request is in flight (even with
// a core free beside it), waits ahead of the generic requests not yet admitted, and takes its core
// back if its context ends.
func TestYield(t *testing.T) {
	t.Parallel()
	c := strictCPU(1, 8)
	r1, _ := c.Generic(t.Context())
	ctx := WithGeneric(t.Context(), c)
	Yield(ctx) // no consensus request: at once
	Yield(t.Context())
	if gen, _, w := c.Load(); gen != 1 || w != 0 {
		t.Fatalf("yield without a consensus request: generic %d waiting %d", gen, w)
	}
	queued := make(chan func(), 1)
	go func() {
		r, err := c.Generic(context.Background())
		if err != nil {
			t.Error(err)
		}
		queued <- r
	}()
	testdaemon.Until(t, "a generic request queued", func() bool { _, _, w := c.Load(); return w == 1 })
	cons := c.Consensus()
	yielded := make(chan struct{})
	go func() { Yield(ctx); close(yielded) }()
	testdaemon.Until(t, "the yielder waits", func() bool { _, _, w := c.Load(); return w == 2 })
	if gen, n, _ := c.Load(); gen != 0 || n != 1 {
		t.Fatalf("while yielding: generic %d consensus %d, want 0 1 (the free core stays free)", gen, n)
	}
	cons()
	<-yielded // the yielder, not the request queued before it, got the core
	if gen, _, w := c.Load(); gen != 1 || w != 1 {
		t.Fatalf("after the consensus request: generic %d waiting %d, want 1 1", gen, w)
	}
	r1()
	r3 := <-queued

	// A yielder whose context ends takes its core back.
	cons = c.Consensus()
	cctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { Yield(cctx); close(done) }()
	testdaemon.Until(t, "the second yielder waits", func() bool { _, _, w := c.Load(); return w == 1 })
	cancel()
	<-done
	if gen, n, w := c.Load(); gen != 1 || n != 1 || w != 0 {
		t.Fatalf("after a canceled yield: %d %d %d", gen, n, w)
	}
	cons()
	r3()
	if gen, n, w := c.Load(); gen+n+w != 0 {
		t.Fatalf("idle: %d %d %d", gen, n, w)
	}

	// Two cores, one generic request and one consensus request: the generic one still yields.
	c2 := strictCPU(2, 8)
	r, _ := c2.Generic(t.Context())
	cons = c2.Consensus()
	yielded = make(chan struct{})
	go func() { Yield(WithGeneric(context.Background(), c2)); close(yielded) }()
	testdaemon.Until(t, "the yielder waits beside a free core", func() bool { _, _, w := c2.Load(); return w == 1 })
	cons()
	<-yielded
	r()
}

// TestAging: a generic request that waited MaxWait takes a free core beside a consensus request
// that stays in flight, for admission and in Yield; never more generic requests than the cores.
func TestAging(t *testing.T) {
	t.Parallel()
	c := NewCPU(1, 8)
	c.SetMaxWait(time.Millisecond)
	cons := c.Consensus() // stays in flight throughout
	r, err := c.Generic(t.Context())
	if err != nil {
		t.Fatalf("a generic request beside a consensus request that never ends: %v", err)
	}
	second := make(chan func(), 1)
	go func() {
		r2, err := c.Generic(context.Background())
		if err != nil {
			t.Error(err)
		}
		second <- r2
	}()
	testdaemon.Until(t, "the second waits while the one core runs generic work", func() bool { _, _, w := c.Load(); return w == 1 })
	c.mu.Lock()
	if c.generic != 1 {
		t.Errorf("%d generic requests on one core", c.generic)
	}
	c.mu.Unlock()
	r()
	r2 := <-second
	Yield(WithGeneric(t.Context(), c)) // yields, then ages back in
	if gen, n, w := c.Load(); gen != 1 || n != 1 || w != 0 {
		t.Fatalf("after an aged yield: %d %d %d", gen, n, w)
	}
	c.mu.Lock()
	aged := c.aged
	c.mu.Unlock()
	if aged < 2 {
		t.Fatalf("%d aged admissions, want at least 2", aged)
	}
	r2()
	cons()
}
