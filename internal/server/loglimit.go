package server

import (
	"sync"
	"time"
)

// Refusal log limits: per (client, status, message), the first refusalBurst lines of a
// refusalWindow are logged; the others are counted and reported in one line when the window
// ends. At most refusalKeys keys are tracked; past that, new keys share one "other" key.
const (
	refusalBurst  = 5
	refusalWindow = time.Minute
	refusalKeys   = 1024
)

type refusalKey struct {
	client, msg string
	status      int
}

type refusalCount struct {
	start      time.Time
	logged     int
	suppressed int
}

// refusalLimiter rate-limits identical refusal log lines from one client.
type refusalLimiter struct {
	mu   sync.Mutex
	now  func() time.Time
	keys map[refusalKey]*refusalCount
}

func newRefusalLimiter() *refusalLimiter {
	return &refusalLimiter{now: time.Now, keys: map[refusalKey]*refusalCount{}}
}

// allow reports whether this refusal is logged, and how many like it were suppressed in the
// window that just ended (to be reported with it).
func (l *refusalLimiter) allow(client string, status int, msg string) (ok bool, suppressedBefore int) {
	if len(msg) > 200 {
		msg = msg[:200]
	}
	k := refusalKey{client, msg, status}
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	c := l.keys[k]
	if c == nil {
		if len(l.keys) >= refusalKeys {
			// Drop windows that have ended; if all are live, share one key.
			for kk, cc := range l.keys {
				if now.Sub(cc.start) >= refusalWindow && cc.suppressed == 0 {
					delete(l.keys, kk)
				}
			}
			if len(l.keys) >= refusalKeys {
				k = refusalKey{client: "other", status: status}
				c = l.keys[k]
			}
		}
		if c == nil {
			c = &refusalCount{start: now}
			l.keys[k] = c
		}
	}
	if now.Sub(c.start) >= refusalWindow {
		suppressedBefore = c.suppressed
		*c = refusalCount{start: now}
	}
	if c.logged < refusalBurst {
		c.logged++
		return true, suppressedBefore
	}
	c.suppressed++
	return false, suppressedBefore
}
