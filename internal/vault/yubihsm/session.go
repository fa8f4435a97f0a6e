package yubihsm

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/certusone/yubihsm-go/commands"
	"github.com/certusone/yubihsm-go/connector"
	"github.com/certusone/yubihsm-go/securechannel"

	"github.com/signatory-go/signatory/internal/sched"
)

// Why not yubihsm-go's SessionManager: it has one session, no context or timeout (its HTTP
// connector uses http.DefaultClient), re-creates a lost session only from a 15 s ping goroutine
// that is never stopped, and touches its state without a lock. The vault keeps its own pool of
// yubihsm-go SecureChannels (the library's SCP03: KDF, cryptograms, MAC chaining, encryption)
// over its own connector below.

const (
	requestTimeout = 10 * time.Second // one exchange with the connector
	idleLimit      = 25 * time.Second // the device forgets a session after 30 s of inactivity
	counterLimit   = 9000             // yubihsm-go refuses more than 10,000 messages per session
	authBackoff    = 5 * time.Second  // after a refused password, before trying again
	maxReply       = 3 + 2048 + 64
	sessionReply   = 0x85 // Session Message response
	errorReply     = 0x7f
)

// httpConn is a yubihsm-go connector.Connector that posts to yubihsm-connector with the context
// of the request in progress, and checks the reply's framing before yubihsm-go parses it (the
// library indexes into replies without checking their length). One belongs to each session, which
// serves one request at a time.
type httpConn struct {
	client *http.Client
	url    string
	ctx    context.Context
	outer  byte // command code of the last reply: 0x85 means an authenticated session reply
}

// connectorError is a failure to talk to yubihsm-connector (unreachable, HTTP error, bad reply).
type connectorError struct{ err error }

func (e *connectorError) Error() string { return "yubihsm-connector: " + e.err.Error() }
func (e *connectorError) Unwrap() error { return e.err }

func (c *httpConn) Request(cmd *commands.CommandMessage) ([]byte, error) {
	c.outer = 0
	body, err := cmd.Serialize()
	if err != nil {
		return nil, err
	}
	ctx := c.ctx
	if ctx == nil {
		ctx = context.Background()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url+"/connector/api", bytes.NewReader(body))
	if err != nil {
		return nil, &connectorError{err}
	}
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err := c.client.Do(req)
	if err != nil {
		return nil, &connectorError{err}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxReply+1))
	if err != nil {
		return nil, &connectorError{err}
	}
	if resp.StatusCode != http.StatusOK {
		return nil, &connectorError{fmt.Errorf("HTTP %s from %s/connector/api", resp.Status, c.url)}
	}
	if err := checkFrame(b); err != nil {
		return nil, &connectorError{err}
	}
	c.outer = b[0]
	return b, nil
}

// checkFrame checks T || L || V framing, and the sizes yubihsm-go assumes without checking.
func checkFrame(b []byte) error {
	if len(b) < 3 || len(b) > maxReply || int(binary.BigEndian.Uint16(b[1:3])) != len(b)-3 {
		return fmt.Errorf("malformed reply from the device (%d bytes)", len(b))
	}
	n := len(b) - 3
	switch b[0] {
	case sessionReply: // session ID || one or more AES blocks || MAC
		if n < 1+16+8 || (n-9)%16 != 0 {
			return fmt.Errorf("malformed session reply from the device (%d bytes)", n)
		}
	case errorReply:
		if n != 1 {
			return fmt.Errorf("malformed error reply from the device (%d bytes)", n)
		}
	}
	return nil
}

func (c *httpConn) GetStatus() (*connector.StatusResponse, error) {
	return nil, errors.New("not used")
}

// session is one authenticated session. It is used by one request at a time.
type session struct {
	ch   *securechannel.SecureChannel
	conn *httpConn
	used time.Time
}

// send runs cmd in the session. A panic inside yubihsm-go (a reply it cannot handle) is an error.
func (s *session) send(ctx context.Context, cmd *commands.CommandMessage) (resp commands.Response, err error) {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	s.conn.ctx = ctx
	defer func() {
		s.conn.ctx = nil
		if r := recover(); r != nil {
			resp, err, s.conn.outer = nil, fmt.Errorf("yubihsm-go failed on the device's reply: %v", r), 0
		}
		s.used = time.Now()
	}()
	return s.ch.SendEncryptedCommand(cmd)
}

// inner reports whether err is the device's answer to the command itself, carried in a verified
// session reply: the session is still in step and can be reused.
func (s *session) inner(err error) bool {
	var e *commands.Error
	return errors.As(err, &e) && s.conn.outer == sessionReply
}

// pool keeps up to sem.Size() authenticated sessions, handing a freed one to a waiting block or
// consensus request before any other (sched.Pool).
type pool struct {
	v       *Vault
	sem     *sched.Pool   // one slot per session in use
	opening chan struct{} // one session is authenticated at a time
	mu      sync.Mutex
	idle    []*session
	authErr error // the last refused authentication, reported again for authBackoff
	authAt  time.Time
	limit   uint32 // messages after which a session is renewed
}

func newPool(v *Vault, size int) *pool {
	return &pool{v: v, sem: sched.NewPool(size), opening: make(chan struct{}, 1), limit: counterLimit}
}

// get returns a session, reused (fresh false) or newly authenticated, waiting for a free one
// while ctx allows.
func (p *pool) get(ctx context.Context) (s *session, fresh bool, err error) {
	if err := p.sem.Acquire(ctx); err != nil {
		return nil, false, fmt.Errorf("no free YubiHSM session (all %d in use): %w", p.sem.Size(), err)
	}
	if s := p.popIdle(); s != nil {
		return s, false, nil
	}
	if s, err = p.open(ctx); err != nil {
		p.sem.Release()
		return nil, false, err
	}
	return s, true, nil
}

// popIdle returns the most recently used idle session that the device still remembers.
func (p *pool) popIdle() *session {
	p.mu.Lock()
	defer p.mu.Unlock()
	for len(p.idle) > 0 {
		s := p.idle[len(p.idle)-1]
		p.idle = p.idle[:len(p.idle)-1]
		if time.Since(s.used) < idleLimit {
			return s
		}
	}
	return nil
}

// put gives s back; a session that failed, is near yubihsm-go's message limit, or belongs to a
// closed vault is dropped.
func (p *pool) put(s *session, healthy bool) {
	defer p.sem.Release()
	if healthy && !p.v.life.Closed() && s.ch.Counter < p.limit {
		p.mu.Lock()
		p.idle = append(p.idle, s)
		p.mu.Unlock()
		return
	}
	if healthy {
		p.close(s)
	}
}

// close ends s on the device, briefly; a session that cannot be closed expires there anyway.
func (p *pool) close(s *session) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if cmd, err := commands.CreateCloseSessionCommand(); err == nil {
		_, _ = s.send(ctx, cmd)
	}
}

// drain closes every idle session.
func (p *pool) drain() {
	p.mu.Lock()
	idle := p.idle
	p.idle = nil
	p.mu.Unlock()
	for _, s := range idle {
		p.close(s)
	}
}

// open creates and authenticates a session. After the device refused the password or the
// authentication key, it answers the same error for authBackoff without asking again: each
// attempt holds one of the device's 16 sessions until it times out.
func (p *pool) open(ctx context.Context) (*session, error) {
	select {
	case p.opening <- struct{}{}:
		defer func() { <-p.opening }()
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if p.authErr != nil && time.Since(p.authAt) < authBackoff {
		return nil, p.authErr
	}
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	cfg := p.v.cfg
	conn := &httpConn{client: p.v.client, url: cfg.url, ctx: ctx}
	ch, err := securechannel.NewSecureChannel(conn, cfg.authKeyID, cfg.password)
	if err == nil {
		err = authenticate(ch)
	}
	conn.ctx = nil
	if err != nil {
		err, refused := p.v.explainAuth(err)
		if refused {
			p.authErr, p.authAt = err, time.Now()
		}
		return nil, err
	}
	p.authErr = nil
	return &session{ch: ch, conn: conn, used: time.Now()}, nil
}

func authenticate(ch *securechannel.SecureChannel) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("yubihsm-go failed on the device's reply: %v", r)
		}
	}()
	return ch.Authenticate()
}

// explainAuth describes a failed session set-up; refused is true when the device refused the
// credentials. The message never holds the password.
func (v *Vault) explainAuth(err error) (_ error, refused bool) {
	id := v.cfg.authKeyID
	var de *commands.Error
	var ce *connectorError
	switch {
	case errors.As(err, &ce):
		return err, false
	case errors.Is(err, securechannel.ErrAuthCryptogram):
		return fmt.Errorf("authentication key 0x%04x: wrong password (the device's card cryptogram does not match the one derived from it)", id), true
	case errors.As(err, &de) && de.Code == commands.ErrorCodeObjectNotFound:
		return fmt.Errorf("authentication key 0x%04x is not on the device", id), true
	case errors.As(err, &de) && de.Code == commands.ErrorCodeAuthFail:
		return fmt.Errorf("authentication key 0x%04x: the device refused the authentication (wrong password)", id), true
	case errors.As(err, &de) && de.Code == commands.ErrorCodeSessionFull:
		return errors.New("the device has no free session (it has 16 for all its clients); they expire after 30 s of inactivity"), false
	}
	return fmt.Errorf("opening a session with authentication key 0x%04x: %w", id, err), false
}
