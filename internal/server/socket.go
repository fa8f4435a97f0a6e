package server

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"sync"
	"syscall"
	"time"

	tz "github.com/ecadlabs/gotez/v2"

	"github.com/signatory-go/signatory/internal/fault"
	"github.com/signatory-go/signatory/internal/signer"
	"github.com/signatory-go/signatory/internal/socket"
	"github.com/signatory-go/signatory/internal/tezos"
)

// Socket transport defaults: octez-signer closes a connection that sends nothing for 8 s, and so
// do we; the connection limit bounds the descriptors and goroutines idle clients can hold.
const (
	DefaultSocketTimeout = 8 * time.Second
	DefaultSocketConns   = 256
)

// socketServer serves one socket transport ("tcp" or "unix") on a listener.
type socketServer struct {
	s         *Server
	transport string
	ln        net.Listener
	slots     chan struct{}
	wg        sync.WaitGroup
	mu        sync.Mutex
	conns     map[net.Conn]bool // true while a request is being answered
	closing   bool
}

func (s *Server) newSocketServer(transport string, ln net.Listener) *socketServer {
	n := s.cfg.MaxSocketConns
	if n <= 0 {
		n = DefaultSocketConns
	}
	return &socketServer{s: s, transport: transport, ln: ln, slots: make(chan struct{}, n), conns: map[net.Conn]bool{}}
}

func (s *Server) socketTimeout() time.Duration {
	if s.cfg.SocketTimeout > 0 {
		return s.cfg.SocketTimeout
	}
	return DefaultSocketTimeout
}

// serve accepts connections until the listener is closed. A connection past the limit is closed
// at once (counted); each other one is served by its own goroutine.
func (ss *socketServer) serve() error {
	var delay time.Duration
	for {
		c, err := ss.ln.Accept()
		if err != nil {
			ss.mu.Lock()
			closing := ss.closing
			ss.mu.Unlock()
			if closing {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) {
				// Out of descriptors or a transient failure: back off rather than spin.
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				time.Sleep(delay)
				continue
			}
			return err
		}
		delay = 0
		select {
		case ss.slots <- struct{}{}:
		default:
			ss.s.m.SocketRefused.WithLabelValues(ss.transport, "connection_limit").Inc()
			c.Close()
			continue
		}
		ss.mu.Lock()
		if ss.closing {
			ss.mu.Unlock()
			<-ss.slots
			c.Close()
			continue
		}
		ss.conns[c] = false
		ss.wg.Add(1)
		ss.mu.Unlock()
		go ss.handle(c)
	}
}

// shutdown stops accepting, closes the connections waiting for a request, lets those answering
// one finish (until ctx ends, then closes them too) and removes a Unix socket's file.
func (ss *socketServer) shutdown(ctx context.Context) {
	ss.mu.Lock()
	ss.closing = true
	for c, busy := range ss.conns {
		if !busy {
			_ = c.SetReadDeadline(time.Now()) // wakes the read; the handler closes it
		}
	}
	ss.mu.Unlock()
	ss.ln.Close()
	done := make(chan struct{})
	go func() { ss.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		ss.mu.Lock()
		for c := range ss.conns {
			c.Close()
		}
		ss.mu.Unlock()
		<-done
	}
}

// setBusy marks c as answering a request (or waiting for one); it reports false when the server
// is closing: c then takes no further request.
func (ss *socketServer) setBusy(c net.Conn, busy bool) bool {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.closing {
		return false
	}
	ss.conns[c] = busy
	return true
}

func (ss *socketServer) handle(c net.Conn) {
	m := ss.s.m
	m.SocketConnections.WithLabelValues(ss.transport).Inc()
	defer func() {
		ss.mu.Lock()
		delete(ss.conns, c)
		ss.mu.Unlock()
		c.Close()
		m.SocketConnections.WithLabelValues(ss.transport).Dec()
		<-ss.slots
		ss.wg.Done()
	}()
	client := "unix"
	if ss.transport == "tcp" {
		if host, _, err := net.SplitHostPort(c.RemoteAddr().String()); err == nil {
			client = host
		}
	}
	timeout := ss.s.socketTimeout()
	buf := make([]byte, 0, 512)
	var out []byte
	for {
		// One deadline for the whole frame: an idle client, or one that sends a frame slowly,
		// is cut off after the timeout, as octez-signer does.
		_ = c.SetReadDeadline(time.Now().Add(timeout))
		if !ss.setBusy(c, false) { // closing: shutdown may have set its deadline before this one
			return
		}
		payload, err := socket.ReadFrame(c, buf)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				m.SocketRefused.WithLabelValues(ss.transport, "timeout").Inc()
			}
			return
		}
		if !ss.setBusy(c, true) {
			return
		}
		resp := ss.s.answer(payload, ss.transport, client)
		ss.setBusy(c, false)
		if resp == nil {
			m.SocketRefused.WithLabelValues(ss.transport, "malformed").Inc()
			return // a request that does not decode: octez-signer closes without answering
		}
		if out, err = socket.AppendFrame(out[:0], resp); err != nil {
			ss.s.log.Error("socket answer too large", "transport", ss.transport, "err", err)
			return
		}
		_ = c.SetWriteDeadline(time.Now().Add(timeout))
		if _, err := c.Write(out); err != nil {
			return
		}
	}
}

// answer handles one request's payload and returns the response's payload, or nil when the
// request does not decode. Every request goes through the same signer as over HTTP.
func (s *Server) answer(payload []byte, transport, client string) []byte {
	start := time.Now()
	req, err := socket.DecodeRequest(payload)
	if err != nil {
		if ok, _ := s.refusals.allow(client, 400, err.Error()); ok {
			s.log.Info("socket request refused", "transport", transport, "client", client, "err", err.Error())
		}
		return nil
	}
	ctx := context.Background()
	kind := socket.TagName(req.Tag)
	pkh := ""
	if req.PKH != nil {
		pkh = req.PKH.String()
	}
	var result [][]byte
	id := ""
	switch req.Tag {
	case socket.TagSign:
		id = s.idPrefix + "-" + strconv.FormatUint(s.reqID.Add(1), 10)
		result, err = s.socketSign(ctx, req, id, pkh, client, transport, start)
	case socket.TagPublicKey:
		var pub []byte
		if p, perr := s.svc.PublicKey(ctx, pkh); perr != nil {
			err = perr
		} else if pub, err = socket.PublicKey(p); err == nil {
			result = [][]byte{pub}
		}
	case socket.TagAuthorizedKeys:
		result, err = pkhList(s.svc.AuthorizedKeyHashes(), true)
	case socket.TagKnownKeys:
		if known := s.live.Load().KnownKeys; known == nil {
			err = fault.New(fault.Forbidden, "List known keys request not allowed.")
		} else {
			result, err = pkhList(known, false)
		}
	case socket.TagDeterministicNonce, socket.TagDeterministicNonceHash:
		var n [32]byte
		n, err = s.svc.DeterministicNonce(ctx, &signer.NonceRequest{PKH: pkh, Data: req.Data, AuthSignature: req.Auth,
			ClientIP: client, Hash: req.Tag == socket.TagDeterministicNonceHash})
		if err == nil {
			result = [][]byte{socket.Bytes(n[:])}
		}
	case socket.TagSupportsDeterministicNonces:
		var ok bool
		if ok, err = s.svc.SupportsDeterministicNonces(ctx, pkh); err == nil {
			result = [][]byte{socket.Bool(ok)}
		}
	case socket.TagProvePossession:
		r := &signer.PossessionRequest{PKH: pkh, ClientIP: client}
		if req.Override != nil {
			r.BLSPK = req.Override.String()
		}
		if proof, perr := s.svc.ProvePossession(ctx, r); perr != nil {
			err = perr
		} else {
			var b []byte
			if b, err = socket.Signature(proof); err == nil {
				result = [][]byte{b}
			}
		}
	}
	status := 200
	if err != nil {
		status = fault.Status(err)
	}
	s.m.SocketRequests.WithLabelValues(transport, kind, strconv.Itoa(status)).Inc()
	if err != nil {
		if req.Tag != socket.TagSign { // a signature's outcome is logged by logSign
			if ok, _ := s.refusals.allow(client, status, err.Error()); ok {
				s.log.Info("socket request refused", "transport", transport, "request", kind, "pkh", pkh, "client", client, "status", status, "err", logText(err))
			}
		}
		return socket.Error(errorMessage(err, id))
	}
	return socket.OK(result...)
}

// socketSign is a Sign request: the same admission, signer, metrics and log as POST /keys.
func (s *Server) socketSign(ctx context.Context, req *socket.Request, id, pkh, client, transport string, start time.Time) ([][]byte, error) {
	version := req.Version
	if version < 0 {
		version = tezos.VersionLatest
	}
	ctx, release, err := s.admit(ctx, pkh, req.Data)
	if err == nil {
		defer release()
	}
	var res *signer.SignResult
	if err == nil {
		res, err = s.svc.Sign(ctx, &signer.SignRequest{PKH: pkh, Message: req.Data, Version: version,
			AuthSignature: req.Auth, ClientIP: client})
	}
	var out []byte
	if err == nil {
		out, err = socket.Signature(res.Signature)
	}
	status := 200
	if err != nil {
		status = fault.Status(err)
	}
	elapsed := time.Since(start)
	address := pkh
	if !s.svc.Known(pkh) {
		address = "unknown"
	}
	st := strconv.Itoa(status)
	s.m.SignHandlerRequests.WithLabelValues(address, st).Inc()
	s.m.SignHandlerDuration.WithLabelValues(address, st).Observe(float64(elapsed.Microseconds()) / 1000)
	s.logSign(id, pkh, client+" ("+transport+")", req.Data, res, status, elapsed, err)
	if err != nil {
		return nil, err
	}
	return [][]byte{out}, nil
}

// pkhList is an Authorized_keys answer (withTag: 0x00 when nil, none required; else 0x01 and the
// list) or a Known_keys answer (the list).
func pkhList(pkhs []string, withTag bool) ([][]byte, error) {
	if withTag && pkhs == nil {
		return [][]byte{{0x00}}, nil
	}
	var parsed []tz.PublicKeyHash
	for _, p := range pkhs {
		h, err := tezos.ParsePublicKeyHash(p)
		if err != nil {
			return nil, err
		}
		parsed = append(parsed, h)
	}
	list, err := socket.PKHList(parsed)
	if err != nil {
		return nil, err
	}
	if withTag {
		return [][]byte{{0x01}, list}, nil
	}
	return [][]byte{list}, nil
}

// listenUnix binds a Unix socket at path, safely: a symlink there, a file that is not a
// socket, one owned by another user or one a process still listens on is refused; a stale
// socket of ours is removed. The socket is created with mode 0600 (the umask is narrowed while
// it is bound), so only this user may connect.
func listenUnix(path string) (net.Listener, error) {
	if fi, err := os.Lstat(path); err == nil {
		switch {
		case fi.Mode()&os.ModeSymlink != 0:
			return nil, fmt.Errorf("server.unix_socket %s is a symbolic link: refusing it", path)
		case fi.Mode()&os.ModeSocket == 0:
			return nil, fmt.Errorf("server.unix_socket %s exists and is not a socket: refusing to remove it", path)
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) != os.Geteuid() {
			return nil, fmt.Errorf("server.unix_socket %s is owned by user %d, not this one (%d): refusing it", path, st.Uid, os.Geteuid())
		}
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return nil, fmt.Errorf("server.unix_socket %s: another process listens on it", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("server.unix_socket: removing the stale socket: %w", err)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("server.unix_socket: %w", err)
	}
	old := syscall.Umask(0o177)
	ln, err := net.Listen("unix", path)
	syscall.Umask(old)
	if err != nil {
		return nil, fmt.Errorf("server.unix_socket: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("server.unix_socket: %w", err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(true)
	return ln, nil
}
