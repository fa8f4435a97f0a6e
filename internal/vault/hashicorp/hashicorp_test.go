package hashicorp

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/blake2b"
	"gopkg.in/yaml.v3"

	"github.com/signatory-go/signatory/internal/tezos"
	"github.com/signatory-go/signatory/internal/vault"
	"github.com/signatory-go/signatory/internal/vault/hashicorp/hashicorptest"
	"github.com/signatory-go/signatory/internal/vault/remote/remotetest"
	"github.com/signatory-go/signatory/internal/vault/vaulttest"
	"github.com/signatory-go/signatory/internal/yamlstrict"
)

const token = "hvs.root-test-token"

type env struct {
	fake *hashicorptest.Vault
	url  string
	ca   string
	real map[string]*remotetest.Key
}

// newFake serves a Transit engine at mount with two ed25519 keys, an ecdsa-p256 key and keys to
// skip.
func newFake(t *testing.T, mount string) *env {
	t.Helper()
	f := hashicorptest.New(token)
	f.Mount = mount
	f.RoleID, f.SecretID = "role-1", "secret-1"
	url, cert, stop := f.Start()
	t.Cleanup(stop)
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, cert.PEM, 0o600); err != nil {
		t.Fatal(err)
	}
	e := &env{fake: f, url: url, ca: ca, real: map[string]*remotetest.Key{}}
	e.real["a"] = f.AddKey("a")
	e.real["b"] = f.AddKey("b")
	e.real["ec"] = f.AddKeyOfType("ec", "ecdsa-p256")
	f.AddOther("p384", "ecdsa-p384")
	f.AddOther("aes", "aes256-gcm96")
	return e
}

func (e *env) config() Config {
	return Config{Address: e.url, Token: token, TLSCACert: e.ca, Timeout: yamlstrict.Duration(5 * time.Second)}
}

func open(t *testing.T, cfg Config) *Vault {
	t.Helper()
	v, err := Open("hc", cfg)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func message() ([]byte, *[32]byte) {
	msg := make([]byte, 40)
	rand.Read(msg)
	d := blake2b.Sum256(msg)
	return msg, &d
}

func signVerify(t *testing.T, k vault.Key) {
	t.Helper()
	msg, d := message()
	sig, err := k.Sign(t.Context(), msg, d, vault.SignOptions{})
	if err != nil {
		t.Fatalf("%s: %v", k.ID(), err)
	}
	if !tezos.Verify(k.PublicKey(), tezos.LowS(sig), msg, 2) { // the signer normalises ECDSA to low-S
		t.Fatalf("%s: signature does not verify", k.ID())
	}
}

func TestListAndSign(t *testing.T) {
	t.Parallel()
	e := newFake(t, "transit")
	keys, err := open(t, e.config()).List(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 3 || keys[0].ID() != "a/v1" || keys[1].ID() != "b/v1" || keys[2].ID() != "ec/v1" {
		t.Fatalf("listed %v", keys)
	}
	for _, k := range keys {
		if !k.PublicKey().Equal(e.real[k.(*Key).name].Public()) {
			t.Fatalf("%s: public key differs from the fake's", k.ID())
		}
		for i := 0; i < 4; i++ {
			signVerify(t, k)
		}
	}
	if c := tezos.CurveOf(keys[2].PublicKey()); c != tezos.P256 {
		t.Fatalf("ec: curve %s", c)
	}
	if e.real["ec"].HighS() == 0 {
		t.Fatal("ec: no high-S signature came through; normalisation is not exercised")
	}
}

// TestFakeRequestShapes: the fake refuses an ed25519 sign request that is prehashed and an
// ecdsa-p256 one that is not (Transit would hash the digest again), so the vault's parameters
// are really checked.
func TestFakeRequestShapes(t *testing.T) {
	t.Parallel()
	e := newFake(t, "transit")
	v := open(t, e.config())
	_, d := message()
	in := base64.StdEncoding.EncodeToString(d[:])
	for _, tc := range []struct {
		key  string
		body map[string]any
	}{
		{"a", map[string]any{"input": in, "prehashed": true}},
		{"a", map[string]any{"input": in, "hash_algorithm": "sha2-256"}},
		{"ec", map[string]any{"input": in}},
		{"ec", map[string]any{"input": in, "prehashed": true, "hash_algorithm": "sha2-512"}},
		{"ec", map[string]any{"input": in, "prehashed": true, "hash_algorithm": "sha2-256", "marshaling_algorithm": "jws"}},
		{"ec", map[string]any{"input": base64.StdEncoding.EncodeToString(d[:20]), "prehashed": true, "hash_algorithm": "sha2-256"}},
		{"p384", map[string]any{"input": in, "prehashed": true, "hash_algorithm": "sha2-256"}},
	} {
		_, err := v.client.Logical().Write("transit/sign/"+tc.key, tc.body)
		if err == nil || !strings.Contains(err.Error(), "400") {
			t.Errorf("%s %v: err = %v, want 400", tc.key, tc.body, err)
		}
	}
	if _, err := v.client.Logical().Write("transit/sign/ec", map[string]any{"input": in, "prehashed": true, "hash_algorithm": "sha2-256"}); err != nil {
		t.Errorf("ec, default marshaling: %v", err)
	}
}

// TestRotationKeepsListedVersion: after a rotation the listed key still signs with its version;
// the next List offers the new version.
func TestRotationKeepsListedVersion(t *testing.T) {
	t.Parallel()
	e := newFake(t, "transit")
	v := open(t, e.config())
	keys, _ := v.List(t.Context())
	e.fake.Rotate("a")
	e.fake.Rotate("ec")
	signVerify(t, keys[0])
	signVerify(t, keys[2])
	keys, err := v.List(t.Context())
	if err != nil || keys[0].ID() != "a/v2" || keys[2].ID() != "ec/v2" {
		t.Fatalf("%v %v", keys, err)
	}
	signVerify(t, keys[0])
	signVerify(t, keys[2])
}

// TestAppRoleReferenceSchema uses the reference's keys, a custom mount and AppRole; when every
// token is revoked, the vault logs in again.
func TestAppRoleReferenceSchema(t *testing.T) {
	t.Parallel()
	e := newFake(t, "signing/transit")
	node := &yaml.Node{}
	doc := "address: " + e.url + "\nroleID: role-1\nsecretID: secret-1\ntlsCaCert: " + e.ca +
		"\ntransitConfig:\n  mountPoint: signing/transit/\n"
	if err := yaml.Unmarshal([]byte(doc), node); err != nil {
		t.Fatal(err)
	}
	v, err := New(t.Context(), "hc", node.Content[0], vault.Env{})
	if err != nil {
		t.Fatal(err)
	}
	keys, err := v.List(t.Context())
	if err != nil || len(keys) != 3 {
		t.Fatalf("%v %v", keys, err)
	}
	signVerify(t, keys[1])
	if n := e.fake.Calls("login"); n != 1 {
		t.Fatalf("%d logins, want 1", n)
	}
	e.fake.RevokeAll()
	signVerify(t, keys[1])
	if n := e.fake.Calls("login"); n != 2 {
		t.Fatalf("%d logins, want 2", n)
	}
}

func TestWrongCredentials(t *testing.T) {
	t.Parallel()
	e := newFake(t, "transit")
	cfg := e.config()
	cfg.Token = "wrong"
	_, err := open(t, cfg).List(t.Context())
	if err == nil || !strings.Contains(err.Error(), "Vault answered 403: permission denied") {
		t.Fatalf("err = %v", err)
	}
	cfg.Token, cfg.RoleID, cfg.SecretID = "", "role-1", "wrong"
	_, err = open(t, cfg).List(t.Context())
	if err == nil || !strings.Contains(err.Error(), "AppRole login: Vault answered 400: invalid role or secret ID") {
		t.Fatalf("err = %v", err)
	}
}

func TestNamedAndUnknownKeys(t *testing.T) {
	t.Parallel()
	e := newFake(t, "transit")
	cfg := e.config()
	cfg.Keys = []string{"b", "p384", "ec", "aes"}
	keys, err := open(t, cfg).List(t.Context())
	if err != nil || len(keys) != 2 || keys[0].ID() != "b/v1" || keys[1].ID() != "ec/v1" || e.fake.Calls("list") != 0 {
		t.Fatalf("%v %v", keys, err)
	}
	cfg.Keys = []string{"missing"}
	if _, err = open(t, cfg).List(t.Context()); err == nil || !strings.Contains(err.Error(), "no such key") {
		t.Fatalf("unknown key: %v", err)
	}
	gone := &Key{v: keys[0].(*Key).v, name: "gone", version: 1, pub: keys[0].(*Key).pub}
	msg, d := message()
	if _, err = gone.Sign(t.Context(), msg, d, vault.SignOptions{}); err == nil || !strings.Contains(err.Error(), "signing key not found") {
		t.Fatalf("sign with an unknown key: %v", err)
	}
}

func TestThrottlingIsRetried(t *testing.T) {
	t.Parallel()
	e := newFake(t, "transit")
	keys, err := open(t, e.config()).List(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	e.fake.Throttle(2)
	signVerify(t, keys[0])
	if n := e.fake.Calls("sign"); n != 3 {
		t.Fatalf("%d sign calls, want 3", n)
	}
	e.fake.Throttle(10)
	msg, d := message()
	_, err = keys[0].Sign(t.Context(), msg, d, vault.SignOptions{})
	if err == nil || !strings.Contains(err.Error(), "429") {
		t.Fatalf("err = %v", err)
	}
	if n := e.fake.Calls("sign"); n != 3+1+DefaultMaxRetries {
		t.Fatalf("%d sign calls, want %d", n, 3+1+DefaultMaxRetries)
	}
}

func TestTimeout(t *testing.T) {
	t.Parallel()
	e := newFake(t, "transit")
	// Open and List run with the ordinary timeout: only Sign is the subject here.
	v := open(t, e.config())
	keys, err := v.List(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	v.timeout = 300 * time.Millisecond
	e.fake.Delay(10 * time.Second)
	msg, d := message()
	_, err = keys[0].Sign(t.Context(), msg, d, vault.SignOptions{})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v", err)
	}
}

func TestConfigErrors(t *testing.T) {
	t.Setenv("VAULT_TOKEN", "")
	t.Setenv("VAULT_ADDR", "")
	for _, tc := range []struct{ yaml, want string }{
		{"address: https://v:8200\n", "no credentials"},
		{"address: ftp://v\ntoken: t\n", "is not a Vault URL"},
		{"address: https://v:8200\ntoken: t\ntls_client_cert: c.pem\n", "go together"},
		{"address: https://v:8200\ntoken: t\ntransitConfig:\n  mount: x\n", `unknown config key "mount"`},
	} {
		node := &yaml.Node{}
		if err := yaml.Unmarshal([]byte(tc.yaml), node); err != nil {
			t.Fatal(err)
		}
		_, err := New(t.Context(), "hc", node.Content[0], vault.Env{})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: err = %v, want %q", tc.yaml, err, tc.want)
		}
	}
}

func TestConformance(t *testing.T) {
	t.Parallel()
	e := newFake(t, "transit")
	vaulttest.Run(t, vaulttest.Fixture{
		Driver: Driver,
		Open:   func(t *testing.T) vault.Vault { return open(t, e.config()) },
		Curves: []tezos.Curve{tezos.Ed25519, tezos.P256},
		Stall: func(*testing.T) func() {
			e.fake.Delay(time.Hour)
			return func() { e.fake.Delay(0) }
		},
	})
}
