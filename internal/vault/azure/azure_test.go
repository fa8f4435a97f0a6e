package azure

import (
	"context"
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/blake2b"
	"gopkg.in/yaml.v3"

	"github.com/signatory-go/signatory/internal/fault"
	"github.com/signatory-go/signatory/internal/tezos"
	"github.com/signatory-go/signatory/internal/vault"
	"github.com/signatory-go/signatory/internal/vault/azure/azuretest"
	"github.com/signatory-go/signatory/internal/vault/remote/remotetest"
	"github.com/signatory-go/signatory/internal/vault/vaulttest"
	"github.com/signatory-go/signatory/internal/yamlstrict"
)

const token = "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.test"

type env struct {
	fake *azuretest.Azure
	ca   string
	real map[string]*remotetest.Key
}

// newFake serves a vault holding P-256 and P-256K keys and keys the signer must skip.
func newFake(t *testing.T) *env {
	t.Helper()
	f := azuretest.New(token)
	cert, stop := f.Start()
	t.Cleanup(stop)
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, cert.PEM, 0o600); err != nil {
		t.Fatal(err)
	}
	e := &env{fake: f, ca: ca, real: map[string]*remotetest.Key{}}
	e.real["p256"] = f.AddKey("p256", tezos.P256)
	f.AddOther("rsa", "RSA", "")
	e.real["k1"] = f.AddKey("k1", tezos.Secp256k1)
	f.AddOther("p384", "EC", "P-384")
	f.AddOther("off", "disabled", "")
	e.real["p256b"] = f.AddKey("p256b", tezos.P256)
	return e
}

func (e *env) config() Config {
	return Config{Vault: e.fake.URL, AccessToken: token, TLSCACert: e.ca, DisableChallengeResourceVerification: true,
		Timeout: yamlstrict.Duration(5 * time.Second)}
}

func open(t *testing.T, cfg Config) *Vault {
	t.Helper()
	v, err := Open("az", cfg)
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

func TestListAndSign(t *testing.T) {
	t.Parallel()
	e := newFake(t)
	keys, err := open(t, e.config()).List(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, k := range keys {
		names = append(names, k.(*Key).name)
	}
	sort.Strings(names)
	if strings.Join(names, " ") != "k1 p256 p256b" {
		t.Fatalf("listed %v", names)
	}
	for _, k := range keys {
		if !k.PublicKey().Equal(e.real[k.(*Key).name].Public()) {
			t.Fatalf("%s: public key differs from the fake's", k.ID())
		}
		highS := 0
		for i := 0; i < 4; i++ {
			msg, d := message()
			sig, err := k.Sign(t.Context(), msg, d, vault.SignOptions{})
			if err != nil {
				t.Fatalf("%s: %v", k.ID(), err)
			}
			if !tezos.IsLowS(sig) {
				highS++
			}
			if !tezos.Verify(k.PublicKey(), tezos.LowS(sig), msg, 2) {
				t.Fatalf("%s: signature does not verify", k.ID())
			}
		}
		if highS == 0 {
			t.Fatalf("%s: no high-S signature came through", k.ID())
		}
	}
}

func TestNamedKeys(t *testing.T) {
	t.Parallel()
	e := newFake(t)
	cfg := e.config()
	cfg.Keys = []string{"k1", "rsa"}
	keys, err := open(t, cfg).List(t.Context())
	if err != nil || len(keys) != 1 || keys[0].(*Key).name != "k1" {
		t.Fatalf("%v, %v", keys, err)
	}
	if e.fake.Calls("list") != 0 {
		t.Fatal("named keys were listed")
	}
	cfg.Keys = []string{"missing"}
	_, err = open(t, cfg).List(t.Context())
	if err == nil || !strings.Contains(err.Error(), "404 KeyNotFound") || fault.KindOf(err) != fault.NotFound {
		t.Fatalf("unknown key: %v", err)
	}
}

func TestWrongToken(t *testing.T) {
	t.Parallel()
	e := newFake(t)
	cfg := e.config()
	cfg.AccessToken = "wrong"
	_, err := open(t, cfg).List(t.Context())
	if err == nil || !strings.Contains(err.Error(), "401 Unauthorized") {
		t.Fatalf("err = %v", err)
	}
	t.Log(err)
}

func TestUnknownOrDisabledKeyAtSign(t *testing.T) {
	t.Parallel()
	e := newFake(t)
	v := open(t, e.config())
	keys, err := v.List(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	var p256 *Key
	for _, k := range keys {
		if k.(*Key).name == "p256" {
			p256 = k.(*Key)
		}
	}
	msg, d := message()
	gone := *p256
	gone.version = "ffff"
	_, err = gone.Sign(t.Context(), msg, d, vault.SignOptions{})
	if err == nil || !strings.Contains(err.Error(), "404 KeyNotFound") || fault.KindOf(err) != fault.NotFound {
		t.Fatalf("unknown version: %v", err)
	}
	e.fake.Disable("p256")
	_, err = p256.Sign(t.Context(), msg, d, vault.SignOptions{})
	if err == nil || !strings.Contains(err.Error(), "403 Forbidden") {
		t.Fatalf("disabled key: %v", err)
	}
	if keys, _ := v.List(t.Context()); len(keys) != 2 {
		t.Fatalf("a disabled key is still listed: %d keys", len(keys))
	}
}

func TestThrottlingIsRetried(t *testing.T) {
	t.Parallel()
	e := newFake(t)
	keys, err := open(t, e.config()).List(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	e.fake.Throttle(2)
	msg, d := message()
	if _, err := keys[0].Sign(t.Context(), msg, d, vault.SignOptions{}); err != nil {
		t.Fatalf("throttled twice, then: %v", err)
	}
	if n := e.fake.Calls("sign"); n != 3 {
		t.Fatalf("%d sign calls, want 3", n)
	}
	e.fake.Throttle(10)
	_, err = keys[0].Sign(t.Context(), msg, d, vault.SignOptions{})
	if err == nil || !strings.Contains(err.Error(), "429 Throttled") || fault.KindOf(err) != fault.Unavailable {
		t.Fatalf("err = %v", err)
	}
	if n := e.fake.Calls("sign"); n != 3+1+DefaultMaxRetries {
		t.Fatalf("%d sign calls, want %d", n, 3+1+DefaultMaxRetries)
	}
}

func TestTimeout(t *testing.T) {
	t.Parallel()
	e := newFake(t)
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
	for _, tc := range []struct{ yaml, want string }{
		{"tenant_id: x\n", "vault must be the key vault's https URL"},
		{"vault: http://x.vault.azure.net\n", "https URL"},
		{"vault: https://x.vault.azure.net\nclient_secret: s\n", "needs tenant_id and client_id"},
		{"vault: https://x.vault.azure.net\nclientid: s\n", `unknown config key "clientid"`},
		{"vault: https://x.vault.azure.net\ntenant_id: t\nclient_id: c\nclient_certificate: /nonexistent.pem\n", "cannot read the client certificate"},
	} {
		node := &yaml.Node{}
		if err := yaml.Unmarshal([]byte(tc.yaml), node); err != nil {
			t.Fatal(err)
		}
		_, err := New(t.Context(), "az", node.Content[0], vault.Env{})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: err = %v, want %q", tc.yaml, err, tc.want)
		}
	}
}

func TestConformance(t *testing.T) {
	t.Parallel()
	e := newFake(t)
	vaulttest.Run(t, vaulttest.Fixture{
		Driver: Driver,
		Open:   func(t *testing.T) vault.Vault { return open(t, e.config()) },
		Curves: []tezos.Curve{tezos.Secp256k1, tezos.P256},
		Stall: func(*testing.T) func() {
			e.fake.Delay(time.Hour)
			return func() { e.fake.Delay(0) }
		},
	})
}
