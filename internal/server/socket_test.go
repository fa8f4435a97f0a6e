package server

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	tz "github.com/ecadlabs/gotez/v2"
	"github.com/ecadlabs/gotez/v2/crypt"

	"github.com/signatory-go/signatory/internal/metrics"
	"github.com/signatory-go/signatory/internal/policy"
	"github.com/signatory-go/signatory/internal/request/requesttest"
	"github.com/signatory-go/signatory/internal/signer"
	"github.com/signatory-go/signatory/internal/socket"
	tv "github.com/signatory-go/signatory/internal/testvectors"
	"github.com/signatory-go/signatory/internal/tezos"
	"github.com/signatory-go/signatory/internal/vault"
	vaultmem "github.com/signatory-go/signatory/internal/vault/mem"
	wmmem "github.com/signatory-go/signatory/internal/watermark/mem"
)

// sockEnv is a whole server (HTTP and both socket transports) over one signer.
type sockEnv struct {
	http, tcp, unix string
	m               *metrics.Metrics
}

func newSockEnv(t *testing.T, cfg Config, auth []crypt.PublicKey) *sockEnv {
	t.Helper()
	v := vaultmem.NewFromKeys("mem", mustKey(t, tv.K1SK), mustKey(t, tv.K4SK), mustKey(t, tv.K5SK), mustKey(t, tv.K6SK), mustKey(t, tv.K7SK))
	consensus := "allow: {block: , preattestation: , attestation: , generic: [transaction]}\n"
	pols := map[string]*policy.Policy{
		tv.K1PKH: mustPolicy(t, tv.K1PKH, consensus+"allow_deterministic_nonce: true"),
		tv.K4PKH: mustPolicy(t, tv.K4PKH, consensus), // no deterministic nonces
		tv.K5PKH: mustPolicy(t, tv.K5PKH, consensus+"allow_deterministic_nonce: true"),
		tv.K6PKH: mustPolicy(t, tv.K6PKH, consensus+"allow_deterministic_nonce: true"),
		tv.K7PKH: mustPolicy(t, tv.K7PKH, consensus+"allow_deterministic_nonce: true\nallow_proof_of_possession: true"),
	}
	m := metrics.New("test")
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	s, err := signer.New(context.Background(), signer.Config{Vaults: []vault.Vault{v}, Policies: pols, Store: wmmem.NewStore(),
		AuthorizedKeys: auth, Observer: m, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	cfg.Address, cfg.UtilityAddress, cfg.SocketAddress = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
	cfg.UnixSocket = filepath.Join(t.TempDir(), "signer.sock")
	ls, stop := serveAll(t, New(cfg, s, m, log))
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Error(err)
		}
		if _, err := os.Lstat(cfg.UnixSocket); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("the Unix socket is left behind after the server stopped: %v", err)
		}
	})
	return &sockEnv{http: "http://" + ls.Sign.Addr().String(), tcp: ls.Socket.Addr().String(), unix: cfg.UnixSocket, m: m}
}

// serveAll binds srv's ports and serves them until stop is called or the test ends; stop
// returns Serve's error (the same one however often it is called).
func serveAll(tb testing.TB, srv *Server) (*Listeners, func() error) {
	tb.Helper()
	ls, err := srv.Listen()
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ls) }()
	stop := sync.OnceValue(func() error { cancel(); return <-done })
	tb.Cleanup(func() { _ = stop() })
	return ls, stop
}

// sockClient speaks the socket protocol from the client's side, written here from octez's
// client (src/lib_signer_backends/unix/socket.ml): one frame out, one frame in.
type sockClient struct {
	t *testing.T
	c net.Conn
}

func dial(t *testing.T, network, addr string) *sockClient {
	t.Helper()
	c, err := net.Dial(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &sockClient{t: t, c: c}
}

// ask sends payload and returns the answer's payload, or the error that ended the exchange.
func (c *sockClient) ask(payload []byte) ([]byte, error) {
	f, err := socket.AppendFrame(nil, payload)
	if err != nil {
		return nil, err
	}
	if _, err := c.c.Write(f); err != nil {
		return nil, err
	}
	return socket.ReadFrame(c.c, nil)
}

func (c *sockClient) must(payload []byte) []byte {
	c.t.Helper()
	out, err := c.ask(payload)
	if err != nil {
		c.t.Fatal(err)
	}
	return out
}

func pkh21(t *testing.T, pkh string) []byte {
	t.Helper()
	h, err := tezos.ParsePublicKeyHash(pkh)
	if err != nil {
		t.Fatal(err)
	}
	b, err := socket.PKH(h)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func u32(n int) []byte { return binary.BigEndian.AppendUint32(nil, uint32(n)) }

// signReq is a Sign request: tz1–tz3 as pkh_encoding's cases 0–2, tz4 as case 3 with version.
func signReq(t *testing.T, pkh string, version int, data []byte, auth []byte) []byte {
	out := []byte{socket.TagSign}
	if strings.HasPrefix(pkh, "tz4") {
		out = append(append(append(out, 0x03), pkh21(t, pkh)...), byte(version))
	} else {
		out = append(out, pkh21(t, pkh)...)
	}
	out = append(append(append(out, u32(len(data))...), data...), auth...)
	return out
}

func errMsg(t *testing.T, resp []byte) string {
	t.Helper()
	if len(resp) == 0 || resp[0] != 0x01 {
		t.Fatalf("not an error: %x", resp)
	}
	i := bytes.Index(resp, []byte("msg\x00"))
	if i < 0 {
		t.Fatalf("no msg: %x", resp)
	}
	n := int(binary.LittleEndian.Uint32(resp[i+4:]))
	return string(resp[i+8 : i+8+n-1])
}

func httpSign(t *testing.T, e *sockEnv, pkh string, msg []byte) (int, string) {
	t.Helper()
	resp, err := http.Post(e.http+"/keys/"+pkh, "application/json", strings.NewReader(`"`+hex.EncodeToString(msg)+`"`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var out struct{ Signature string }
	_ = json.Unmarshal(b, &out)
	if out.Signature != "" {
		return resp.StatusCode, out.Signature
	}
	return resp.StatusCode, string(b)
}

// TestSocketTransports: over TCP and over the Unix socket, every request kind answers as
// octez-signer's do, through the signer of the HTTP port: the same keys, the same watermarks
// (a slot signed over one transport is refused over another, byte-identical bytes get the stored
// signature), the same policy.
func TestSocketTransports(t *testing.T) {
	e := newSockEnv(t, Config{Live: Live{KnownKeys: []string{tv.K1PKH, tv.K7PKH}}}, nil)
	chain := "7a06a770"
	for i, tr := range []struct{ network, addr string }{{"tcp", e.tcp}, {"unix", e.unix}} {
		t.Run(tr.network, func(t *testing.T) {
			c := dial(t, tr.network, tr.addr)
			// Authorized_keys: none required.
			if got := c.must([]byte{socket.TagAuthorizedKeys}); !bytes.Equal(got, []byte{0, 0}) {
				t.Fatalf("authorized_keys: %x", got)
			}
			// Known_keys, as configured.
			want := append([]byte{0}, u32(42)...)
			want = append(append(want, pkh21(t, tv.K1PKH)...), pkh21(t, tv.K7PKH)...)
			if got := c.must([]byte{socket.TagKnownKeys}); !bytes.Equal(got, want) {
				t.Fatalf("known_keys: %x", got)
			}
			// Public_key for each curve.
			for _, k := range []struct{ pkh, sk string }{{tv.K1PKH, tv.K1SK}, {tv.K5PKH, tv.K5SK}, {tv.K6PKH, tv.K6SK}, {tv.K7PKH, tv.K7SK}} {
				got := c.must(append([]byte{socket.TagPublicKey}, pkh21(t, k.pkh)...))
				pk, _ := socket.PublicKey(mustKey(t, k.sk).Public())
				if !bytes.Equal(got, socket.OK(pk)) {
					t.Fatalf("public key of %s: %x", k.pkh, got)
				}
			}
			if msg := errMsg(t, c.must(append([]byte{socket.TagPublicKey}, pkh21(t, tv.K2PKH)...))); !strings.Contains(msg, "not found") {
				t.Fatalf("an unknown key: %s", msg)
			}
			// A block over the socket, then the same bytes over HTTP (the stored signature), then
			// other bytes at that level over HTTP (refused).
			level := int32(10 + 10*i)
			block, _ := hex.DecodeString(requesttest.Block(chain, level, 0, 1))
			got := c.must(signReq(t, tv.K1PKH, -1, block, nil))
			if got[0] != 0 || len(got) != 65 {
				t.Fatalf("block over %s: %x", tr.network, got)
			}
			status, sig := httpSign(t, e, tv.K1PKH, block)
			if status != 200 || sig != tezos.SignatureString(crypt.Ed25519Signature(got[1:])) {
				t.Fatalf("the same block over HTTP: %d %s; over the socket %x", status, sig, got[1:])
			}
			if status, body := httpSign(t, e, tv.K1PKH, mutate(block)); status != 409 {
				t.Fatalf("another block at level %d over HTTP: %d %s", level, status, body)
			}
			// And the reverse: signed over HTTP, another over the socket refused, the same given.
			att, _ := hex.DecodeString(requesttest.Attestation(chain, level, 0, 1))
			status, sig = httpSign(t, e, tv.K7PKH, att)
			if status != 200 {
				t.Fatalf("attestation over HTTP: %d %s", status, sig)
			}
			if msg := errMsg(t, c.must(signReq(t, tv.K7PKH, 2, mutate(att), nil))); !strings.Contains(msg, "watermark") {
				t.Fatalf("another attestation at the slot over %s: %s", tr.network, msg)
			}
			got = c.must(signReq(t, tv.K7PKH, 2, att, nil))
			if got[0] != 0 || tezos.SignatureString(mustBLSSig(t, got[1:])) != sig {
				t.Fatalf("the same attestation over %s: %x, over HTTP %s", tr.network, got, sig)
			}
			// Policy: a generic operation kind the key does not allow.
			if msg := errMsg(t, c.must(signReq(t, tv.K1PKH, -1, unhexT(t, "03"+strings.Repeat("00", 32)+"6e"), nil))); msg == "" {
				t.Fatal("no message")
			}
			// Deterministic nonces: allowed keys answer HMAC-SHA256 of their secret over the data
			// (checked here against the secret key's base58 payload, decoded by gotez), and its
			// Blake2b hash; a key without allow_deterministic_nonce is refused and says it does
			// not support them.
			data := []byte{0, 1, 0xe2, 0x40}
			for _, k := range []struct{ pkh, sk string }{{tv.K1PKH, tv.K1SK}, {tv.K5PKH, tv.K5SK}, {tv.K6PKH, tv.K6SK}, {tv.K7PKH, tv.K7SK}} {
				req := append(append(append([]byte{socket.TagDeterministicNonce}, pkh21(t, k.pkh)...), u32(len(data))...), data...)
				mac := hmac.New(sha256.New, secretPayload(t, k.sk))
				mac.Write(data)
				want := mac.Sum(nil)
				if got := c.must(req); !bytes.Equal(got, socket.OK(socket.Bytes(want))) {
					t.Fatalf("nonce of %s: %x, want %x", k.pkh, got, want)
				}
				req[0] = socket.TagDeterministicNonceHash
				h := tezos.DeterministicNonceHash([32]byte(want))
				if got := c.must(req); !bytes.Equal(got, socket.OK(socket.Bytes(h[:]))) {
					t.Fatalf("nonce hash of %s: %x", k.pkh, got)
				}
				if got := c.must(append([]byte{socket.TagSupportsDeterministicNonces}, pkh21(t, k.pkh)...)); !bytes.Equal(got, []byte{0, 0xff}) {
					t.Fatalf("supports of %s: %x", k.pkh, got)
				}
			}
			req := append(append(append([]byte{socket.TagDeterministicNonce}, pkh21(t, tv.K4PKH)...), u32(4)...), data...)
			if msg := errMsg(t, c.must(req)); !strings.Contains(msg, "allow_deterministic_nonce") {
				t.Fatalf("a nonce for a key without allow_deterministic_nonce: %s", msg)
			}
			if got := c.must(append([]byte{socket.TagSupportsDeterministicNonces}, pkh21(t, tv.K4PKH)...)); !bytes.Equal(got, []byte{0, 0}) {
				t.Fatalf("supports of a key without allow_deterministic_nonce: %x", got)
			}
			// Proof of possession, as over HTTP.
			got = c.must(append(append([]byte{socket.TagProvePossession}, pkh21(t, tv.K7PKH)...), 0x00))
			if got[0] != 0 || len(got) != 97 || !tezos.VerifyPossession(mustKey(t, tv.K7SK).Public(), mustBLSSig(t, got[1:])) {
				t.Fatalf("proof of possession: %x", got)
			}
			// A request that does not decode: no answer, the connection closed.
			if _, err := c.ask([]byte{0x09}); err == nil {
				t.Fatal("an unknown tag was answered")
			}
		})
	}
}

// TestSocketAuthentication: with server.authorized_keys, Authorized_keys lists them, a Sign or
// nonce request without the client's signature over 0x04 0x01 ‖ pkh ‖ data is refused, and with
// it accepted; a signature over other bytes is refused.
func TestSocketAuthentication(t *testing.T) {
	client := mustKey(t, tv.K3SK)
	e := newSockEnv(t, Config{}, []crypt.PublicKey{client.Public()})
	c := dial(t, "tcp", e.tcp)
	want := append(append([]byte{0, 1}, u32(21)...), pkh21(t, tv.K3PKH)...)
	if got := c.must([]byte{socket.TagAuthorizedKeys}); !bytes.Equal(got, want) {
		t.Fatalf("authorized_keys: %x", got)
	}
	block, _ := hex.DecodeString(requesttest.Block("7a06a770", 5, 0, 1))
	if msg := errMsg(t, c.must(signReq(t, tv.K1PKH, -1, block, nil))); !strings.Contains(msg, "missing authentication") {
		t.Fatalf("unauthenticated: %s", msg)
	}
	h, _ := tezos.ParsePublicKeyHash(tv.K1PKH)
	authSig := func(data []byte) []byte {
		s, err := client.Sign(tezos.AuthenticatedBytes(h, data))
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := socket.Signature(s)
		return raw
	}
	if msg := errMsg(t, c.must(signReq(t, tv.K1PKH, -1, block, authSig(mutate(block))))); !strings.Contains(msg, "invalid authentication") {
		t.Fatalf("a signature over other bytes: %s", msg)
	}
	// A tz5-sized signature with no tz5 key authorized: refused as over HTTP, undecoded.
	if msg := errMsg(t, c.must(signReq(t, tv.K1PKH, -1, block, make([]byte, 2420)))); !strings.Contains(msg, "3316 characters is too long") {
		t.Fatalf("a tz5 authentication: %s", msg)
	}
	if got := c.must(signReq(t, tv.K1PKH, -1, block, authSig(block))); got[0] != 0 {
		t.Fatalf("authenticated: %s", errMsg(t, got))
	}
	data := []byte{0, 0, 0, 7}
	nonce := append(append(append([]byte{socket.TagDeterministicNonce}, pkh21(t, tv.K1PKH)...), u32(4)...), data...)
	if msg := errMsg(t, c.must(nonce)); !strings.Contains(msg, "missing authentication") {
		t.Fatalf("an unauthenticated nonce: %s", msg)
	}
	if got := c.must(append(nonce, authSig(data)...)); got[0] != 0 {
		t.Fatalf("an authenticated nonce: %s", errMsg(t, got))
	}
}

// TestSocketBounds: connections past the limit are closed at once, an idle or slow client is cut
// off after the timeout, and a truncated frame closes the connection; the HTTP port still signs.
func TestSocketBounds(t *testing.T) {
	e := newSockEnv(t, Config{MaxSocketConns: 2, SocketTimeout: 300 * time.Millisecond}, nil)
	a, b := dial(t, "tcp", e.tcp), dial(t, "unix", e.unix)
	_ = a.must([]byte{socket.TagAuthorizedKeys}) // both held: the limit is per transport
	_ = b.must([]byte{socket.TagAuthorizedKeys})
	a2 := dial(t, "tcp", e.tcp)
	_ = a2.must([]byte{socket.TagAuthorizedKeys})
	over := dial(t, "tcp", e.tcp)
	if _, err := over.ask([]byte{socket.TagAuthorizedKeys}); err == nil {
		t.Fatal("a third TCP connection was served with a limit of 2")
	}
	// A client that sends half a frame and stops: closed after the timeout.
	if _, err := a.c.Write([]byte{0x00, 0x10, 0x01}); err != nil {
		t.Fatal(err)
	}
	if _, err := socket.ReadFrame(a.c, nil); err == nil {
		t.Fatal("a half-sent frame was answered")
	}
	// An idle client: closed after the timeout.
	if _, err := socket.ReadFrame(a2.c, nil); err == nil {
		t.Fatal("an idle connection was answered")
	}
	// Both gone: a new connection is served.
	testEventually(t, func() error { return askOnce("tcp", e.tcp) })
	block, _ := hex.DecodeString(requesttest.Block("7a06a770", 3, 0, 1))
	if status, body := httpSign(t, e, tv.K1PKH, block); status != 200 {
		t.Fatalf("HTTP after the socket's clients: %d %s", status, body)
	}
}

// askOnce asks a new connection for Authorized_keys; nil when it is answered.
func askOnce(network, addr string) error {
	c, err := net.Dial(network, addr)
	if err != nil {
		return err
	}
	defer c.Close()
	f, _ := socket.AppendFrame(nil, []byte{socket.TagAuthorizedKeys})
	if _, err := c.Write(f); err != nil {
		return err
	}
	_, err = socket.ReadFrame(c, nil)
	return err
}

// testEventually retries try until it succeeds (the server frees a connection's slot once its
// goroutine has finished, which nothing signals to the client); the bound is against a hang.
func testEventually(t *testing.T, try func() error) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := try()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestUnixSocketFile: the socket is created 0600; a symlink, a regular file and a socket a
// process listens on are refused; a stale socket is replaced.
func TestUnixSocketFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "s.sock")
	ln, err := listenUnix(path)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 || fi.Mode()&os.ModeSocket == 0 {
		t.Fatalf("%v %v", fi.Mode(), err)
	}
	if _, err := listenUnix(path); err == nil || !strings.Contains(err.Error(), "another process listens") {
		t.Fatalf("a socket in use: %v", err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close() // a stale socket file is left
	ln, err = listenUnix(path)
	if err != nil {
		t.Fatalf("a stale socket: %v", err)
	}
	ln.Close()
	link := filepath.Join(dir, "link.sock")
	if err := os.Symlink(filepath.Join(dir, "elsewhere"), link); err != nil {
		t.Fatal(err)
	}
	if _, err := listenUnix(link); err == nil || !strings.Contains(err.Error(), "symbolic link") {
		t.Fatalf("a symlink: %v", err)
	}
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := listenUnix(file); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Fatalf("a regular file: %v", err)
	}
	if b, _ := os.ReadFile(file); string(b) != "x" {
		t.Fatal("the regular file was touched")
	}
}

func unhexT(t *testing.T, s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// mutate returns a copy of b with its last byte changed: other bytes at the same slot.
func mutate(b []byte) []byte {
	out := bytes.Clone(b)
	out[len(out)-1] ^= 1
	return out
}

func mustBLSSig(t *testing.T, raw []byte) crypt.Signature {
	if len(raw) != tz.BLSSignatureBytesLen {
		t.Fatalf("a BLS signature of %d bytes", len(raw))
	}
	sig, err := crypt.NewSignature((*tz.BLSSignature)(raw))
	if err != nil {
		t.Fatal(err)
	}
	return sig
}

// secretPayload decodes a secret key's base58check with gotez (not our decoder) and returns its
// payload: the bytes octez keys the nonce's HMAC with.
func secretPayload(t *testing.T, sk string) []byte {
	t.Helper()
	k, err := crypt.ParsePrivateKey([]byte(sk))
	if err != nil {
		t.Fatal(err)
	}
	switch p := k.ToProtocol().(type) {
	case *tz.Ed25519PrivateKey:
		return p[:]
	case *tz.Secp256k1PrivateKey:
		return p[:]
	case *tz.P256PrivateKey:
		return p[:]
	case *tz.BLSPrivateKey:
		return p[:]
	}
	t.Fatalf("%T", k)
	return nil
}

// TestSocketTz5: octez's fixed tz5 key over the socket. octez's own client has no Sign case for
// tz5 (pkh_encoding stops at BLS), but its case 3, a tagged key hash and a version, carries one:
// the signer answers it (ML-DSA-44 signatures of 2,420 bytes fit a frame); its public key, its
// deterministic nonce (the HMAC key is its signing and verification keys, 3,872 bytes) and its
// refusal of a proof of possession.
func TestSocketTz5(t *testing.T) {
	s, m, log := newEnvSigner(t, nil, nil)
	ls, _ := serveAll(t, New(Config{Address: "127.0.0.1:0", UtilityAddress: "127.0.0.1:0", SocketAddress: "127.0.0.1:0"}, s, m, log))
	c := dial(t, "tcp", ls.Socket.Addr().String())
	sk, pk := tv.OctezTz5()
	got := c.must(append([]byte{socket.TagPublicKey}, pkh21(t, tv.OctezTz5PKH)...))
	pub, _ := tezos.ParsePublicKey(pk)
	want, _ := socket.PublicKey(pub)
	if !bytes.Equal(got, socket.OK(want)) || len(got) != 1+1+1312 {
		t.Fatalf("public key: %d bytes", len(got))
	}
	msg := unhexT(t, tv.LoadPolicyHex()["transaction ok"])
	req := append(append([]byte{socket.TagSign, 0x03}, pkh21(t, tv.OctezTz5PKH)...), 3)
	req = append(append(req, u32(len(msg))...), msg...)
	got = c.must(req)
	if got[0] != 0 || len(got) != 1+2420 {
		t.Fatalf("sign: %d bytes %x", len(got), got[:min(len(got), 64)])
	}
	sig, err := crypt.NewSignature((*tz.MLDSA44Signature)(got[1:]))
	if err != nil || !tezos.Verify(pub, sig, msg, 3) {
		t.Fatalf("the tz5 signature does not verify: %v", err)
	}
	if msg := errMsg(t, c.must(append(append([]byte{socket.TagProvePossession}, pkh21(t, tv.OctezTz5PKH)...), 0))); !strings.Contains(msg, "not supported") {
		t.Fatalf("proof of possession: %s", msg)
	}
	// No allow_deterministic_nonce in this key's policy: refused. The nonce itself, for the
	// 3,872-byte key, is checked against HMAC-SHA256 over gotez's payload of its mdsk.
	nreq := append(append(append([]byte{socket.TagDeterministicNonce}, pkh21(t, tv.OctezTz5PKH)...), u32(1)...), 7)
	if msg := errMsg(t, c.must(nreq)); !strings.Contains(msg, "allow_deterministic_nonce") {
		t.Fatalf("nonce: %s", msg)
	}
	k := octezTz5()
	raw := k.ToProtocol().(*tz.MLDSA44PrivateKey)
	mac := hmac.New(sha256.New, raw[:])
	mac.Write([]byte{7})
	n, err := tezos.DeterministicNonce(k, []byte{7})
	if err != nil || !bytes.Equal(n[:], mac.Sum(nil)) || len(raw) != 3872 || sk == "" {
		t.Fatalf("tz5 nonce: %v", err)
	}
}

// TestSocketFlood: 600 connections at once on the Unix socket, each sending a request: at most
// the limit (256) are served (no connection arrives after the first 600, so no more than the
// limit can hold a slot when the requests are read), the rest closed; the signer's goroutines
// stay bounded by the limit; the HTTP port signs meanwhile; once they are gone a new connection
// is served. Then 600 connections that announce a frame of 65,535 bytes and send one: none is
// answered, all are closed after the timeout, within the same bounds.
func TestSocketFlood(t *testing.T) {
	for round, partial := range []bool{false, true} {
		timeout := time.Minute // long enough that no served connection is closed while counted
		if partial {
			timeout = time.Second // the half-sent frames are cut after it
		}
		e := newSockEnv(t, Config{SocketTimeout: timeout}, nil)
		base := runtime.NumGoroutine()
		var conns []net.Conn
		for range 600 {
			c, err := net.Dial("unix", e.unix)
			if err != nil {
				t.Fatal(err)
			}
			conns = append(conns, c)
		}
		req := []byte{0, 1, socket.TagAuthorizedKeys}
		if partial {
			req = []byte{0xff, 0xff, 0x01}
		}
		for _, c := range conns {
			_, _ = c.Write(req)
		}
		if n := runtime.NumGoroutine(); n > base+DefaultSocketConns+64 {
			t.Errorf("round %d: %d goroutines with 600 connections (%d before)", round, n, base)
		}
		block, _ := hex.DecodeString(requesttest.Block("7a06a770", int32(40+round), 0, 1))
		if status, body := httpSign(t, e, tv.K1PKH, block); status != 200 {
			t.Fatalf("HTTP during the flood: %d %s", status, body)
		}
		// Every answer is read before any connection is closed: a served connection holds its
		// slot until then, so one still in the listen backlog cannot take a freed slot and be
		// served beyond the limit (which a slow accept loop on a loaded machine made happen).
		served := 0
		for _, c := range conns {
			if _, err := socket.ReadFrame(c, nil); err == nil {
				served++
			}
		}
		for _, c := range conns {
			c.Close()
		}
		if served > DefaultSocketConns || (partial && served != 0) || (!partial && served == 0) {
			t.Fatalf("round %d: %d of 600 connections answered", round, served)
		}
		testEventually(t, func() error { return askOnce("unix", e.unix) })
	}
}

// TestSocketShutdown: a clean stop closes the connections waiting for a request (each sees the
// end of its stream), removes the Unix socket and returns.
func TestSocketShutdown(t *testing.T) {
	s, m, log := newEnvSigner(t, nil, nil)
	path := filepath.Join(t.TempDir(), "s.sock")
	ls, stop := serveAll(t, New(Config{Address: "127.0.0.1:0", UtilityAddress: "127.0.0.1:0", SocketAddress: "127.0.0.1:0", UnixSocket: path}, s, m, log))
	var conns []*sockClient
	for _, a := range [][2]string{{"tcp", ls.Socket.Addr().String()}, {"unix", path}, {"tcp", ls.Socket.Addr().String()}} {
		c := dial(t, a[0], a[1])
		_ = c.must([]byte{socket.TagAuthorizedKeys}) // served, then idle
		conns = append(conns, c)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	for i, c := range conns {
		if _, err := socket.ReadFrame(c.c, nil); !errors.Is(err, io.EOF) {
			t.Fatalf("connection %d after the stop: %v", i, err)
		}
	}
	if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the Unix socket is left after the stop: %v", err)
	}
}
