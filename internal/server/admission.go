package server

import (
	"context"
	"sync/atomic"

	"github.com/signatory-go/signatory/internal/fault"
)

// GenericQueue is how many requests other than blocks and consensus operations may wait for a
// slot; more are refused with 503 at once.
const GenericQueue = 64

// admission is a counting semaphore with a bounded number of waiters.
type admission struct {
	slots   chan struct{}
	waiting atomic.Int64
	queue   int64
}

func newAdmission(slots, queue int) *admission {
	return &admission{slots: make(chan struct{}, slots), queue: int64(queue)}
}

var errOverloaded = fault.New(fault.Unavailable, "overloaded: too many generic requests in flight; blocks and consensus operations are served first")

// acquire takes a slot, waiting while fewer than queue others wait, until ctx ends.
func (a *admission) acquire(ctx context.Context) (release func(), err error) {
	select {
	case a.slots <- struct{}{}:
		return a.release, nil
	default:
	}
	if a.waiting.Add(1) > a.queue {
		a.waiting.Add(-1)
		return nil, errOverloaded
	}
	defer a.waiting.Add(-1)
	select {
	case a.slots <- struct{}{}:
		return a.release, nil
	case <-ctx.Done():
		return nil, errOverloaded
	}
}

func (a *admission) release() { <-a.slots }
