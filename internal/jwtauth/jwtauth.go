// Package jwtauth is the JWT authentication of the signing port, as in the reference implementation: users log in with a
// password at POST /login and receive an HS256 token; every other route needs it. Credentials can
// be rotated without a restart: old and new both work until old_cred_exp, then only the new.
package jwtauth

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"time"
	"unicode"

	"github.com/golang-jwt/jwt/v5"
)

// Credentials are one set of a user's secrets.
type Credentials struct {
	Password string `yaml:"password"`
	Secret   string `yaml:"secret"`
	JWTExp   int    `yaml:"jwt_exp"` // minutes, default 60
}

// User is one user's config.
type User struct {
	Credentials `yaml:",inline"`
	OldCredExp  string       `yaml:"old_cred_exp"` // "YYYY-MM-DD hh:mm:ss" UTC
	NewData     *Credentials `yaml:"new_data"`
}

// Auth validates logins and tokens.
type Auth struct {
	users map[string]*user
	now   func() time.Time
}

type user struct {
	old, new *Credentials // new is nil without rotation
	expiry   time.Time    // zero: old replaced at start
}

// current returns the credential sets valid now, newest first.
func (u *user) current(now time.Time) []*Credentials {
	if u.new == nil {
		return []*Credentials{u.old}
	}
	if u.expiry.IsZero() || !now.Before(u.expiry) {
		return []*Credentials{u.new}
	}
	return []*Credentials{u.new, u.old}
}

// New validates the users' config.
func New(users map[string]*User) (*Auth, error) {
	a := &Auth{users: map[string]*user{}, now: time.Now}
	names := make([]string, 0, len(users))
	for n := range users {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		u := users[name]
		if u == nil {
			return nil, fmt.Errorf("JWT: config validation failed for user %s: no credentials", name)
		}
		if err := validate(&u.Credentials); err != nil {
			return nil, fmt.Errorf("JWT: config validation failed for user %s: %w", name, err)
		}
		entry := &user{old: withDefaults(u.Credentials)}
		if u.NewData != nil {
			if err := validate(u.NewData); err != nil {
				return nil, fmt.Errorf("JWT: config validation failed for user %s: new_data: %w", name, err)
			}
			if u.NewData.Password == u.Password || u.NewData.Secret == u.Secret {
				return nil, fmt.Errorf("JWT: new credentials are same as old for user %s", name)
			}
			entry.new = withDefaults(*u.NewData)
			if u.OldCredExp != "" {
				t, err := time.Parse("2006-01-02 15:04:05", u.OldCredExp)
				if err != nil {
					return nil, fmt.Errorf("JWT: user %s: old_cred_exp %q is not \"YYYY-MM-DD hh:mm:ss\"", name, u.OldCredExp)
				}
				entry.expiry = t
			}
		}
		a.users[name] = entry
	}
	return a, nil
}

func withDefaults(c Credentials) *Credentials {
	if c.JWTExp <= 0 {
		c.JWTExp = 60
	}
	return &c
}

func validate(c *Credentials) error {
	if len(c.Password) < 16 {
		return errors.New("password should be at least 16 characters")
	}
	if err := classes(c.Password, "password"); err != nil {
		return err
	}
	if len(c.Secret) < 32 {
		return errors.New("secret should be at least 32 characters")
	}
	return classes(c.Secret, "secret")
}

func classes(s, what string) error {
	var up, low, digit, special bool
	for _, r := range s {
		switch {
		case unicode.IsUpper(r):
			up = true
		case unicode.IsLower(r):
			low = true
		case unicode.IsDigit(r):
			digit = true
		case r < 128 && unicode.IsPrint(r):
			special = true
		}
	}
	if !up || !low || !digit || !special {
		return fmt.Errorf("%s should contain upper and lower case letters, digits and special characters", what)
	}
	return nil
}

// errAccessDenied is the reference's answer to a failed login, word for word (clients match it).
//
//lint:ignore ST1005 the reference's exact message
var errAccessDenied = errors.New("Access denied")

// Login checks a user's password and returns a new token.
func (a *Auth) Login(username, password string) (string, error) {
	u := a.users[username]
	if u == nil {
		return "", errAccessDenied
	}
	for _, c := range u.current(a.now()) {
		if subtle.ConstantTimeCompare([]byte(c.Password), []byte(password)) == 1 {
			claims := jwt.MapClaims{"user": username, "exp": a.now().Add(time.Duration(c.JWTExp) * time.Minute).Unix()}
			return jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString([]byte(c.Secret))
		}
	}
	return "", errAccessDenied
}

// Validate checks a token for username and returns nil when it is valid now.
func (a *Auth) Validate(username, token string) error {
	u := a.users[username]
	if u == nil {
		return errors.New("JWT: user not found")
	}
	// Go's base64 decoder skips '\r' and '\n', so the JWT library would accept an issued token
	// with line breaks inserted; only the compact form's alphabet is a token.
	if strings.IndexFunc(token, func(r rune) bool {
		return !(r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.')
	}) >= 0 {
		return errors.New("JWT: malformed token")
	}
	var lastErr error
	for _, c := range u.current(a.now()) {
		tok, err := jwt.Parse(token, func(t *jwt.Token) (any, error) { return []byte(c.Secret), nil },
			jwt.WithValidMethods([]string{"HS256"}), jwt.WithTimeFunc(a.now), jwt.WithExpirationRequired())
		if err != nil {
			lastErr = err
			continue
		}
		claims, _ := tok.Claims.(jwt.MapClaims)
		if claims["user"] != username {
			return errors.New("JWT: invalid token")
		}
		return nil
	}
	return lastErr
}

type ctxKey struct{}

// UserFrom returns the authenticated JWT user of a request context, or "".
func UserFrom(ctx context.Context) string {
	u, _ := ctx.Value(ctxKey{}).(string)
	return u
}

func plain(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(msg))
}

// LoginHandler serves POST /login: headers username and password; 201 with the token as text.
func (a *Auth) LoginHandler(w http.ResponseWriter, r *http.Request) {
	username, password := r.Header.Get("username"), r.Header.Get("password")
	if username == "" || password == "" {
		plain(w, http.StatusUnauthorized, "username and password required")
		return
	}
	tok, err := a.Login(username, password)
	if err != nil {
		plain(w, http.StatusUnauthorized, err.Error())
		return
	}
	plain(w, http.StatusCreated, tok)
}

// Middleware requires `Authorization: Bearer <token>` and `username` on every route but /login.
func (a *Auth) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/login" {
			next.ServeHTTP(w, r)
			return
		}
		h := r.Header.Get("Authorization")
		if h == "" {
			plain(w, http.StatusUnauthorized, "token required")
			return
		}
		token := strings.TrimPrefix(h, "Bearer ")
		if token == h {
			plain(w, http.StatusUnauthorized, "invalid character 'B' looking for beginning of value: malformed Authorization header")
			return
		}
		username := r.Header.Get("username")
		if err := a.Validate(username, token); err != nil {
			plain(w, http.StatusUnauthorized, err.Error())
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), ctxKey{}, username)))
	})
}
