// Package server exposes the signer over HTTP: the octez remote-signer API on the signing port
// and /metrics and /healthz on the utility port. It holds no signing logic.
package server

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ecadlabs/gotez/v2/crypt"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/crypto/blake2b"

	"github.com/signatory-go/signatory/internal/blsthreshold"
	"github.com/signatory-go/signatory/internal/fault"
	"github.com/signatory-go/signatory/internal/jwtauth"
	"github.com/signatory-go/signatory/internal/metrics"
	"github.com/signatory-go/signatory/internal/sched"
	"github.com/signatory-go/signatory/internal/signer"
	"github.com/signatory-go/signatory/internal/tezos"
	"github.com/signatory-go/signatory/internal/vault"
)

// Service is what the handlers need from the signer.
type Service interface {
	PublicKey(ctx context.Context, pkh string) (crypt.PublicKey, error)
	Sign(ctx context.Context, r *signer.SignRequest) (*signer.SignResult, error)
	ProvePossession(ctx context.Context, r *signer.PossessionRequest) (crypt.Signature, error)
	// ShareMarks is a threshold member's signed statement of its highest marks on a chain.
	ShareMarks(ctx context.Context, pkh, chain, nonce string) (*blsthreshold.Marks, error)
	// DeterministicNonce and SupportsDeterministicNonces answer octez's nonce requests (sockets).
	DeterministicNonce(ctx context.Context, r *signer.NonceRequest) ([32]byte, error)
	SupportsDeterministicNonces(ctx context.Context, pkh string) (bool, error)
	AuthorizedKeyHashes() []string
	Health(ctx context.Context) map[string]error
	// Known reports whether pkh is a configured key: only those get their own metric labels.
	Known(pkh string) bool
	// Priority reports whether msg, for pkh, is a block or consensus request that may skip the
	// generic queue.
	Priority(pkh string, msg []byte) bool
}

// Config configures the HTTP servers.
type Config struct {
	Address        string
	UtilityAddress string
	MaxBodyBytes   int64
	// MaxGenericInFlight bounds the non-consensus requests signed at once; 0 means every CPU
	// (at least 1).
	MaxGenericInFlight int
	// SpareProc lets Serve add a processor above the cores while consensus and generic requests
	// contend (sched.Spare), and run the generic requests' CPU work on threads of low priority
	// then (sched.Low, with a processor each), unless the GOMAXPROCS environment variable is set
	// or a CPU quota applies. The daemon sets it; tests leave GOMAXPROCS alone.
	SpareProc    bool
	ReadTimeout  time.Duration
	WriteTimeout time.Duration
	IdleTimeout  time.Duration
	// Live is what a reload may change while the server runs (Reconfigure).
	Live
	// Reload, when set with a Live.ReloadToken, serves POST /reload on the utility port.
	Reload func(ctx context.Context) error
	// SocketAddress and UnixSocket, when set, serve octez-signer's socket protocol over TCP
	// and over a Unix socket (internal/socket), through the same signer.
	SocketAddress, UnixSocket string
	// SocketTimeout closes a socket connection that sends no whole request for this long
	// (DefaultSocketTimeout when 0); MaxSocketConns bounds each socket's open connections
	// (DefaultSocketConns when 0).
	SocketTimeout  time.Duration
	MaxSocketConns int
}

// Live is the part of the config a reload applies to a running server (Reconfigure): new
// connections get the new certificates, requests the new JWT users, lists and token.
type Live struct {
	// TLS, when CertFile is set, serves the signing port over HTTPS; ClientCAFile requires
	// client certificates. Whether TLS is on cannot change without a restart.
	CertFile, KeyFile, ClientCAFile string
	// KnownKeys, when not nil, is served by GET /known_keys (the keys listed under tezos:, as
	// octez-signer's --allow-list-known-keys does); nil answers 404.
	KnownKeys []string
	// LogPayloads returns whether raw payloads of pkh are logged at info level.
	LogPayloads func(pkh string) bool
	// JWT, when set, serves POST /login and requires a token on every other route.
	JWT *jwtauth.Auth
	// ReloadToken, when not empty and Config.Reload is set, is the bearer token POST /reload
	// requires.
	ReloadToken string
}

// liveState is a Live made ready to serve: its certificates loaded, its handler built.
type liveState struct {
	Live
	tls     *tls.Config  // the signing port's, nil without TLS
	handler http.Handler // the signing routes behind the JWT middleware, when JWT is on
}

// logs reports whether the raw payloads of pkh are logged (Live.LogPayloads), read from one
// state: a reload between two reads cannot leave a nil function to call.
func (st *liveState) logs(pkh string) bool { return st.LogPayloads != nil && st.LogPayloads(pkh) }

// Server is the signing and utility HTTP servers.
type Server struct {
	cfg      Config
	live     atomic.Pointer[liveState]
	mux      *http.ServeMux // the signing routes
	svc      Service
	m        *metrics.Metrics
	log      *slog.Logger
	stopping atomic.Bool
	reqID    atomic.Uint64
	idPrefix string
	refusals *refusalLimiter
	cpu      *sched.CPU
}

// New builds a Server.
func New(cfg Config, svc Service, m *metrics.Metrics, log *slog.Logger) *Server {
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = 64 << 10
	}
	var b [3]byte
	_, _ = rand.Read(b[:])
	s := &Server{cfg: cfg, svc: svc, m: m, log: log, idPrefix: hex.EncodeToString(b[:]), refusals: newRefusalLimiter(),
		cpu: sched.NewCPU(genericCores(cfg.MaxGenericInFlight), GenericQueue)}
	s.mux = s.signingMux()
	// Certificates are loaded by Listen, which reports their errors; until then, none.
	s.live.Store(s.ready(cfg.Live, nil))
	return s
}

// ready builds the state that serves l, with tc as its TLS config.
func (s *Server) ready(l Live, tc *tls.Config) *liveState {
	st := &liveState{Live: l, tls: tc, handler: s.mux}
	if l.JWT != nil {
		st.handler = l.JWT.Middleware(s.mux)
	}
	return st
}

// Reconfigure applies l to the running server: its certificates are read first, and on an error
// nothing changes. Connections already open keep their certificates; requests already routed
// finish under what they started with. Turning TLS on or off is refused: it needs a restart.
func (s *Server) Reconfigure(l Live) error {
	if (l.CertFile == "") != (s.cfg.CertFile == "") {
		return errors.New("server.tls: turning TLS on or off needs a restart")
	}
	tc, err := loadTLS(l)
	if err != nil {
		return err
	}
	s.live.Store(s.ready(l, tc))
	return nil
}

// GenericQueue is how many requests other than blocks and consensus operations may wait for a
// core; more are refused at once with 503.
const GenericQueue = 64

// spareAllowed reports whether the daemon may add a spare processor (sched.Spare): not when the
// GOMAXPROCS environment variable is set, nor under a CPU quota (a container's CPU limit), where a
// processor more than the quota would get the whole process throttled.
func spareAllowed() bool { return os.Getenv("GOMAXPROCS") == "" && !cpuQuota() }

// cpuQuota reports whether a cgroup (v2 cpu.max, or v1 cpu.cfs_quota_us) limits the process's
// CPU time.
func cpuQuota() bool {
	if b, err := os.ReadFile("/sys/fs/cgroup/cpu.max"); err == nil {
		return !strings.HasPrefix(strings.TrimSpace(string(b)), "max")
	}
	if b, err := os.ReadFile("/sys/fs/cgroup/cpu/cpu.cfs_quota_us"); err == nil {
		return strings.TrimSpace(string(b)) != "-1"
	}
	return false
}

// genericCores is the configured bound, or every CPU: generic requests may use all the cores
// that blocks and consensus operations in flight leave them (see package sched).
func genericCores(n int) int {
	if n > 0 {
		return n
	}
	return runtime.GOMAXPROCS(0)
}

// admit admits a request to the cores (package sched): a block or consensus operation (Priority)
// at once, its context marked so that vault session pools serve it first too; anything else when
// no consensus request is in flight and a core is free, after the generic requests queued before
// it, or errOverloaded; its context is marked so that it yields its core at its next step
// (sched.Yield) while a consensus request is in flight.
func (s *Server) admit(ctx context.Context, pkh string, msg []byte) (context.Context, func(), error) {
	if s.svc.Priority(pkh, msg) {
		return sched.WithConsensus(ctx), s.cpu.Consensus(), nil
	}
	release, err := s.cpu.Generic(ctx)
	if err != nil {
		return ctx, nil, errOverloaded
	}
	return sched.WithGeneric(ctx, s.cpu), release, nil
}

var errOverloaded = fault.New(fault.Unavailable, sched.ErrOverloaded.Error())

// Handler returns the signing port's handler: the signing routes, behind the JWT middleware
// of the current Live config when it has JWT users.
func (s *Server) Handler() http.Handler {
	return cleanPaths(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.live.Load().handler.ServeHTTP(w, r)
	}))
}

func (s *Server) signingMux() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /keys/{pkh}", s.getKey)
	mux.HandleFunc("POST /keys/{pkh}", s.sign)
	mux.HandleFunc("GET /authorized_keys", s.authorizedKeys)
	mux.HandleFunc("GET /known_keys", s.knownKeys)
	mux.HandleFunc("GET /bls_prove_possession/{pkh}", s.provePossession)
	mux.HandleFunc("GET /threshold/marks/{pkh}", s.shareMarks)
	mux.HandleFunc("POST /login", s.login)
	return mux
}

// login serves POST /login when JWT is on, and 404 as any unknown route when it is off.
func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	if a := s.live.Load().JWT; a != nil {
		a.LoginHandler(w, r)
		return
	}
	http.NotFound(w, r)
}

// cleanPaths refuses a path that is not in clean form (dot segments, doubled slashes) with a
// short 400, where the mux would answer with a redirect that echoes the whole path. No client of
// the API sends such paths.
func cleanPaths(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if p := r.URL.Path; p == "" || p[0] != '/' || (p != "/" && path.Clean(p) != p) {
			writeError(w, fault.New(fault.BadRequest, "invalid request path"))
			return
		}
		h.ServeHTTP(w, r)
	})
}

// UtilityHandler returns the utility port's handler.
func (s *Server) UtilityHandler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.m.Registry, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", s.healthz)
	mux.HandleFunc("POST /reload", s.reload)
	return mux
}

// maxReloadBody bounds what POST /reload reads: it takes no body.
const maxReloadBody = 4 << 10

// reload serves POST /reload: with the bearer token of server.reload_token_file, it reloads the
// config (Config.Reload) and answers 200, or 400 with why the new config was refused (the old
// one keeps serving). Without a token configured it is 404, as any unknown route.
func (s *Server) reload(w http.ResponseWriter, r *http.Request) {
	token := s.live.Load().ReloadToken
	if s.cfg.Reload == nil || token == "" {
		http.NotFound(w, r)
		return
	}
	_, _ = io.Copy(io.Discard, http.MaxBytesReader(w, r.Body, maxReloadBody))
	given, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || subtle.ConstantTimeCompare([]byte(given), []byte(token)) != 1 {
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "reload needs the bearer token of server.reload_token_file"})
		return
	}
	if err := s.cfg.Reload(r.Context()); err != nil {
		status := http.StatusBadRequest
		if fault.KindOf(err) == fault.Unavailable {
			status = http.StatusServiceUnavailable
		}
		writeJSON(w, status, map[string]string{"error": err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, map[string]bool{"reloaded": true})
}

type errorBody struct {
	ID   string `json:"id"`
	Kind string `json:"kind"`
	Msg  string `json:"msg"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// writeSignature writes the answer to a signing request, {"signature":"…"}, the bytes writeJSON
// writes for it without its reflection: a signature string is base58, which JSON needs no escape
// for (TestWriteSignatureIsWriteJSON).
func writeSignature(w http.ResponseWriter, sig string) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	b := make([]byte, 0, len(sig)+len(`{"signature":""}`)+1)
	b = append(b, `{"signature":"`...)
	b = append(b, sig...)
	b = append(b, "\"}\n"...)
	_, _ = w.Write(b)
}

// writeError writes the octez error shape: [{"id":"failure","kind":"temporary","msg":"…"}].
func writeError(w http.ResponseWriter, err error) int { return writeErrorID(w, err, "") }

// writeErrorID is writeError for a request with an id. A client error (4xx) carries its message,
// which says what was wrong with the request. A server error (5xx) carries only the kind of
// failure and the request id: the cause (paths, hosts, a backend's own words) stays in the log,
// under that id.
func writeErrorID(w http.ResponseWriter, err error, id string) int {
	status := fault.Status(err)
	writeJSON(w, status, []errorBody{{ID: "failure", Kind: "temporary", Msg: errorMessage(err, id)}})
	return status
}

// errorMessage is what a client is told of err, over HTTP and the sockets alike.
func errorMessage(err error, id string) string {
	if fault.Status(err) < 500 {
		return err.Error()
	}
	msg := clientMessage(err)
	if id != "" {
		msg += " (request " + id + ")"
	}
	return msg
}

// clientMessage is the kind of a server failure, as a client may see it.
func clientMessage(err error) string {
	if msg, ok := fault.ClientMsg(err); ok {
		return msg
	}
	switch {
	case errors.Is(err, vault.ErrBLSVersion0):
		return vault.ErrBLSVersion0.Error()
	case errors.Is(err, errOverloaded):
		return errOverloaded.Error()
	case fault.KindOf(err) == fault.Unavailable:
		return "service unavailable"
	}
	return "signing failed: vault error"
}

func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

func (s *Server) getKey(w http.ResponseWriter, r *http.Request) {
	pub, err := s.svc.PublicKey(r.Context(), r.PathValue("pkh"))
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"public_key": pub.String()})
}

func (s *Server) authorizedKeys(w http.ResponseWriter, r *http.Request) {
	keys := s.svc.AuthorizedKeyHashes()
	if keys == nil {
		writeJSON(w, http.StatusOK, struct{}{})
		return
	}
	writeJSON(w, http.StatusOK, map[string][]string{"authorized_keys": keys})
}

// knownKeys answers {"known_keys": [pkh…]} when listing is allowed, 404 otherwise (as octez).
func (s *Server) knownKeys(w http.ResponseWriter, r *http.Request) {
	known := s.live.Load().KnownKeys
	if known == nil {
		writeError(w, fault.New(fault.NotFound, "listing the known keys is not allowed (server.allow_list_known_keys)"))
		return
	}
	writeJSON(w, http.StatusOK, map[string][]string{"known_keys": known})
}

func (s *Server) provePossession(w http.ResponseWriter, r *http.Request) {
	pkh := r.PathValue("pkh")
	q := r.URL.Query()
	proof, err := s.svc.ProvePossession(r.Context(), &signer.PossessionRequest{PKH: pkh, BLSPK: q.Get("bls_pk"),
		Authentication: q.Get("authentication"), ClientIP: clientIP(r), JWTUser: jwtauth.UserFrom(r.Context())})
	if err != nil {
		status := writeError(w, err)
		if ok, _ := s.refusals.allow(clientIP(r), status, err.Error()); ok {
			if len(pkh) > 40 {
				pkh = pkh[:40] + "…"
			}
			s.log.Info("proof of possession refused", "pkh", pkh, "client", clientIP(r), "status", status, "err", err.Error())
		}
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"bls_prove_possession": proof.String()})
}

// shareMarks answers another member of a threshold group with this member's highest marks
// (docs/threshold.md, "A member's history").
func (s *Server) shareMarks(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	m, err := s.svc.ShareMarks(r.Context(), r.PathValue("pkh"), q.Get("chain"), q.Get("nonce"))
	if err != nil {
		status := writeError(w, err)
		if ok, _ := s.refusals.allow(clientIP(r), status, err.Error()); ok {
			s.log.Info("marks statement refused", "client", clientIP(r), "status", status, "err", err.Error())
		}
		return
	}
	writeJSON(w, http.StatusOK, m)
}

// parseVersion reads the signing version from the query: exactly "0", "1", "2" or "3", or, when
// the parameter is absent, the latest (3). Anything else (an empty value, "4", "-1", "02", two
// values) is refused, as octez-signer refuses it ("Invalid signature version"), never taken
// for the latest: a client that names a version it does not get would be misled.
func parseVersion(q url.Values) (int, error) {
	vs, ok := q["version"]
	if !ok {
		return tezos.VersionLatest, nil
	}
	if len(vs) == 1 && len(vs[0]) == 1 && vs[0][0] >= '0' && vs[0][0] <= '0'+tezos.MaxVersion {
		return int(vs[0][0] - '0'), nil
	}
	what := "the version parameter is given more than once"
	if len(vs) == 1 {
		v := vs[0]
		if len(v) > 16 {
			v = v[:16] + "…"
		}
		what = fmt.Sprintf("%q", v)
	}
	return 0, fault.New(fault.BadRequest, fmt.Sprintf("invalid signature version %s: version must be 0, 1, 2 or 3 (3, the latest, when absent)", what))
}

// priorityBody is the longest body read before admission: a JSON hex string of
// signer.MaxPriorityBytes, with room for whitespace. A longer body cannot be a block or consensus
// operation, so it waits for a core before the rest of it is read and decoded.
const priorityBody = 2*signer.MaxPriorityBytes + 64

// readAdmitted reads the JSON hex string body and admits the request to the cores (admit): a body
// longer than priorityBody as a generic request before its tail is read, any other once decoded.
// It returns the message, the context to sign with and the release of the admission (nil on error).
func (s *Server) readAdmitted(w http.ResponseWriter, r *http.Request, pkh string) ([]byte, context.Context, func(), error) {
	body := http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes)
	head := make([]byte, priorityBody+1)
	n, err := io.ReadFull(body, head)
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		msg, err := decodeMessage(head[:n])
		if err != nil {
			return nil, nil, nil, err
		}
		ctx, release, err := s.admit(r.Context(), pkh, msg)
		return msg, ctx, release, err
	}
	if err != nil {
		return nil, nil, nil, readError(err)
	}
	release, err := s.cpu.Generic(r.Context())
	if err != nil {
		return nil, nil, nil, errOverloaded
	}
	rest, err := io.ReadAll(body)
	if err != nil {
		release()
		return nil, nil, nil, readError(err)
	}
	msg, err := decodeMessage(append(head, rest...))
	if err != nil {
		release()
		return nil, nil, nil, err
	}
	return msg, sched.WithGeneric(r.Context(), s.cpu), release, nil
}

func readError(err error) error {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return fault.New(fault.TooLarge, fmt.Sprintf("request body is larger than %d bytes", mbe.Limit))
	}
	return fault.Wrap(fault.BadRequest, fmt.Errorf("cannot read request body: %w", err))
}

// decodeMessage decodes a body, a JSON string of hex. A body that is a quote, hex digits and a
// quote, as every client sends, is that JSON string as it stands: it is decoded without
// encoding/json; anything else goes through encoding/json (FuzzDecodeMessage compares the two).
func decodeMessage(body []byte) ([]byte, error) {
	if n := len(body); n >= 2 && body[0] == '"' && body[n-1] == '"' && n%2 == 0 {
		msg := make([]byte, (n-2)/2)
		if _, err := hex.Decode(msg, body[1:n-1]); err == nil {
			return msg, nil
		}
	}
	return decodeMessageJSON(body)
}

// decodeMessageJSON is decodeMessage through encoding/json.
func decodeMessageJSON(body []byte) ([]byte, error) {
	var hexStr string
	if err := json.Unmarshal(body, &hexStr); err != nil {
		return nil, fault.Wrap(fault.BadRequest, err)
	}
	msg, err := hex.DecodeString(hexStr)
	if err != nil {
		return nil, fault.Wrap(fault.BadRequest, err)
	}
	return msg, nil
}

func (s *Server) sign(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	pkh := r.PathValue("pkh")
	id := s.idPrefix + "-" + strconv.FormatUint(s.reqID.Add(1), 10)
	ip := clientIP(r)
	var (
		res    *signer.SignResult
		status int
		err    error
	)
	q := r.URL.Query()
	version, err := parseVersion(q)
	var msg []byte
	ctx := r.Context()
	if err == nil {
		// Blocks and consensus operations go at once; everything else (generic operations,
		// packed data, garbage, and bodies that only start like a consensus payload: see
		// Priority) waits for a core, so that a flood of them cannot delay a baker's
		// attestations; past the queue it is refused at once. A body too long to be a consensus
		// payload waits before its tail is read and decoded.
		var release func()
		if msg, ctx, release, err = s.readAdmitted(w, r, pkh); err == nil {
			defer release()
		}
	}
	if err == nil {
		res, err = s.svc.Sign(ctx, &signer.SignRequest{PKH: pkh, Message: msg, Version: version,
			Authentication: q.Get("authentication"), ClientIP: ip, JWTUser: jwtauth.UserFrom(r.Context())})
	}
	if err != nil {
		status = writeErrorID(w, err, id)
	} else {
		status = http.StatusOK
		writeSignature(w, res.SignatureString())
	}
	elapsed := time.Since(start)
	address := pkh
	if !s.svc.Known(pkh) {
		address = "unknown" // the path is the client's: only configured keys get their own series
	}
	st := strconv.Itoa(status)
	s.m.SignHandlerRequests.WithLabelValues(address, st).Inc()
	s.m.SignHandlerDuration.WithLabelValues(address, st).Observe(float64(elapsed.Microseconds()) / 1000)
	s.logSign(id, pkh, ip, msg, res, status, elapsed, err)
}

// logText is err for the log: its client message and, when that hides it, its cause.
func logText(err error) string {
	var fe *fault.Error
	if errors.As(err, &fe) && fe.Msg != "" && fe.Err != nil && !strings.Contains(fe.Msg, fe.Err.Error()) {
		return err.Error() + ": " + fe.Err.Error()
	}
	return err.Error()
}

// Log bounds: a refused payload is logged as its first logPrefixBytes bytes and its digest; a
// path longer than a key hash is cut.
const logPrefixBytes = 32

func (s *Server) logSign(id, pkh, ip string, msg []byte, res *signer.SignResult, status int, elapsed time.Duration, err error) {
	level := slog.LevelInfo
	if status >= 500 {
		level = slog.LevelError
	} else if status >= 400 {
		level = slog.LevelWarn
	}
	if !s.log.Enabled(context.Background(), level) {
		return
	}
	suppressed := 0
	if err != nil {
		ok, n := s.refusals.allow(ip, status, err.Error())
		if !ok {
			return
		}
		suppressed = n
	}
	if len(pkh) > 40 {
		pkh = pkh[:40] + "…"
	}
	attrs := []slog.Attr{slog.String("request_id", id), slog.String("pkh", pkh), slog.String("client", ip),
		slog.Int("status", status), slog.Duration("duration", elapsed)}
	if res != nil {
		if res.Client != "" {
			attrs = append(attrs, slog.String("client_pkh", res.Client))
		}
		if req := res.Request; req != nil {
			attrs = append(attrs, slog.String("kind", string(req.Kind)))
			if req.Watermarked() {
				attrs = append(attrs, slog.String("chain", req.ChainID()), slog.Int("level", int(req.Level)), slog.Int("round", int(req.Round)))
			} else if len(req.Ops) > 0 {
				ops := req.Ops
				if len(ops) > 16 {
					ops = ops[:16]
				}
				attrs = append(attrs, slog.Any("ops", ops))
			}
		}
		if res.Vault != "" {
			attrs = append(attrs, slog.String("vault", res.Vault))
		}
	}
	switch {
	case msg != nil && err != nil:
		// Before authentication anything can arrive here: a prefix and the digest identify it.
		d := blake2b.Sum256(msg)
		attrs = append(attrs, slog.String("raw_prefix", hex.EncodeToString(msg[:min(len(msg), logPrefixBytes)])),
			slog.Int("raw_len", len(msg)), slog.String("raw_digest", hex.EncodeToString(d[:])))
	case msg != nil && s.live.Load().logs(pkh):
		// Signed, so authenticated (when authentication is on) and for a configured key.
		attrs = append(attrs, slog.String("raw", hex.EncodeToString(msg)))
	}
	text := "signed"
	if err != nil {
		e := logText(err)
		if len(e) > 1000 {
			e = e[:1000] + "…"
		}
		attrs = append(attrs, slog.String("err", e))
		text = "sign refused"
		if suppressed > 0 {
			attrs = append(attrs, slog.Int("similar_refusals_not_logged", suppressed))
		}
	}
	s.log.LogAttrs(context.Background(), level, text, attrs...)
}

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	if s.stopping.Load() {
		writeJSON(w, http.StatusServiceUnavailable, map[string]any{"ready": false, "error": "shutting down"})
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	// The utility port answers anyone who reaches it: each check says "ok" or a short stable
	// reason (fault.ReasonOf); what failed, with paths and the backend's words, is logged under
	// the id the body carries.
	checks := map[string]string{}
	var id string
	for name, err := range s.svc.Health(ctx) {
		if err == nil {
			checks[name] = "ok"
			continue
		}
		if id == "" {
			id = s.idPrefix + "-" + strconv.FormatUint(s.reqID.Add(1), 10)
		}
		checks[name] = fault.ReasonOf(err)
		s.log.Error("readiness check failed", slog.String("request_id", id), slog.String("check", name),
			slog.String("reason", checks[name]), slog.String("err", err.Error()))
	}
	if id != "" {
		writeJSON(w, http.StatusServiceUnavailable, map[string]any{"ready": false, "checks": checks, "id": id})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"ready": true, "checks": checks})
}

// loadTLS reads l's certificate, key and client CAs; nil when l has no TLS.
func loadTLS(l Live) (*tls.Config, error) {
	if l.CertFile == "" {
		return nil, nil
	}
	cert, err := tls.LoadX509KeyPair(l.CertFile, l.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("server.tls: %w", err)
	}
	tc := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12, NextProtos: []string{"h2", "http/1.1"}}
	if l.ClientCAFile != "" {
		pem, err := os.ReadFile(l.ClientCAFile)
		if err != nil {
			return nil, fmt.Errorf("server.tls.client_ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, errors.New("server.tls.client_ca_file: no PEM certificate found")
		}
		tc.ClientCAs, tc.ClientAuth = pool, tls.RequireAndVerifyClientCert
	}
	return tc, nil
}

// Listeners holds the bound sockets, so that callers (and tests) can learn the real ports.
// Socket and Unix are nil unless configured.
type Listeners struct {
	Sign, Utility, Socket, Unix net.Listener
}

func (l *Listeners) close() {
	for _, x := range []net.Listener{l.Sign, l.Utility, l.Socket, l.Unix} {
		if x != nil {
			x.Close()
		}
	}
}

// Listen loads the TLS certificates and binds both ports, and the socket transports when
// configured.
func (s *Server) Listen() (*Listeners, error) {
	tc, err := loadTLS(s.cfg.Live)
	if err != nil {
		return nil, err
	}
	s.live.Store(s.ready(s.cfg.Live, tc))
	l := &Listeners{}
	if l.Sign, err = net.Listen("tcp", s.cfg.Address); err != nil {
		return nil, fmt.Errorf("signing port: %w", err)
	}
	if l.Utility, err = net.Listen("tcp", s.cfg.UtilityAddress); err != nil {
		l.close()
		return nil, fmt.Errorf("utility port: %w", err)
	}
	if s.cfg.SocketAddress != "" {
		if l.Socket, err = net.Listen("tcp", s.cfg.SocketAddress); err != nil {
			l.close()
			return nil, fmt.Errorf("server.socket_address: %w", err)
		}
	}
	if s.cfg.UnixSocket != "" {
		if l.Unix, err = listenUnix(s.cfg.UnixSocket); err != nil {
			l.close()
			return nil, err
		}
	}
	return l, nil
}

// Serve serves on l until ctx is done, then shuts down gracefully: in-flight requests finish
// (up to 10 s) before Serve returns.
func (s *Server) Serve(ctx context.Context, l *Listeners) error {
	var tc *tls.Config
	if s.cfg.CertFile != "" {
		// Each handshake takes the certificates of the config in force (Reconfigure rotates them).
		tc = &tls.Config{MinVersion: tls.VersionTLS12, GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			return s.live.Load().tls, nil
		}}
	}
	if s.cfg.SpareProc && spareAllowed() {
		cores, extra := runtime.GOMAXPROCS(0), 1
		low, err := sched.StartLow(cores, sched.LowerBy)
		if err != nil {
			s.log.Warn("generic requests keep the normal thread priority while consensus requests contend", "err", err)
		} else {
			extra += cores
			defer low.Stop() // after spare.Stop: Run after it runs in the caller
			s.log.Info("while consensus requests contend, generic signing runs on threads of lower priority",
				"threads", cores, "nice_added", sched.LowerBy)
		}
		spare := sched.NewSpare(cores, extra, runtime.GOMAXPROCS)
		s.cpu.OnContention(spare.Contend)
		if low != nil {
			s.cpu.SetLow(low, spare.Raised)
		}
		defer spare.Stop()
	}
	main := &http.Server{Handler: s.Handler(), ReadTimeout: s.cfg.ReadTimeout, ReadHeaderTimeout: s.cfg.ReadTimeout,
		WriteTimeout: s.cfg.WriteTimeout, IdleTimeout: s.cfg.IdleTimeout, MaxHeaderBytes: 64 << 10, TLSConfig: tc,
		ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelWarn)}
	util := &http.Server{Handler: s.UtilityHandler(), ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 10 * time.Second,
		WriteTimeout: 30 * time.Second, IdleTimeout: s.cfg.IdleTimeout}
	errc := make(chan error, 4)
	go func() {
		if tc != nil {
			errc <- main.ServeTLS(l.Sign, "", "")
		} else {
			errc <- main.Serve(l.Sign)
		}
	}()
	go func() { errc <- util.Serve(l.Utility) }()
	var sockets []*socketServer
	attrs := []any{"address", l.Sign.Addr().String(), "utility_address", l.Utility.Addr().String(), "tls", tc != nil}
	for _, x := range []struct {
		transport string
		ln        net.Listener
	}{{"tcp", l.Socket}, {"unix", l.Unix}} {
		if x.ln == nil {
			continue
		}
		ss := s.newSocketServer(x.transport, x.ln)
		sockets = append(sockets, ss)
		go func() { errc <- ss.serve() }()
		attrs = append(attrs, x.transport+"_socket", x.ln.Addr().String())
	}
	s.log.Info("signer listening", attrs...)
	select {
	case <-ctx.Done():
	case err := <-errc:
		if err != nil && !errors.Is(err, http.ErrServerClosed) {
			main.Close()
			util.Close()
			sctx, cancel := context.WithTimeout(context.Background(), 0)
			defer cancel()
			for _, ss := range sockets {
				ss.shutdown(sctx)
			}
			return err
		}
	}
	s.stopping.Store(true)
	s.log.Info("shutting down: finishing in-flight requests")
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for _, ss := range sockets {
		wg.Go(func() { ss.shutdown(sctx) })
	}
	err1 := main.Shutdown(sctx)
	err2 := util.Shutdown(sctx)
	wg.Wait()
	return errors.Join(err1, err2)
}

// IsLoopback reports whether a listen address binds only loopback interfaces.
func IsLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
