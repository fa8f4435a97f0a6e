package server

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/signatory-go/signatory/internal/jwtauth"
	"github.com/signatory-go/signatory/internal/metrics"
	"github.com/signatory-go/signatory/internal/policy"
	"github.com/signatory-go/signatory/internal/signer"
	"github.com/signatory-go/signatory/internal/testdaemon"
	tv "github.com/signatory-go/signatory/internal/testvectors"
	"github.com/signatory-go/signatory/internal/vault"
	vaultmem "github.com/signatory-go/signatory/internal/vault/mem"
	wmmem "github.com/signatory-go/signatory/internal/watermark/mem"
)

// TestJWTPerKeyUsers: with JWT on, every route needs a token, and a key's jwt_users list
// restricts which users may sign with it (vectors A3).
func TestJWTPerKeyUsers(t *testing.T) {
	t.Parallel()
	auth, err := jwtauth.New(map[string]*jwtauth.User{
		"username1": {Credentials: jwtauth.Credentials{Password: "87GridNEG3gKZ3I!", Secret: "!sEtcU5RwLQYsA5qQ1c6zpo3FljQxfAKP"}},
		"username2": {Credentials: jwtauth.Credentials{Password: "RkB143NUCmok2f4!", Secret: "!sEtcU5RwLQYsA5qQ1c6zpo3FljQxfAKP"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	pol := mustPolicy(t, tv.K4PKH, "jwt_users: [username1]\nallow: {generic: [transaction]}")
	m := metrics.New("test")
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	s, err := signer.New(t.Context(), signer.Config{Vaults: []vault.Vault{vaultmem.NewFromKeys("mem", mustKey(t, tv.K4SK))},
		Policies: map[string]*policy.Policy{tv.K4PKH: pol}, Store: wmmem.NewStore(), Observer: m, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(New(Config{Live: Live{JWT: auth}}, s, m, log).Handler())
	defer hs.Close()
	call := func(method, path, body string, h map[string]string) (int, string) {
		return do(t, method, hs.URL+path, body, h)
	}
	msg := `"` + "03c8e312c61a5fd8e9d6ff1d5dccf900e10b5769e55738eb365e99636e3c3fd1d76c006b82198cb179e8306c1bedd08f12dc863f328886df0202e90700c0843d0000a26828841890d3f3a2a1d4083839c7a882fe050100" + `"`
	if st, b := call("POST", "/keys/"+tv.K4PKH, msg, nil); st != 401 || b != "token required" {
		t.Fatalf("no token: %d %s", st, b)
	}
	if st, b := call("GET", "/authorized_keys", "", nil); st != 401 {
		t.Fatalf("authorized_keys without token: %d %s", st, b)
	}
	token := func(u, p string) string {
		st, tok := call("POST", "/login", "", map[string]string{"username": u, "password": p})
		if st != 201 {
			t.Fatalf("login %s: %d %s", u, st, tok)
		}
		return tok
	}
	t1, t2 := token("username1", "87GridNEG3gKZ3I!"), token("username2", "RkB143NUCmok2f4!")
	if st, b := call("POST", "/keys/"+tv.K4PKH, msg, map[string]string{"Authorization": "Bearer " + t1, "username": "username1"}); st != 200 {
		t.Fatalf("user1: %d %s", st, b)
	}
	if st, b := call("POST", "/keys/"+tv.K4PKH, msg, map[string]string{"Authorization": "Bearer " + t2, "username": "username2"}); st != 403 || b != errBody("user `username2' is not authorized to access "+tv.K4PKH) {
		t.Fatalf("user2: %d %s", st, b)
	}
}

// TestReconfigureJWT: a reload turns JWT on (every route then needs a token, POST /login
// answers), changes its users (a user removed can no longer log in) and turns it off again
// (POST /login is 404, requests need no token); known_keys follow the reload too.
func TestReconfigureJWT(t *testing.T) {
	t.Parallel()
	users := func(names ...string) *jwtauth.Auth {
		m := map[string]*jwtauth.User{}
		for _, n := range names {
			m[n] = &jwtauth.User{Credentials: jwtauth.Credentials{Password: "87GridNEG3gKZ3I!", Secret: "!sEtcU5RwLQYsA5qQ1c6zpo3FljQxfAKP"}}
		}
		a, err := jwtauth.New(m)
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	m := metrics.New("test")
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	s, err := signer.New(t.Context(), signer.Config{Vaults: []vault.Vault{vaultmem.NewFromKeys("mem", mustKey(t, tv.K4SK))},
		Policies: map[string]*policy.Policy{tv.K4PKH: mustPolicy(t, tv.K4PKH, "allow: {generic: [transaction]}")}, Store: wmmem.NewStore(), Observer: m, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	srv := New(Config{}, s, m, log)
	hs := httptest.NewServer(srv.Handler())
	defer hs.Close()
	call := func(method, path string, h map[string]string) int {
		st, _ := do(t, method, hs.URL+path, "", h)
		return st
	}
	login := func(u string) int {
		return call("POST", "/login", map[string]string{"username": u, "password": "87GridNEG3gKZ3I!"})
	}
	if st := call("GET", "/keys/"+tv.K4PKH, nil); st != 200 {
		t.Fatalf("JWT off: %d", st)
	}
	if st := login("u1"); st != 404 {
		t.Fatalf("POST /login with JWT off: %d", st)
	}
	if st := call("GET", "/known_keys", nil); st != 404 {
		t.Fatalf("known_keys off: %d", st)
	}
	if err := srv.Reconfigure(Live{JWT: users("u1", "u2"), KnownKeys: []string{tv.K4PKH}}); err != nil {
		t.Fatal(err)
	}
	if st := call("GET", "/keys/"+tv.K4PKH, nil); st != 401 {
		t.Fatalf("JWT turned on, no token: %d", st)
	}
	if st := login("u2"); st != 201 {
		t.Fatalf("login of u2: %d", st)
	}
	if err := srv.Reconfigure(Live{JWT: users("u1"), KnownKeys: []string{tv.K4PKH}}); err != nil {
		t.Fatal(err)
	}
	if st := login("u2"); st == 201 {
		t.Fatal("a user removed by the reload logged in")
	}
	if st := login("u1"); st != 201 {
		t.Fatalf("login of u1: %d", st)
	}
	if err := srv.Reconfigure(Live{KnownKeys: []string{tv.K4PKH}}); err != nil {
		t.Fatal(err)
	}
	if st := call("GET", "/known_keys", nil); st != 200 {
		t.Fatalf("known_keys turned on: %d", st)
	}
	if st := login("u1"); st != 404 {
		t.Fatalf("POST /login with JWT turned off: %d", st)
	}
	if err := srv.Reconfigure(Live{CertFile: "x.pem", KeyFile: "x.key"}); err == nil || !strings.Contains(err.Error(), "restart") {
		t.Fatalf("turning TLS on by a reload: %v", err)
	}
}

// do sends one request with headers h and returns the status and body.
func do(t *testing.T, method, url, body string, h map[string]string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	for k, v := range h {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestReconfigureLogPayloads: the raw bytes of a signed request are logged for a key whose
// policy says log_payloads, and a reload that turns it off stops them.
func TestReconfigureLogPayloads(t *testing.T) {
	t.Parallel()
	s, m, _ := newEnvSigner(t, nil, nil)
	var logs testdaemon.Buffer
	srv := New(Config{Live: Live{LogPayloads: func(pkh string) bool { return pkh == tv.K5PKH }}}, s, m, slog.New(slog.NewTextHandler(&logs, nil)))
	hs := httptest.NewServer(srv.Handler())
	defer hs.Close()
	raw := "03c8e312c61a5fd8e9d6ff1d5dccf900e10b5769e55738eb365e99636e3c3fd1d76c006b82198cb179e8306c1bedd08f12dc863f328886df0202e90700c0843d0000a26828841890d3f3a2a1d4083839c7a882fe050100"
	sign := func() {
		if st, b := do(t, "POST", hs.URL+"/keys/"+tv.K5PKH, `"`+raw+`"`, nil); st != 200 {
			t.Fatalf("sign: %d %s", st, b)
		}
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute) // a bound against a hang, not a measure
	defer cancel()
	sign()
	if !logs.WaitCount(ctx, "raw="+raw, 1) {
		t.Fatalf("log_payloads on: no raw bytes logged:\n%s", logs.String())
	}
	if err := srv.Reconfigure(Live{}); err != nil {
		t.Fatal(err)
	}
	sign()
	if !logs.WaitCount(ctx, "msg=signed", 2) {
		t.Fatalf("the second request was not logged:\n%s", logs.String())
	}
	if n := strings.Count(logs.String(), "raw="+raw); n != 1 {
		t.Fatalf("log_payloads turned off by a reload: the raw bytes logged %d times, want 1", n)
	}
}
