package sched

import (
	"sync"
	"sync/atomic"
	"time"
)

// SpareHold is how long the spare processor stays after the last time a consensus request found
// generic work in flight.
const SpareHold = 2 * time.Second

// Spare gives the process one processor more than the cores (GOMAXPROCS) while consensus and
// generic requests contend, and takes it back when they have not for SpareHold. Generic requests
// are admitted on the cores only, so with the spare a baker's request finds a processor that is
// not running generic signing: measured on two cores under a flood of generic requests
// (docs/benchmarks.md), it took a baker's p50 from 1.5–1.9 ms to 1.1–1.3 ms and its p99 from
// 12–14 ms to about 10 ms. Kept for ever it costs the rest of the time: a processor more than the
// cores makes the runtime spin more for work, measured at 8 % more CPU per generic request (94
// against 102 µs at 64 clients, no consensus request at all).
//
// With a Low, its threads are added too (extra): each holds a processor while it runs, so the
// process keeps cores+1 processors for its other threads.
type Spare struct {
	cores  int
	extra  int
	set    func(int) int // runtime.GOMAXPROCS
	hold   time.Duration
	now    func() time.Time
	raised atomic.Bool
	last   atomic.Int64 // UnixNano of the last contention

	mu      sync.Mutex
	timer   *time.Timer
	stopped bool
}

// NewSpare controls GOMAXPROCS through set (runtime.GOMAXPROCS), between cores and cores+extra
// (at least one more).
func NewSpare(cores, extra int, set func(int) int) *Spare {
	return &Spare{cores: cores, extra: max(1, extra), set: set, hold: SpareHold, now: time.Now}
}

// Raised reports whether consensus and generic requests contend: from a Contend until no
// Contend was seen for SpareHold (CPU.SetLow uses Low while it is so).
func (s *Spare) Raised() bool { return s.raised.Load() }

// Contend records that a consensus request was admitted while generic requests were in flight or
// waiting: the spare processor is raised (by another goroutine: changing GOMAXPROCS stops the
// world for a moment, which the request should not wait for) if it is not already.
func (s *Spare) Contend() {
	s.last.Store(s.now().UnixNano())
	if s.raised.Load() || !s.raised.CompareAndSwap(false, true) {
		return
	}
	go s.raise()
}

func (s *Spare) raise() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return
	}
	s.set(s.cores + s.extra)
	s.timer = time.AfterFunc(s.hold, s.check)
}

// check is the timer's: it lowers GOMAXPROCS once no contention was seen for hold, and otherwise
// looks again when that would be.
func (s *Spare) check() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return
	}
	if idle := s.now().Sub(time.Unix(0, s.last.Load())); idle < s.hold {
		s.timer.Reset(s.hold - idle)
		return
	}
	// Cleared first: a Contend from here on raises again, its raise waiting for mu, so after
	// this set.
	s.raised.Store(false)
	s.set(s.cores)
}

// Stop takes the spare processor back at once and ends the control.
func (s *Spare) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return
	}
	s.stopped = true
	if s.timer != nil {
		s.timer.Stop()
	}
	if s.raised.Load() {
		s.set(s.cores)
	}
}
