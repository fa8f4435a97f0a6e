package awskms

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/base64"
	"encoding/json"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/decred/dcrd/dcrec/secp256k1/v4"
	"github.com/ecadlabs/gotez/v2/crypt"
	"gopkg.in/yaml.v3"

	"github.com/signatory-go/signatory/internal/tezos"
	"github.com/signatory-go/signatory/internal/vault"
	"github.com/signatory-go/signatory/internal/yamlstrict"
)

func secp256k1SPKI(t testing.TB, point []byte, curve asn1.ObjectIdentifier) []byte {
	t.Helper()
	params, _ := asn1.Marshal(curve)
	der, err := asn1.Marshal(spki{
		Algorithm: pkix.AlgorithmIdentifier{Algorithm: oidECPublicKey, Parameters: asn1.RawValue{FullBytes: params}},
		PublicKey: asn1.BitString{Bytes: point, BitLength: 8 * len(point)},
	})
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func TestParsePublicKey(t *testing.T) {
	t.Parallel()
	p256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	p256DER, _ := x509.MarshalPKIXPublicKey(&p256.PublicKey)
	k1, _ := secp256k1.GeneratePrivateKey()
	k1DER := secp256k1SPKI(t, k1.PubKey().SerializeUncompressed(), oidSecp256k1)

	pub, err := parsePublicKey(p256DER, types.KeySpecEccNistP256)
	if err != nil || pub.X.Cmp(p256.X) != 0 || tezos.CurveOf(pub) != tezos.P256 {
		t.Fatalf("P-256: %v, %v", pub, err)
	}
	pub, err = parsePublicKey(k1DER, types.KeySpecEccSecgP256k1)
	if err != nil || pub.X.Cmp(k1.PubKey().X()) != 0 || pub.Y.Cmp(k1.PubKey().Y()) != 0 || tezos.CurveOf(pub) != tezos.Secp256k1 {
		t.Fatalf("secp256k1: %v, %v", pub, err)
	}
	if !strings.HasPrefix(pub.Hash().String(), "tz2") {
		t.Fatalf("secp256k1 key hash %s", pub.Hash())
	}

	bad := k1.PubKey().SerializeUncompressed()
	bad[40] ^= 1 // off the curve
	for name, c := range map[string]struct {
		der  []byte
		spec types.KeySpec
	}{
		"p256 as k1":    {p256DER, types.KeySpecEccSecgP256k1},
		"k1 as p256":    {k1DER, types.KeySpecEccNistP256},
		"off curve":     {secp256k1SPKI(t, bad, oidSecp256k1), types.KeySpecEccSecgP256k1},
		"trailing data": {append(append([]byte{}, k1DER...), 0), types.KeySpecEccSecgP256k1},
		"other curve":   {secp256k1SPKI(t, k1.PubKey().SerializeUncompressed(), asn1.ObjectIdentifier{1, 3, 132, 0, 34}), types.KeySpecEccSecgP256k1},
		"garbage":       {[]byte{0x30, 0x03, 1, 2, 3}, types.KeySpecEccSecgP256k1},
		"rsa spec":      {p256DER, types.KeySpecRsa2048},
	} {
		if _, err := parsePublicKey(c.der, c.spec); err == nil {
			t.Errorf("%s: parsed", name)
		}
	}
}

func TestParseSignature(t *testing.T) {
	t.Parallel()
	n := elliptic.P256().Params().N
	der := func(r, s *big.Int) []byte { b, _ := asn1.Marshal(struct{ R, S *big.Int }{r, s}); return b }
	one := big.NewInt(1)
	if sig, err := parseSignature(der(one, new(big.Int).Sub(n, one)), elliptic.P256()); err != nil || sig.S.Cmp(n) >= 0 {
		t.Fatalf("valid: %v %v", sig, err)
	}
	for name, b := range map[string][]byte{
		"zero r":   der(big.NewInt(0), one),
		"s = n":    der(one, n),
		"negative": der(big.NewInt(-1), one),
		"trailing": append(der(one, one), 0),
		"empty":    nil,
	} {
		if _, err := parseSignature(b, elliptic.P256()); err == nil {
			t.Errorf("%s: parsed", name)
		}
	}
}

func TestConfigErrors(t *testing.T) {
	t.Setenv("AWS_REGION", "")
	t.Setenv("AWS_DEFAULT_REGION", "")
	t.Setenv("AWS_CONFIG_FILE", "/nonexistent")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
	t.Setenv("AWS_PROFILE", "")
	for name, c := range map[string]struct{ yaml, want string }{
		"half credentials": {"region: us-east-1\naccess_key_id: AKID\n", "must be given together"},
		"no region":        {"access_key_id: AKID\nsecret_access_key: s3cr3t\n", "region is not set"},
		"empty key":        {"region: us-east-1\nkeys: ['']\n", "keys[0] is empty"},
		"bad timeout":      {"region: us-east-1\ntimeout: soon\n", "invalid duration"},
	} {
		var n yaml.Node
		if err := yaml.Unmarshal([]byte(c.yaml), &n); err != nil {
			t.Fatal(err)
		}
		_, err := New(t.Context(), "aws", n.Content[0], vault.Env{})
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "vault aws") {
			t.Errorf("%s: %v, want %q", name, err, c.want)
		}
		if err != nil && strings.Contains(err.Error(), "s3cr3t") {
			t.Errorf("%s: the error shows the secret: %v", name, err)
		}
	}
}

// fakeKMS answers the KMS JSON protocol with handler(target, body).
func fakeKMS(t *testing.T, handler func(target string, body map[string]any) (int, any)) *httptest.Server {
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var body map[string]any
		_ = json.Unmarshal(b, &body)
		target := strings.TrimPrefix(r.Header.Get("X-Amz-Target"), "TrentService.")
		code, out := handler(target, body)
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		w.WriteHeader(code)
		_ = json.NewEncoder(w).Encode(out)
	}))
	t.Cleanup(s.Close)
	return s
}

func openFake(t *testing.T, endpoint string, keys []string, timeout time.Duration) *Vault {
	t.Helper()
	v, err := Open(t.Context(), "fake", Config{Region: "us-east-1", AccessKeyID: "AKIDFAKE",
		SecretAccessKey: "s3cr3t-value", Endpoint: endpoint, Keys: keys, Timeout: yamlstrict.Duration(timeout)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// TestWrongCredentials: KMS refuses the signature; List fails with AWS's reason and the key id,
// and never shows the secret.
func TestWrongCredentials(t *testing.T) {
	t.Parallel()
	s := fakeKMS(t, func(string, map[string]any) (int, any) {
		return 400, map[string]string{"__type": "UnrecognizedClientException", "message": "The security token included in the request is invalid."}
	})
	for _, keys := range [][]string{nil, {"alias/baker"}} {
		_, err := openFake(t, s.URL, keys, 5*time.Second).List(t.Context())
		if err == nil || !strings.Contains(err.Error(), "UnrecognizedClientException") || strings.Contains(err.Error(), "s3cr3t") {
			t.Fatalf("List with keys %v = %v", keys, err)
		}
		if keys != nil && !strings.Contains(err.Error(), "key alias/baker") {
			t.Fatalf("error does not name the key: %v", err)
		}
	}
}

// TestRetryThrottling: throttled and 5xx answers are retried with backoff; the signature is
// parsed, normalised to low S and verifies.
func TestRetryThrottling(t *testing.T) {
	t.Parallel()
	priv, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	pubDER, _ := x509.MarshalPKIXPublicKey(&priv.PublicKey)
	var signCalls atomic.Int32
	s := fakeKMS(t, func(target string, body map[string]any) (int, any) {
		switch target {
		case "GetPublicKey":
			return 200, map[string]any{"KeyId": "arn:aws:kms:us-east-1:1:key/k", "KeySpec": "ECC_NIST_P256",
				"KeyUsage": "SIGN_VERIFY", "PublicKey": pubDER}
		case "Sign":
			switch signCalls.Add(1) {
			case 1:
				return 400, map[string]string{"__type": "ThrottlingException", "message": "Rate exceeded"}
			case 2:
				return 500, map[string]string{"__type": "KMSInternalException", "message": "oops"}
			}
			msg, _ := base64.StdEncoding.DecodeString(body["Message"].(string))
			r, sv, _ := ecdsa.Sign(rand.Reader, priv, msg)
			if sv.Cmp(new(big.Int).Rsh(elliptic.P256().Params().N, 1)) <= 0 {
				sv.Sub(elliptic.P256().Params().N, sv) // always answer high S
			}
			sig, _ := asn1.Marshal(struct{ R, S *big.Int }{r, sv})
			return 200, map[string]any{"KeyId": "arn:aws:kms:us-east-1:1:key/k", "Signature": sig, "SigningAlgorithm": "ECDSA_SHA_256"}
		}
		return 400, map[string]string{"__type": "UnsupportedOperationException"}
	})
	v := openFake(t, s.URL, []string{"k"}, 10*time.Second)
	keys, err := v.List(t.Context())
	if err != nil || len(keys) != 1 {
		t.Fatalf("List = %v, %v", keys, err)
	}
	msg := []byte("\x03payload")
	digest := [32]byte(crypt.DigestFunc(msg))
	sig, err := keys[0].Sign(t.Context(), msg, &digest, vault.SignOptions{})
	if err != nil {
		t.Fatalf("Sign: %v", err)
	}
	if n := signCalls.Load(); n != 3 {
		t.Fatalf("%d Sign calls, want 3 (two retried failures)", n)
	}
	if !tezos.Verify(keys[0].PublicKey(), tezos.LowS(sig), msg, 2) {
		t.Fatalf("signature does not verify")
	}
}

// TestSignTimeout: a KMS that never answers makes Sign fail within the vault's timeout, naming
// the key.
func TestSignTimeout(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-release }))
	t.Cleanup(s.Close)
	t.Cleanup(func() { close(release) })
	v := openFake(t, s.URL, nil, 300*time.Millisecond)
	pub, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	k := &Key{v: v, ref: "alias/slow", arn: "arn:slow", pub: (*crypt.ECDSAPublicKey)(&pub.PublicKey)}
	// The server never answers until the test ends: an error here is the timeout's doing.
	_, err := k.Sign(t.Context(), nil, &[32]byte{}, vault.SignOptions{})
	if err == nil || !strings.Contains(err.Error(), "key alias/slow") {
		t.Fatalf("Sign = %v", err)
	}
}

var (
	oidECPublicKey = asn1.ObjectIdentifier{1, 2, 840, 10045, 2, 1}
	oidSecp256k1   = asn1.ObjectIdentifier{1, 3, 132, 0, 10}
)

type spki struct {
	Algorithm pkix.AlgorithmIdentifier
	PublicKey asn1.BitString
}
