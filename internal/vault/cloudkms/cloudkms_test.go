package cloudkms

import (
	"crypto/rand"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"cloud.google.com/go/kms/apiv1/kmspb"
	"github.com/ecadlabs/gotez/v2/crypt"
	"golang.org/x/crypto/blake2b"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/wrapperspb"
	"gopkg.in/yaml.v3"

	"github.com/signatory-go/signatory/internal/tezos"
	"github.com/signatory-go/signatory/internal/vault"
	"github.com/signatory-go/signatory/internal/vault/cloudkms/cloudkmstest"
	"github.com/signatory-go/signatory/internal/vault/remote/remotetest"
	"github.com/signatory-go/signatory/internal/vault/vaulttest"
	"github.com/signatory-go/signatory/internal/yamlstrict"
)

const token = "ya29.test-token"

type env struct {
	fake *cloudkmstest.GCP
	addr string
	ring string
}

// newFake starts a plaintext fake holding, in key ring p/l/r: a P-256 key with versions
// ENABLED, DISABLED, ENABLED; a secp256k1 key; an Ed25519 key; and keys that must be skipped.
func newFake(t *testing.T, cert *remotetest.Cert) *env {
	t.Helper()
	f := cloudkmstest.New(token)
	ring := f.KeyRing("p", "l", "r")
	en, dis := kmspb.CryptoKeyVersion_ENABLED, kmspb.CryptoKeyVersion_DISABLED
	sign := kmspb.CryptoKey_ASYMMETRIC_SIGN
	f.AddKey(ring, "p256", sign, kmspb.CryptoKeyVersion_EC_SIGN_P256_SHA256, en, dis, en)
	f.AddKey(ring, "symmetric", kmspb.CryptoKey_ENCRYPT_DECRYPT, kmspb.CryptoKeyVersion_GOOGLE_SYMMETRIC_ENCRYPTION, en)
	f.AddKey(ring, "rsa", sign, kmspb.CryptoKeyVersion_RSA_SIGN_PSS_2048_SHA256, en)
	f.AddKey(ring, "k1", sign, kmspb.CryptoKeyVersion_EC_SIGN_SECP256K1_SHA256, en)
	f.AddKey(ring, "p384", sign, kmspb.CryptoKeyVersion_EC_SIGN_P384_SHA384, en)
	f.AddKey(ring, "ed", sign, kmspb.CryptoKeyVersion_EC_SIGN_ED25519, en, dis)
	addr, stop := f.Start(cert)
	t.Cleanup(stop)
	return &env{fake: f, addr: addr, ring: ring}
}

func (e *env) config() Config {
	return Config{Project: "p", Location: "l", KeyRing: "r", Endpoint: e.addr, Insecure: true, AccessToken: token,
		Timeout: yamlstrict.Duration(5 * time.Second)}
}

func open(t *testing.T, cfg Config) *Vault {
	t.Helper()
	v, err := Open(t.Context(), "gcp", cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { v.Close() })
	return v
}

func digest(t *testing.T) *[32]byte {
	_, d := message()
	return d
}

func message() ([]byte, *[32]byte) {
	msg := make([]byte, 40)
	rand.Read(msg)
	d := blake2b.Sum256(msg)
	return msg, &d
}

func TestListAndSign(t *testing.T) {
	t.Parallel()
	e := newFake(t, nil)
	v := open(t, e.config())
	keys, err := v.List(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, k := range keys {
		ids = append(ids, k.ID())
	}
	sort.Strings(ids)
	want := []string{e.ring + "/cryptoKeys/ed/cryptoKeyVersions/1", e.ring + "/cryptoKeys/k1/cryptoKeyVersions/1",
		e.ring + "/cryptoKeys/p256/cryptoKeyVersions/1", e.ring + "/cryptoKeys/p256/cryptoKeyVersions/3"}
	if strings.Join(ids, " ") != strings.Join(want, " ") {
		t.Fatalf("listed %v, want %v", ids, want)
	}
	real := e.fake.Keys()
	for _, k := range keys {
		if !k.PublicKey().Equal(real[k.ID()].Public()) {
			t.Fatalf("%s: public key differs from the fake's", k.ID())
		}
		curve := tezos.CurveOf(k.PublicKey())
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
				t.Fatalf("%s (%s): signature does not verify", k.ID(), curve)
			}
		}
		if curve == tezos.Ed25519 {
			if _, ok := k.PublicKey().(crypt.Ed25519PublicKey); !ok {
				t.Fatalf("%s: public key is %T", k.ID(), k.PublicKey())
			}
		} else if highS == 0 {
			t.Fatalf("%s: no high-S signature came through; normalisation is not exercised", k.ID())
		}
	}
	// A second List reuses the public keys: no more GetPublicKey calls.
	n := e.fake.Calls("GetPublicKey")
	if _, err := v.List(t.Context()); err != nil {
		t.Fatal(err)
	}
	if e.fake.Calls("GetPublicKey") != n {
		t.Fatal("public keys were fetched again")
	}
}

func TestWrongToken(t *testing.T) {
	t.Parallel()
	e := newFake(t, nil)
	cfg := e.config()
	cfg.AccessToken = "wrong"
	_, err := open(t, cfg).List(t.Context())
	if err == nil || !strings.Contains(err.Error(), "Unauthenticated") || !strings.Contains(err.Error(), "ListCryptoKeys") {
		t.Fatalf("err = %v, want a clear Unauthenticated error", err)
	}
	cfg.AccessToken = ""
	if _, err := open(t, cfg).List(t.Context()); err == nil || !strings.Contains(err.Error(), "Unauthenticated") {
		t.Fatalf("no token: err = %v", err)
	}
}

func TestUnknownKeyRingAndDisabledVersion(t *testing.T) {
	t.Parallel()
	e := newFake(t, nil)
	cfg := e.config()
	cfg.KeyRing = "nope"
	if _, err := open(t, cfg).List(t.Context()); err == nil || !strings.Contains(err.Error(), "NotFound") {
		t.Fatalf("unknown key ring: err = %v", err)
	}
	v := open(t, e.config())
	keys, err := v.List(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	e.fake.SetState(keys[0].ID(), kmspb.CryptoKeyVersion_DISABLED)
	_, err = keys[0].Sign(t.Context(), nil, digest(t), vault.SignOptions{})
	if err == nil || !strings.Contains(err.Error(), "FailedPrecondition") || !strings.Contains(err.Error(), keys[0].ID()) {
		t.Fatalf("disabled version: err = %v", err)
	}
	if keys, _ = v.List(t.Context()); len(keys) != 3 {
		t.Fatalf("a disabled version is still listed: %d keys", len(keys))
	}
}

func TestThrottlingIsRetried(t *testing.T) {
	t.Parallel()
	e := newFake(t, nil)
	v := open(t, e.config())
	keys, err := v.List(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	e.fake.Throttle(2)
	start := time.Now()
	if _, err := keys[0].Sign(t.Context(), nil, digest(t), vault.SignOptions{}); err != nil {
		t.Fatalf("throttled twice, then: %v", err)
	}
	if n := e.fake.Calls("sign"); n != 3 {
		t.Fatalf("%d sign calls, want 3", n)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("two retries took %v", d)
	}
	// More throttling than retries: the last error is returned.
	e.fake.Throttle(10)
	_, err = keys[0].Sign(t.Context(), nil, digest(t), vault.SignOptions{})
	if err == nil || !strings.Contains(err.Error(), "ResourceExhausted") {
		t.Fatalf("err = %v", err)
	}
	if n := e.fake.Calls("sign"); n != 3+1+DefaultMaxRetries {
		t.Fatalf("%d sign calls, want %d", n, 3+1+DefaultMaxRetries)
	}
}

func TestTimeout(t *testing.T) {
	t.Parallel()
	e := newFake(t, nil)
	// Open and List run with the ordinary timeout: only Sign is the subject here, and a short
	// deadline on the set-up calls made this test fail on a loaded machine.
	v := open(t, e.config())
	keys, err := v.List(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	v.timeout = 300 * time.Millisecond
	e.fake.Delay(10 * time.Second)
	_, err = keys[0].Sign(t.Context(), nil, digest(t), vault.SignOptions{})
	if err == nil || !strings.Contains(err.Error(), "DeadlineExceeded") {
		t.Fatalf("err = %v", err)
	}
}

func TestTLSEndpoint(t *testing.T) {
	t.Parallel()
	cert := remotetest.NewCert()
	e := newFake(t, cert)
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, cert.PEM, 0o600); err != nil {
		t.Fatal(err)
	}
	node := &yaml.Node{}
	if err := yaml.Unmarshal([]byte("project: p\nlocation: l\nkey_ring: r\nendpoint: "+e.addr+
		"\ntls_ca_cert: "+ca+"\naccess_token: "+token+"\ntimeout: 5\n"), node); err != nil {
		t.Fatal(err)
	}
	vv, err := New(t.Context(), "gcp", node.Content[0], vault.Env{})
	if err != nil {
		t.Fatal(err)
	}
	defer vv.Close()
	keys, err := vv.List(t.Context())
	if err != nil || len(keys) != 4 {
		t.Fatalf("%d keys, %v", len(keys), err)
	}
	for _, k := range keys {
		if _, err := k.Sign(t.Context(), nil, digest(t), vault.SignOptions{}); err != nil {
			t.Fatal(err)
		}
	}
}

// TestFakeRequestShapes: the fake refuses a digest for Ed25519 (pure EdDSA signs data) and data
// for ECDSA, as Cloud KMS does, so the vault's choice of field is really checked.
func TestFakeRequestShapes(t *testing.T) {
	t.Parallel()
	e := newFake(t, nil)
	v := open(t, e.config())
	ctx := t.Context()
	d := digest(t)
	for _, tc := range []struct {
		key  string
		req  *kmspb.AsymmetricSignRequest
		want string
	}{
		{"ed", &kmspb.AsymmetricSignRequest{Digest: &kmspb.Digest{Digest: &kmspb.Digest_Sha256{Sha256: d[:]}}}, "requires data, not a digest"},
		{"ed", &kmspb.AsymmetricSignRequest{Data: d[:], Digest: &kmspb.Digest{Digest: &kmspb.Digest_Sha256{Sha256: d[:]}}}, "requires data, not a digest"},
		{"ed", &kmspb.AsymmetricSignRequest{}, "requires data to sign"},
		{"ed", &kmspb.AsymmetricSignRequest{Data: d[:], DataCrc32C: wrapperspb.Int64(1)}, "data_crc32c did not match"},
		{"p256", &kmspb.AsymmetricSignRequest{Data: d[:]}, "requires a digest, not data"},
		{"k1", &kmspb.AsymmetricSignRequest{Data: d[:], Digest: &kmspb.Digest{Digest: &kmspb.Digest_Sha256{Sha256: d[:]}}}, "requires a digest, not data"},
	} {
		tc.req.Name = e.ring + "/cryptoKeys/" + tc.key + "/cryptoKeyVersions/1"
		_, err := v.client.AsymmetricSign(ctx, tc.req)
		if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want InvalidArgument %q", tc.key, err, tc.want)
		}
	}
}

func TestConfigErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ yaml, want string }{
		{"project: p\nlocation: l\n", "key_ring are required"},
		{"project: p\nlocation: l\nkeyring: r\n", `unknown config key "keyring"`},
		{"project: p\nlocation: l\nkey_ring: r\ninsecure: true\n", "insecure needs an endpoint"},
		{"project: p\nlocation: l\nkey_ring: r\napplication_credentials_data: '{\"type\":\"x\"}'\n", `type "x" are not supported`},
	} {
		node := &yaml.Node{}
		if err := yaml.Unmarshal([]byte(tc.yaml), node); err != nil {
			t.Fatal(err)
		}
		_, err := New(t.Context(), "gcp", node.Content[0], vault.Env{})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: err = %v, want %q", tc.yaml, err, tc.want)
		}
	}
}

func TestConformance(t *testing.T) {
	t.Parallel()
	e := newFake(t, nil)
	vaulttest.Run(t, vaulttest.Fixture{
		Driver: Driver,
		Open: func(t *testing.T) vault.Vault {
			v, err := Open(t.Context(), "gcp", e.config())
			if err != nil {
				t.Fatal(err)
			}
			return v
		},
		Curves: []tezos.Curve{tezos.Ed25519, tezos.Secp256k1, tezos.P256},
		Stall: func(*testing.T) func() {
			e.fake.Delay(time.Hour)
			return func() { e.fake.Delay(0) }
		},
	})
}
