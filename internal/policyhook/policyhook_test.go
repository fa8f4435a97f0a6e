package policyhook

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/ecadlabs/gotez/v2/crypt"

	"github.com/signatory-go/signatory/internal/fault"
	tv "github.com/signatory-go/signatory/internal/testvectors"
	"github.com/signatory-go/signatory/internal/tezos"
)

type hookServer struct {
	status   int
	key      crypt.PrivateKey // signs replies when set
	mutate   func(p *ReplyPayload)
	badSig   bool
	delay    time.Duration
	mu       sync.Mutex
	lastBody body
}

func (h *hookServer) body() body {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.lastBody
}

func (h *hookServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var got body
	_ = json.NewDecoder(r.Body).Decode(&got)
	h.mu.Lock()
	h.lastBody = got
	h.mu.Unlock()
	if h.delay > 0 {
		select {
		case <-time.After(h.delay):
		case <-r.Context().Done():
			return
		}
	}
	if h.key == nil {
		w.WriteHeader(h.status)
		return
	}
	p := ReplyPayload{Status: h.status, PublicKeyHash: h.key.Public().Hash().String(), Nonce: got.Nonce}
	if h.status >= 400 {
		p.Error = "address 127.0.0.1 is not allowed"
	}
	if h.mutate != nil {
		h.mutate(&p)
	}
	raw, _ := json.Marshal(p)
	signed := raw
	if h.badSig {
		signed = append([]byte{}, raw...)
		signed[0] = ' '
	}
	sig, _ := h.key.Sign(signed)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(h.status)
	_ = json.NewEncoder(w).Encode(map[string]any{"payload": json.RawMessage(raw), "signature": sig.String()})
}

func TestHook(t *testing.T) {
	t.Parallel()
	k3, _ := tezos.ParseSecretKey(tv.K3SK, nil)
	k4, _ := tezos.ParseSecretKey(tv.K4SK, nil)
	msg := tv.Hex(tv.LoadPolicyHex()["generic ok"])
	cases := []struct {
		name string
		srv  *hookServer
		keys []crypt.PublicKey
		kind fault.Kind
		msg  string // "" allowed
	}{
		{"unsigned allow", &hookServer{status: 204}, nil, 0, ""},
		{"unsigned deny", &hookServer{status: 403}, nil, fault.Forbidden, "policy hook: 403 Forbidden"},
		{"unsigned 500", &hookServer{status: 502}, nil, fault.Internal, "policy hook: 502 Bad Gateway"},
		{"signed allow", &hookServer{status: 200, key: k3}, []crypt.PublicKey{k3.Public()}, 0, ""},
		{"signed deny", &hookServer{status: 403, key: k3}, []crypt.PublicKey{k3.Public()}, fault.Forbidden, "policy hook: address 127.0.0.1 is not allowed"},
		{"status mismatch", &hookServer{status: 200, key: k3, mutate: func(p *ReplyPayload) { p.Status = 403 }}, []crypt.PublicKey{k3.Public()}, fault.Internal, "the policy hook reply status must match the HTTP header"},
		{"nonce mismatch", &hookServer{status: 200, key: k3, mutate: func(p *ReplyPayload) { p.Nonce = "AAAA" }}, []crypt.PublicKey{k3.Public()}, fault.Forbidden, "nonce mismatch"},
		{"bad pkh", &hookServer{status: 200, key: k3, mutate: func(p *ReplyPayload) { p.PublicKeyHash = "tz1nope" }}, []crypt.PublicKey{k3.Public()}, fault.Forbidden, ""},
		{"unknown key", &hookServer{status: 200, key: k4}, []crypt.PublicKey{k3.Public()}, fault.Unauthorized, "public key not found"},
		{"bad signature", &hookServer{status: 200, key: k3, badSig: true}, []crypt.PublicKey{k3.Public()}, fault.Forbidden, "invalid hook reply signature"},
		{"unsigned reply where one is required", &hookServer{status: 200}, []crypt.PublicKey{k3.Public()}, fault.Internal, "policy hook: invalid reply: unexpected end of JSON input"},
		{"timeout", &hookServer{status: 200, delay: time.Hour}, nil, fault.Internal, "policy hook: no answer within 200ms"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			srv := httptest.NewServer(c.srv)
			defer srv.Close()
			// Its own client: another subtest's srv.Close closes the default transport's idle connections.
			// Only the timeout case gets a short deadline: on a loaded machine 200 ms is not
			// enough for the others, whose subject is the reply, not the deadline.
			timeout := time.Minute
			if c.srv.delay > 0 {
				timeout = 200 * time.Millisecond
			}
			h := &Hook{Address: srv.URL + "/check", Keys: c.keys, Timeout: timeout, Client: srv.Client()}
			err := h.Check(t.Context(), &Request{Message: msg, Source: "127.0.0.1", PKH: tv.K1PKH, ClientPKH: tv.K3PKH})
			if c.kind == 0 && c.msg == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
			} else {
				if err == nil {
					t.Fatal("allowed")
				}
				if fault.KindOf(err) != c.kind {
					t.Fatalf("kind %v, want %v (%v)", fault.KindOf(err), c.kind, err)
				}
				if c.msg != "" && err.Error() != c.msg {
					t.Fatalf("message %q, want %q", err, c.msg)
				}
			}
			b := c.srv.body()
			if b.PublicKeyHash != tv.K1PKH || b.ClientKeyHash != tv.K3PKH || b.Source != "127.0.0.1" || b.Request != base64.StdEncoding.EncodeToString(msg) {
				t.Fatalf("hook request body %+v", b)
			}
			if n, _ := base64.StdEncoding.DecodeString(b.Nonce); len(n) != 32 {
				t.Fatalf("nonce %q", b.Nonce)
			}
		})
	}
}
