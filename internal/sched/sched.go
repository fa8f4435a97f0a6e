// Package sched puts blocks and consensus operations ahead of every other request at each queue
// they share with them: the signing port's admission to the CPU (CPU) and the session pools of
// HSM vaults (Pool). A request's class travels in its context (WithConsensus).
//
// The rule, everywhere: a consensus request never waits behind a generic one (strict priority).
// At the CPU it does not wait at all; generic requests start only while no consensus request is
// in flight and fewer generic ones than the cores run, and those already running give their core
// back at their next step (Yield) until the consensus requests are answered. So generic requests
// use every core when no consensus request is in flight, and none of them competes with one
// beyond the step it is in. In a pool, a freed session goes to the longest-waiting consensus
// request, and to a generic one only when none waits.
//
// The kernel's run queue is shared too: while consensus and generic requests contend, the generic
// requests' CPU work (an in-process signing and its check, a signature's verification) runs on
// threads of lower priority (Low, Background), and a spare processor is added (Spare).
//
// Measured on two cores (docs/benchmarks.md): letting generic requests keep the cores that
// consensus requests do not use, instead of pausing them all, doubled a baker's p50 under a
// flood of generic requests.
//
// Strict priority must not let consensus requests starve generic ones for ever: a client that may
// send consensus-looking bodies for a baker's key (refused later, by the watermark or the
// authentication) could otherwise keep one in flight at all times, and a consensus request stuck
// on a slow vault would hold every generic request as long. So a generic request that has waited
// MaxWait (for admission, or in Yield) takes a free core even beside consensus requests; at most
// the cores run generic work either way.
package sched

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"
)

type consensusKey struct{}

// WithConsensus marks ctx as a block's or consensus operation's.
func WithConsensus(ctx context.Context) context.Context {
	return context.WithValue(ctx, consensusKey{}, true)
}

// IsConsensus reports whether ctx was marked by WithConsensus.
func IsConsensus(ctx context.Context) bool {
	v, _ := ctx.Value(consensusKey{}).(bool)
	return v
}

// waiter is one caller waiting for a slot. ready is closed when the slot is granted; granted is
// guarded by the owner's mutex, so that a caller whose context ends can tell whether it holds a
// slot it must give back.
type waiter struct {
	ready   chan struct{}
	granted bool
}

func newWaiter() *waiter { return &waiter{ready: make(chan struct{})} }

func (w *waiter) grant() {
	w.granted = true
	close(w.ready)
}

// remove returns q without w (which it holds at most once).
func remove(q []*waiter, w *waiter) []*waiter {
	for i, x := range q {
		if x == w {
			return append(q[:i], q[i+1:]...)
		}
	}
	return q
}

// MaxWait is how long a generic request waits for consensus requests before it takes a free core
// beside them (see the package comment). A burst of 256 keys' consensus requests is answered in
// about 100 ms on two cores.
const MaxWait = 250 * time.Millisecond

// ErrOverloaded is CPU.Generic's answer when its queue is full or the caller's context ends
// while it waits.
var ErrOverloaded = errors.New("overloaded: too many generic requests in flight; blocks and consensus operations are served first")

// CPU admits the signing port's requests to the cores.
type CPU struct {
	mu       sync.Mutex
	cores    int // generic requests that may run at once
	queue    int // generic requests that may wait; more are refused at once
	generic  int // in flight
	cons     int // in flight
	waiting  []*waiter
	maxQueue int // the most that waited at once, for tests
	yields   int // times a generic request gave its core to consensus requests, for tests
	maxWait  time.Duration
	aged     int    // generic requests that took a core beside consensus requests after maxWait
	contend  func() // called when a consensus request is admitted beside generic work (OnContention)
	low      atomic.Pointer[lowUse]
}

// NewCPU admits up to cores generic requests at once while no consensus request is in flight,
// with up to queue generic requests waiting.
func NewCPU(cores, queue int) *CPU {
	return &CPU{cores: max(1, cores), queue: queue, maxWait: MaxWait}
}

// SetMaxWait replaces MaxWait for c (tests use an hour, to see strict priority alone).
func (c *CPU) SetMaxWait(d time.Duration) {
	c.mu.Lock()
	c.maxWait = d
	c.mu.Unlock()
}

// Consensus counts a consensus request in flight, at once; call release when it is answered.
func (c *CPU) Consensus() (release func()) {
	c.mu.Lock()
	c.cons++
	contend := c.contend
	if c.generic == 0 && len(c.waiting) == 0 {
		contend = nil
	}
	c.mu.Unlock()
	if contend != nil {
		contend()
	}
	return c.releaseConsensus
}

// OnContention has f called, without c's lock, each time a consensus request is admitted while
// generic requests are in flight or waiting (Spare.Contend). To call before c is used.
func (c *CPU) OnContention(f func()) {
	c.mu.Lock()
	c.contend = f
	c.mu.Unlock()
}

func (c *CPU) releaseConsensus() {
	c.mu.Lock()
	c.cons--
	c.admitLocked()
	c.mu.Unlock()
}

// Generic admits a generic request: at once if no consensus request is in flight, a core is free
// and no one waits, else after the generic requests queued before it (or after MaxWait, beside
// consensus requests); ErrOverloaded if queue others already wait or ctx ends first.
func (c *CPU) Generic(ctx context.Context) (release func(), err error) {
	c.mu.Lock()
	if len(c.waiting) == 0 && c.free() {
		c.generic++
		c.mu.Unlock()
		return c.releaseGeneric, nil
	}
	if len(c.waiting) >= c.queue {
		c.mu.Unlock()
		return nil, ErrOverloaded
	}
	w := newWaiter()
	c.waiting = append(c.waiting, w)
	c.maxQueue = max(c.maxQueue, len(c.waiting))
	c.mu.Unlock()
	if c.wait(ctx, w) {
		return c.releaseGeneric, nil
	}
	return nil, ErrOverloaded
}

// wait waits for w's turn: true once it holds a core. After maxWait it takes a core beside
// consensus requests if one is free of generic work; if ctx ends first it leaves the queue and
// returns false (true if the core was granted meanwhile).
func (c *CPU) wait(ctx context.Context, w *waiter) bool {
	aged := time.NewTimer(c.maxWait)
	defer aged.Stop()
	for {
		select {
		case <-w.ready:
			return true
		case <-ctx.Done():
			c.mu.Lock()
			granted := w.granted // as the context ended: the caller holds the core, and fails on ctx
			if !granted {
				c.waiting = remove(c.waiting, w)
			}
			c.mu.Unlock()
			return granted
		case <-aged.C:
			c.mu.Lock()
			if !w.granted && c.generic < c.cores {
				c.waiting = remove(c.waiting, w)
				c.generic++
				w.granted = true
				c.aged++
			}
			granted := w.granted
			c.mu.Unlock()
			if granted {
				return true
			}
			aged.Reset(c.maxWait) // every core runs generic work: wait for one as before
		}
	}
}

func (c *CPU) releaseGeneric() {
	c.mu.Lock()
	c.generic--
	c.admitLocked()
	c.mu.Unlock()
}

// free reports whether a generic request may start: no consensus request is in flight and a core
// is free.
func (c *CPU) free() bool { return c.cons == 0 && c.generic < c.cores }

// admitLocked starts waiting generic requests, in order, while they may.
func (c *CPU) admitLocked() {
	for len(c.waiting) > 0 && c.free() {
		w := c.waiting[0]
		c.waiting = c.waiting[1:]
		c.generic++
		w.grant()
	}
}

type genericKey struct{}

// WithGeneric marks ctx as a generic request admitted by c, for Yield.
func WithGeneric(ctx context.Context, c *CPU) context.Context {
	return context.WithValue(ctx, genericKey{}, c)
}

// Yield is a generic request's pause between two of its steps (before it signs, before it checks
// the signature): while a consensus request is in flight, it gives its core back and waits, ahead
// of the generic requests not yet admitted, until none is and a core is free. Otherwise, and for a context that
// WithGeneric did not mark, it returns at once. If ctx ends while it waits, it takes its core back
// at once and returns, and the request fails on its context as it would have.
func Yield(ctx context.Context) {
	if c, ok := ctx.Value(genericKey{}).(*CPU); ok {
		c.yield(ctx)
	}
}

func (c *CPU) yield(ctx context.Context) {
	c.mu.Lock()
	if c.cons == 0 {
		c.mu.Unlock()
		return
	}
	c.generic--
	w := newWaiter()
	c.waiting = append([]*waiter{w}, c.waiting...)
	c.yields++
	c.mu.Unlock()
	if !c.wait(ctx, w) {
		c.mu.Lock() // the request fails on its context; it keeps a core until it is answered
		c.generic++
		c.mu.Unlock()
	}
}

// Load returns the generic and consensus requests in flight and the generic ones waiting.
func (c *CPU) Load() (generic, consensus, waiting int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.generic, c.cons, len(c.waiting)
}

// Cores returns how many generic requests may run at once.
func (c *CPU) Cores() int { return c.cores }

// Pool hands out n slots (a vault's sessions), consensus requests first.
type Pool struct {
	mu        sync.Mutex
	free      int
	size      int
	cons, gen []*waiter // waiting, oldest first
}

// NewPool returns a pool of n slots (at least 1).
func NewPool(n int) *Pool {
	n = max(1, n)
	return &Pool{free: n, size: n}
}

// Size returns the number of slots.
func (p *Pool) Size() int { return p.size }

// Acquire takes a slot, waiting until one is free and every consensus request that waited
// before (and, for a generic request, every one at all) has had one; ctx's error if it ends
// first. The class is ctx's (IsConsensus).
func (p *Pool) Acquire(ctx context.Context) error {
	cons := IsConsensus(ctx)
	p.mu.Lock()
	if p.free > 0 { // free slots are handed over at release, so no one waits while one is free
		p.free--
		p.mu.Unlock()
		return nil
	}
	w := newWaiter()
	if cons {
		p.cons = append(p.cons, w)
	} else {
		p.gen = append(p.gen, w)
	}
	p.mu.Unlock()
	select {
	case <-w.ready:
		return nil
	case <-ctx.Done():
	}
	p.mu.Lock()
	granted := w.granted
	if !granted {
		if cons {
			p.cons = remove(p.cons, w)
		} else {
			p.gen = remove(p.gen, w)
		}
	}
	p.mu.Unlock()
	if granted {
		p.Release()
	}
	return ctx.Err()
}

// TryAcquire takes a slot if one is free, without waiting.
func (p *Pool) TryAcquire() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.free > 0 {
		p.free--
		return true
	}
	return false
}

// Release gives a slot back: to the oldest waiting consensus request, else to the oldest
// generic one, else to the pool.
func (p *Pool) Release() {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case len(p.cons) > 0:
		w := p.cons[0]
		p.cons = p.cons[1:]
		w.grant()
	case len(p.gen) > 0:
		w := p.gen[0]
		p.gen = p.gen[1:]
		w.grant()
	default:
		p.free++
	}
}

// InUse returns the slots taken.
func (p *Pool) InUse() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.size - p.free
}
