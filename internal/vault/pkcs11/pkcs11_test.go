package pkcs11

import (
	"context"
	"crypto/rand"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/ecadlabs/gotez/v2/crypt"
	p11 "github.com/miekg/pkcs11"

	"github.com/signatory-go/signatory/internal/tezos"
	"github.com/signatory-go/signatory/internal/vault"
	"github.com/signatory-go/signatory/internal/vault/vaulttest"
)

var ctx = context.Background()

func randomMessage(t testing.TB) ([]byte, *[32]byte) {
	msg := make([]byte, 1+int(randByte(t))%200)
	if _, err := rand.Read(msg); err != nil {
		t.Fatal(err)
	}
	d := [32]byte(crypt.DigestFunc(msg))
	return msg, &d
}

func randByte(t testing.TB) byte {
	var b [1]byte
	_, _ = rand.Read(b[:])
	return b[0]
}

// signVerify signs a random message with k and checks the signature as Tezos would.
func signVerify(t testing.TB, k vault.Key) {
	t.Helper()
	msg, d := randomMessage(t)
	sig, err := k.Sign(ctx, msg, d, vault.SignOptions{Version: 2})
	if err != nil {
		t.Fatal(err)
	}
	if !tezos.Verify(k.PublicKey(), tezos.LowS(sig), msg, 2) { // the signer normalises to low-S
		t.Fatalf("%s: signature does not verify", k.ID())
	}
}

func TestListDiscoversTezosKeys(t *testing.T) {
	need(t)
	t.Parallel()
	v, logs := open(t, "token_label: test\npin: \"1234\"\n")
	keys := keysByLabel(t, v)
	want := map[string]tezos.Curve{"k1": tezos.P256, "k2": tezos.Secp256k1, "k3": tezos.Ed25519}
	if len(keys) != len(want) {
		t.Fatalf("listed %d keys, want %d: %v", len(keys), len(want), keys)
	}
	for label, curve := range want {
		k := keys[label]
		if k == nil {
			t.Fatalf("key %s not listed", label)
		}
		if got := tezos.CurveOf(k.PublicKey()); got != curve {
			t.Errorf("%s: curve %s, want %s", label, got, curve)
		}
		prefix := map[tezos.Curve]string{tezos.Ed25519: "tz1", tezos.Secp256k1: "tz2", tezos.P256: "tz3"}[curve]
		if pkh := k.PublicKey().Hash().String(); !strings.HasPrefix(pkh, prefix) {
			t.Errorf("%s: key hash %s", label, pkh)
		}
	}
	if l := logs.String(); !strings.Contains(l, "unsupported curve P-384") || strings.Contains(l, "k9") {
		t.Errorf("want a warning for the P-384 key and none for the RSA key; log:\n%s", l)
	}
	if err := v.Ready(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestSignEveryCurve signs many digests per curve; the token's raw ECDSA signatures are high-S
// about half of the time, and every returned signature must be low-S and verify.
func TestSignEveryCurve(t *testing.T) {
	need(t)
	t.Parallel()
	v, _ := open(t, "token_label: test\npin: \"1234\"\n")
	for label, k := range keysByLabel(t, v) {
		t.Run(label, func(t *testing.T) {
			high := 0
			const n = 200
			for range n {
				msg, d := randomMessage(t)
				raw, err := v.sign(ctx, k, d[:])
				if err != nil {
					t.Fatal(err)
				}
				if k.curve != tezos.Ed25519 && new(big.Int).SetBytes(raw[32:]).Cmp(new(big.Int).Rsh(ellipticCurve(k.curve).Params().N, 1)) > 0 {
					high++
				}
				sig, err := signature(k.curve, raw)
				if err != nil {
					t.Fatal(err)
				}
				if !tezos.Verify(k.PublicKey(), tezos.LowS(sig), msg, 2) {
					t.Fatalf("signature %d does not verify", high)
				}
				signVerify(t, k) // and through the vault.Key interface
			}
			if k.curve != tezos.Ed25519 && (high == 0 || high == n) {
				t.Errorf("%d of %d raw signatures were high-S: normalisation not exercised", high, n)
			}
		})
	}
}

func TestConfiguredKeys(t *testing.T) {
	need(t)
	t.Parallel()
	v, _ := open(t, `token_label: test
pin: "1234"
keys:
  - label: k1
  - id: "02"
  - private: {label: k3}
    public: {id: "03"}
`)
	keys := keysByLabel(t, v)
	if len(keys) != 3 || keys["k1"] == nil || keys["k2"] == nil || keys["k3"] == nil {
		t.Fatalf("keys: %v", keys)
	}
	for _, k := range keys {
		signVerify(t, k)
	}
}

func TestUnknownKeyLabel(t *testing.T) {
	need(t)
	t.Parallel()
	v, _ := open(t, "token_label: test\npin: \"1234\"\nkeys: [{label: nope}]\n")
	_, err := v.List(ctx)
	if err == nil {
		t.Fatal("List succeeded with an unknown key label")
	}
	for _, want := range []string{`label "nope"`, `token "test"`, store.Module, "not found"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %s", err, want)
		}
	}
}

func TestOpenErrors(t *testing.T) {
	need(t)
	t.Parallel()
	notLib := filepath.Join(t.TempDir(), "notalib.so")
	if err := os.WriteFile(notLib, []byte("not a library"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, library, config string
		want                  []string
	}{
		{"wrong PIN", "", "token_label: pin\npin: \"0000\"\n", []string{"wrong PIN", `token "pin"`, "CKR_PIN_INCORRECT", store.Module}},
		{"missing module", "/nonexistent/libnothing.so", "pin: \"1234\"\n", []string{"/nonexistent/libnothing.so", "no such file"}},
		{"not a module", notLib, "pin: \"1234\"\n", []string{notLib, "cannot be loaded"}},
		{"unknown token", "", "token_label: nope\npin: \"1234\"\n", []string{`no token labelled "nope"`, `"test"`}},
		{"wrong slot", "", "slot: 4242\npin: \"1234\"\n", []string{"slot 4242"}},
		{"no PIN", "", "token_label: test\n", []string{"no user PIN", EnvPIN}},
		{"two PINs", "", "token_label: test\npin: \"1\"\npin_env: X\n", []string{"only one of"}},
		{"bad id", "", "token_label: test\npin: \"1\"\nkeys: [{id: xyz}]\n", []string{"not hex"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			config := tc.config
			if tc.library != "" {
				config = "library_path: " + tc.library + "\n" + config
			}
			v, _, err := tryOpen(config)
			if err == nil {
				v.Close()
				t.Fatal("opened")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "0000") {
				t.Errorf("error shows the PIN: %q", err)
			}
		})
	}
}

func TestPINSources(t *testing.T) {
	need(t)
	pinFile := filepath.Join(t.TempDir(), "pin")
	if err := os.WriteFile(pinFile, []byte("1234\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("TEST_HSM_PIN", "1234")
	for _, config := range []string{"pin_env: TEST_HSM_PIN\n", "pin_file: " + pinFile + "\n"} {
		v, _ := open(t, "token_label: test\n"+config)
		if len(keysByLabel(t, v)) != 3 {
			t.Fatalf("%s: wrong key count", config)
		}
	}
	t.Setenv(EnvPIN, "1234")
	v, _ := open(t, "token_label: test\n")
	if len(keysByLabel(t, v)) != 3 {
		t.Fatal("PKCS11_PIN: wrong key count")
	}
}

// TestConcurrentSigning signs from many goroutines through a pool of 3 sessions. It is not
// parallel: other tests may re-initialise the shared module, which empties the pool.
func TestConcurrentSigning(t *testing.T) {
	need(t)
	v, _ := open(t, "token_label: test\npin: \"1234\"\nsessions: 3\n")
	keys := keysByLabel(t, v)
	var wg sync.WaitGroup
	errs := make(chan error, 1)
	for g := range 12 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			k := keys[[]string{"k1", "k2", "k3"}[g%3]]
			for range 40 {
				msg, d := randomMessage(t)
				sig, err := k.Sign(ctx, msg, d, vault.SignOptions{})
				if err == nil && !tezos.Verify(k.PublicKey(), tezos.LowS(sig), msg, 2) {
					err = errBadSig
				}
				if err != nil {
					select {
					case errs <- err:
					default:
					}
					return
				}
			}
		}()
	}
	wg.Wait()
	select {
	case err := <-errs:
		t.Fatal(err)
	default:
	}
	v.pool.mu.Lock()
	idle := len(v.pool.idle)
	v.pool.mu.Unlock()
	if idle < 2 || idle > 3 {
		t.Errorf("%d idle sessions after the load, want 2..3 (the pool was used concurrently, within its size)", idle)
	}
}

var errBadSig = &opError{op: "signature does not verify", err: p11.Error(p11.CKR_SIGNATURE_INVALID)}

// TestLostSessionsAreReopened closes every session of the application behind the pool's back.
func TestLostSessionsAreReopened(t *testing.T) {
	need(t)
	v, _ := open(t, "token_label: test\npin: \"1234\"\nsessions: 2\n")
	keys := keysByLabel(t, v)
	signVerify(t, keys["k1"])
	err := v.mod.call(func(c *p11.Ctx, gen uint64) error { return c.CloseAllSessions(v.slot) })
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		signVerify(t, k)
	}
	if err := v.Ready(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestClosedVault(t *testing.T) {
	need(t)
	t.Parallel()
	v, _ := open(t, "token_label: test\npin: \"1234\"\n")
	k := keysByLabel(t, v)["k3"]
	v.Close()
	msg, d := randomMessage(t)
	if _, err := k.Sign(ctx, msg, d, vault.SignOptions{}); err == nil || !strings.Contains(err.Error(), "closed") {
		t.Fatalf("sign on a closed vault: %v", err)
	}
}

func TestConfiguredKeyOptions(t *testing.T) {
	need(t)
	t.Parallel()
	discovered := keysByLabel(t, func() *Vault { v, _ := open(t, "token_label: test\npin: \"1234\"\n"); return v }())
	p2pk := discovered["k1"].PublicKey().String()
	sppk := discovered["k2"].PublicKey().String()

	// An unsupported curve is skipped with a warning; public_value stands in for a public key object.
	v, logs := open(t, "token_label: test\npin: \"1234\"\nkeys:\n  - label: k5\n  - {label: k1, public_value: "+p2pk+"}\n")
	keys := keysByLabel(t, v)
	if len(keys) != 1 || keys["k1"] == nil || !strings.Contains(logs.String(), "unsupported curve P-384") {
		t.Fatalf("keys %v, log:\n%s", keys, logs)
	}
	signVerify(t, keys["k1"])

	// A public_value of another curve is refused, naming the key.
	v, _ = open(t, "token_label: test\npin: \"1234\"\nkeys:\n  - {label: k1, public_value: "+sppk+"}\n")
	if _, err := v.List(ctx); err == nil || !strings.Contains(err.Error(), `label "k1"`) || !strings.Contains(err.Error(), "public_value") {
		t.Fatalf("mismatched public_value: %v", err)
	}

	// Without label matching, a public key object is found by ID alone.
	v, _ = open(t, "token_label: test\npin: \"1234\"\npublic_keys_search_options: {match_id: true}\n")
	if n := len(keysByLabel(t, v)); n != 3 {
		t.Fatalf("%d keys with match_id only", n)
	}
}

func TestMechanismErrorsAreExplained(t *testing.T) {
	need(t)
	t.Parallel()
	v, _ := open(t, "token_label: test\npin: \"1234\"\n")
	k := keysByLabel(t, v)["k3"]
	err := v.explain(opErr("C_SignInit", p11.Error(p11.CKR_MECHANISM_INVALID)), k)
	if !strings.Contains(err.Error(), "does not support CKM_EDDSA for ed25519 keys") || !strings.Contains(err.Error(), "CKR_MECHANISM_INVALID") {
		t.Fatal(err)
	}
	// A key asked to sign with the wrong mechanism gets the token's error, not a panic.
	wrong := &Key{v: v, sel: k.sel, kt: k.kt, curve: tezos.P256, pub: k.pub}
	wrong.handle.Store(k.handle.Load())
	msg, d := randomMessage(t)
	if _, err := wrong.Sign(ctx, msg, d, vault.SignOptions{}); err == nil || !strings.Contains(err.Error(), `label "k3"`) {
		t.Fatalf("wrong mechanism: %v", err)
	}
}

// TestConformance runs the vault suite on SoftHSM2 (token "conf"). SoftHSM2 is a library in this
// process: it cannot be made to stall, so the stalled-backend case does not apply.
func TestConformance(t *testing.T) {
	need(t)
	three := []tezos.Curve{tezos.Ed25519, tezos.Secp256k1, tezos.P256}
	vaulttest.Run(t, vaulttest.Fixture{
		Driver: Driver,
		Open: func(t *testing.T) vault.Vault {
			v, _, err := tryOpen("token_label: conf\npin: \"" + testPIN + "\"\n")
			if err != nil {
				t.Fatal(err)
			}
			return v
		},
		Curves:     three,
		Generate:   three,
		Import:     three,
		Persistent: true,
	})
}
