package signer

import (
	"context"
	"sync"

	"github.com/signatory-go/signatory/internal/fault"
	"github.com/signatory-go/signatory/internal/watermark"
)

// slotLocks reserves watermark slots in this process: one request per (chain, key, class, level,
// round) at a time, so that concurrent identical requests ask the vault once and the others get
// the stored signature, and a request for another byte string of the same slot waits to be
// refused. Requests for different levels or rounds do not wait for each other: one stuck at the
// vault (a slow HSM, a threshold member that does not answer) never holds up the next level. The
// store decides between them, as it does between processes: a mark only rises, so a lower
// request that finishes after a higher one is refused and its signature never leaves. Entries
// live only while held or awaited, so the map is bounded by the requests in flight, whatever
// chain ids clients send.
type slotLocks struct {
	mu sync.Mutex
	m  map[slotKey]*slotLock
}

// slotKey is one slot: a watermark key at one level and round.
type slotKey struct {
	watermark.Key
	level, round int32
}

type slotLock struct {
	sem  chan struct{} // capacity 1: full while held
	refs int           // holders and waiters; guarded by slotLocks.mu
}

// lock takes k's slot and returns its release. It gives up when ctx ends (the client left or the
// request timed out while another request for the slot was at the vault).
func (l *slotLocks) lock(ctx context.Context, k slotKey) (unlock func(), err error) {
	l.mu.Lock()
	if l.m == nil {
		l.m = map[slotKey]*slotLock{}
	}
	e := l.m[k]
	if e == nil {
		e = &slotLock{sem: make(chan struct{}, 1)}
		l.m[k] = e
	}
	e.refs++
	l.mu.Unlock()
	drop := func() {
		l.mu.Lock()
		if e.refs--; e.refs == 0 {
			delete(l.m, k)
		}
		l.mu.Unlock()
	}
	select {
	case e.sem <- struct{}{}:
	case <-ctx.Done():
		drop()
		return nil, &fault.Error{Kind: fault.Unavailable, Msg: "gave up waiting for another request of this watermark slot", Err: ctx.Err()}
	}
	return func() {
		<-e.sem
		drop()
	}, nil
}

// held returns the number of slots held or awaited, for tests.
func (l *slotLocks) held() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.m)
}
