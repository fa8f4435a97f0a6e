package jwtauth

import (
	"encoding/base64"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Users of the reference's JWT integration test (vectors A3).
const (
	pw1    = "87GridNEG3gKZ3I!"
	pw2    = "RkB143NUCmok2f4!"
	secret = "!sEtcU5RwLQYsA5qQ1c6zpo3FljQxfAKP"
	rot    = "*sEtcU5RwLQYsA5qQ1c6zpo3FljQxfAKP"
)

func testAuth(t *testing.T) *Auth {
	a, err := New(map[string]*User{
		"username1": {Credentials: Credentials{Password: pw1, Secret: secret}},
		"username2": {Credentials: Credentials{Password: pw2, Secret: secret, JWTExp: 1}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func serve(a *Auth) *httptest.Server {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /login", a.LoginHandler)
	mux.HandleFunc("GET /keys/{pkh}", func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "ok "+UserFrom(r.Context())) })
	return httptest.NewServer(a.Middleware(mux))
}

func do(t *testing.T, method, url string, headers map[string]string) (int, string) {
	req, _ := http.NewRequest(method, url, nil)
	for k, v := range headers {
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

func TestReferenceJWTBehaviour(t *testing.T) {
	t.Parallel()
	a := testAuth(t)
	srv := serve(a)
	defer srv.Close()
	keys := srv.URL + "/keys/tz1VSUr8wwNhLAzempoch5d6hLRiTh8Cjcjb"
	if st, b := do(t, "GET", keys, nil); st != 401 || b != "token required" {
		t.Fatalf("no token: %d %s", st, b)
	}
	st, tok := do(t, "POST", srv.URL+"/login", map[string]string{"username": "username1", "password": pw1})
	if st != 201 || strings.Count(tok, ".") != 2 {
		t.Fatalf("login: %d %s", st, tok)
	}
	if st, b := do(t, "GET", keys, map[string]string{"Authorization": "Bearer " + tok, "username": "username1"}); st != 200 || b != "ok username1" {
		t.Fatalf("with token: %d %s", st, b)
	}
	if st, b := do(t, "POST", srv.URL+"/login", map[string]string{"username": "username1", "password": pw2}); st != 401 || b != "Access denied" {
		t.Fatalf("wrong password: %d %s", st, b)
	}
	if st, b := do(t, "POST", srv.URL+"/login", map[string]string{"username": "nobody", "password": pw1}); st != 401 || b != "Access denied" {
		t.Fatalf("unknown user: %d %s", st, b)
	}
	if st, b := do(t, "POST", srv.URL+"/login", map[string]string{"username": "username1"}); st != 401 || b != "username and password required" {
		t.Fatalf("no password: %d %s", st, b)
	}
	// alg none
	parts := strings.Split(tok, ".")
	none := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + parts[1] + "."
	if st, b := do(t, "GET", keys, map[string]string{"Authorization": "Bearer " + none, "username": "username1"}); st != 401 || !strings.Contains(b, "signing method none is invalid") && !strings.Contains(b, "'none' signature type is not allowed") {
		t.Fatalf("alg none: %d %s", st, b)
	}
	// swapped payload
	other := base64.RawURLEncoding.EncodeToString([]byte(`{"user":"username2","exp":9999999999}`))
	if st, b := do(t, "GET", keys, map[string]string{"Authorization": "Bearer " + parts[0] + "." + other + "." + parts[2], "username": "username1"}); st != 401 || !strings.Contains(b, "signature is invalid") {
		t.Fatalf("swapped payload: %d %s", st, b)
	}
	// expired
	expired, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"user": "username1", "exp": time.Now().Add(-time.Minute).Unix()}).SignedString([]byte(secret))
	if st, b := do(t, "GET", keys, map[string]string{"Authorization": "Bearer " + expired, "username": "username1"}); st != 401 || !strings.Contains(b, "token is expired") {
		t.Fatalf("expired: %d %s", st, b)
	}
	if st, b := do(t, "GET", keys, map[string]string{"Authorization": "Bearer" + tok, "username": "username1"}); st != 401 || !strings.Contains(b, "looking for beginning of value") {
		t.Fatalf("no space: %d %s", st, b)
	}
	if st, b := do(t, "GET", keys, map[string]string{"Authorization": "Bearer " + tok}); st != 401 || !strings.Contains(b, "user not found") {
		t.Fatalf("no username: %d %s", st, b)
	}
	_, tok2 := do(t, "POST", srv.URL+"/login", map[string]string{"username": "username2", "password": pw2})
	if st, b := do(t, "GET", keys, map[string]string{"Authorization": "Bearer " + tok2, "username": "username1"}); st != 401 || b != "JWT: invalid token" {
		t.Fatalf("other user's token: %d %s", st, b)
	}
}

func TestValidationAndRotation(t *testing.T) {
	t.Parallel()
	for name, u := range map[string]*User{
		"password should be at least 16 characters": {Credentials: Credentials{Password: "Short1!", Secret: secret}},
		"secret should be at least 32 characters":   {Credentials: Credentials{Password: pw1, Secret: "Sh0rt!"}},
		"password should contain":                   {Credentials: Credentials{Password: "alllowercase1234!", Secret: secret}},
		"new credentials are same as old":           {Credentials: Credentials{Password: pw1, Secret: secret}, NewData: &Credentials{Password: pw1, Secret: rot}},
		"old_cred_exp":                              {Credentials: Credentials{Password: pw1, Secret: secret}, NewData: &Credentials{Password: pw2, Secret: rot}, OldCredExp: "tomorrow"},
	} {
		if _, err := New(map[string]*User{"u": u}); err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("%s: %v", name, err)
		}
	}
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	a, err := New(map[string]*User{"u": {Credentials: Credentials{Password: pw1, Secret: secret},
		NewData: &Credentials{Password: pw2, Secret: rot}, OldCredExp: "2026-01-01 13:00:00"}})
	if err != nil {
		t.Fatal(err)
	}
	a.now = func() time.Time { return now }
	oldTok, err := a.Login("u", pw1)
	if err != nil {
		t.Fatal("old password refused before expiry")
	}
	newTok, err := a.Login("u", pw2)
	if err != nil {
		t.Fatal("new password refused")
	}
	if a.Validate("u", oldTok) != nil || a.Validate("u", newTok) != nil {
		t.Fatal("tokens refused before expiry")
	}
	now = now.Add(90 * time.Minute) // past old_cred_exp, tokens not yet expired (60 min default → expired; use fresh ones)
	a.now = func() time.Time { return now }
	if _, err := a.Login("u", pw1); err == nil {
		t.Fatal("old password accepted after old_cred_exp, without a restart")
	}
	if _, err := a.Login("u", pw2); err != nil {
		t.Fatal("new password refused after rotation")
	}
}
