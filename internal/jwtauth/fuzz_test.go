package jwtauth

import (
	"testing"
	"time"
)

// FuzzValidate: no token or username may panic validation, and only a real login's token passes.
func FuzzValidate(f *testing.F) {
	a, err := New(map[string]*User{"username1": {Credentials: Credentials{Password: pw1, Secret: secret}}})
	if err != nil {
		f.Fatal(err)
	}
	// A fixed clock: the fuzzing workers are other processes that build this Auth again, and the
	// token they issue must be the seed's, whenever each starts.
	fixed := time.Unix(1_900_000_000, 0)
	a.now = func() time.Time { return fixed }
	tok, _ := a.Login("username1", pw1)
	f.Add("username1", tok)
	f.Add("username1", "eyJhbGciOiJub25lIn0.e30.")
	f.Add("", "...")
	f.Fuzz(func(t *testing.T, user, token string) {
		if a.Validate(user, token) == nil && (user != "username1" || token != tok) {
			// Another valid token for the same user is only possible with the secret.
			t.Fatalf("accepted a token that was not issued: %q %q", user, token)
		}
	})
}
