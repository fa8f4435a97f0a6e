package pkcs11

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	p11 "github.com/miekg/pkcs11"

	"github.com/signatory-go/signatory/internal/sched"
)

// session is one open, logged-in PKCS#11 session. A session runs one operation at a time, so
// the pool hands each to a single request.
type session struct {
	h   p11.SessionHandle
	gen uint64 // module generation the handle belongs to
}

// pool keeps up to sem.Size() sessions of one vault, handing a freed one to a waiting block or
// consensus request before any other (sched.Pool). The user is logged in when the first session
// opens (PKCS#11 login state is shared by all sessions of the application on a token); later
// sessions find it logged in already.
type pool struct {
	v    *Vault
	sem  *sched.Pool // one slot per session in use
	mu   sync.Mutex
	idle []*session
}

func newPool(v *Vault, size int) *pool {
	return &pool{v: v, sem: sched.NewPool(size)}
}

// get returns a session of the module's current generation, waiting for a free one while ctx
// allows. A lost module is re-initialised here first.
func (p *pool) get(ctx context.Context) (*session, error) {
	if err := p.sem.Acquire(ctx); err != nil {
		return nil, fmt.Errorf("no free PKCS#11 session (all %d in use): %w", p.sem.Size(), err)
	}
	s, err := p.take()
	if err != nil {
		p.sem.Release()
		return nil, err
	}
	return s, nil
}

func (p *pool) take() (*session, error) {
	m := p.v.mod
	var err error
	for attempt := 0; attempt < 2; attempt++ {
		gen, needInit := m.state()
		if needInit {
			if err := m.reinit(p.v.log); err != nil {
				return nil, err
			}
			gen, _ = m.state()
		}
		if s := p.popIdle(gen); s != nil {
			return s, nil
		}
		var s *session
		if s, err = p.v.openSession(p11.CKF_SERIAL_SESSION); err == nil {
			return s, nil
		}
		if (!deviceLost(err) && !isNoToken(err)) || !p.v.opened.Load() {
			return nil, err // a vault that never worked does not disturb the others sharing the module
		}
		m.markStale(gen)
	}
	return nil, err
}

// popIdle returns an idle session of generation gen; sessions of older generations are dead
// (their module was re-initialised) and are dropped.
func (p *pool) popIdle(gen uint64) *session {
	p.mu.Lock()
	defer p.mu.Unlock()
	for len(p.idle) > 0 {
		s := p.idle[len(p.idle)-1]
		p.idle = p.idle[:len(p.idle)-1]
		if s.gen == gen {
			return s
		}
	}
	return nil
}

// put gives s back. A session that failed (healthy false) is closed instead of kept.
func (p *pool) put(s *session, healthy bool) {
	defer p.sem.Release()
	gen, needInit := p.v.mod.state()
	if healthy && s.gen == gen && !needInit && !p.v.life.Closed() {
		p.mu.Lock()
		p.idle = append(p.idle, s)
		p.mu.Unlock()
		return
	}
	p.v.closeSession(s)
}

// drain closes every idle session.
func (p *pool) drain() {
	p.mu.Lock()
	idle := p.idle
	p.idle = nil
	p.mu.Unlock()
	for _, s := range idle {
		p.v.closeSession(s)
	}
}

// noTokenError is returned when no slot holds the configured token.
type noTokenError struct{ msg string }

func (e *noTokenError) Error() string { return e.msg }

func noToken(format string, args ...any) error {
	return &noTokenError{msg: fmt.Sprintf(format, args...)}
}

func isNoToken(err error) bool {
	var e *noTokenError
	return errors.As(err, &e)
}

// openSession opens a session on the vault's token and logs the user in.
func (v *Vault) openSession(flags uint) (*session, error) {
	var s *session
	err := v.mod.call(func(c *p11.Ctx, gen uint64) error {
		slot, err := v.slotFor(c, gen)
		if err != nil {
			return err
		}
		h, err := c.OpenSession(slot, flags)
		if err != nil {
			return opErr("C_OpenSession", err)
		}
		if err := v.login(c, h); err != nil {
			_ = c.CloseSession(h)
			return err
		}
		s = &session{h: h, gen: gen}
		return nil
	})
	return s, err
}

// login logs the user in on h. After a wrong or locked PIN it never tries again: HSMs lock the
// PIN after a few failures.
func (v *Vault) login(c *p11.Ctx, h p11.SessionHandle) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.pinErr != nil {
		return v.pinErr
	}
	err := c.Login(h, p11.CKU_USER, v.cfg.pin)
	switch {
	case err == nil || rvIs(err, p11.CKR_USER_ALREADY_LOGGED_IN):
		return nil
	case rvIs(err, p11.CKR_PIN_INCORRECT), rvIs(err, p11.CKR_PIN_INVALID), rvIs(err, p11.CKR_PIN_LEN_RANGE):
		v.pinErr = &opError{op: "login failed: wrong PIN; not retried until restart", err: err}
	case rvIs(err, p11.CKR_PIN_LOCKED):
		v.pinErr = &opError{op: "login failed: the user PIN is locked; unlock it with the security officer PIN", err: err}
	case rvIs(err, p11.CKR_PIN_EXPIRED):
		v.pinErr = &opError{op: "login failed: the user PIN has expired; set a new one", err: err}
	case rvIs(err, p11.CKR_USER_PIN_NOT_INITIALIZED):
		v.pinErr = &opError{op: "login failed: the token has no user PIN yet (initialise it with the SO PIN)", err: err}
	default:
		return opErr("C_Login", err)
	}
	return v.pinErr
}

func (v *Vault) closeSession(s *session) {
	_ = v.mod.call(func(c *p11.Ctx, gen uint64) error {
		if s.gen == gen {
			_ = c.CloseSession(s.h)
		}
		return nil
	})
}

// slotFor returns the slot of the vault's token, found again after each re-initialisation.
func (v *Vault) slotFor(c *p11.Ctx, gen uint64) (uint, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.slotGen == gen && v.slotOK {
		return v.slot, nil
	}
	slot, label, err := findSlot(c, v.cfg.slot, v.cfg.label)
	if err != nil {
		return 0, err
	}
	v.slot, v.token, v.slotGen, v.slotOK = slot, label, gen, true
	return slot, nil
}

func findSlot(c *p11.Ctx, want *uint, label string) (uint, string, error) {
	if want != nil {
		ti, err := c.GetTokenInfo(*want)
		if err != nil {
			return 0, "", opErr(fmt.Sprintf("slot %d: C_GetTokenInfo", *want), err)
		}
		got := strings.TrimRight(ti.Label, " \x00")
		if ti.Flags&p11.CKF_TOKEN_INITIALIZED == 0 {
			return 0, "", noToken("the token in slot %d is not initialised", *want)
		}
		if label != "" && got != label {
			return 0, "", noToken("slot %d holds token %q, not %q", *want, got, label)
		}
		return *want, got, nil
	}
	slots, err := c.GetSlotList(true)
	if err != nil {
		return 0, "", opErr("C_GetSlotList", err)
	}
	var seen []string
	for _, id := range slots {
		ti, err := c.GetTokenInfo(id)
		if err != nil || ti.Flags&p11.CKF_TOKEN_INITIALIZED == 0 {
			continue
		}
		got := strings.TrimRight(ti.Label, " \x00")
		if label == "" || got == label {
			return id, got, nil
		}
		seen = append(seen, fmt.Sprintf("%q (slot %d)", got, id))
	}
	if label == "" {
		return 0, "", noToken("no slot holds an initialised token")
	}
	if len(seen) == 0 {
		return 0, "", noToken("no token labelled %q: no slot holds an initialised token", label)
	}
	return 0, "", noToken("no token labelled %q (tokens present: %s)", label, strings.Join(seen, ", "))
}

// opError is a failed PKCS#11 call: "C_Sign: CKR_DEVICE_REMOVED". It unwraps to the return value.
type opError struct {
	op  string
	err error
}

func (e *opError) Error() string { return e.op + " (" + rvText(e.err) + ")" }
func (e *opError) Unwrap() error { return e.err }

func opErr(op string, err error) error { return &opError{op: op, err: err} }
