package pkcs11

import (
	"strings"
	"testing"
	"time"

	p11 "github.com/miekg/pkcs11"

	"github.com/signatory-go/signatory/internal/tezos"
	"github.com/signatory-go/signatory/internal/vault"
)

// checkProtected reads the private key's flags from the token: sensitive, never extractable.
// Like Sign, it looks the key up again when SoftHSM2 drops a handle under concurrency.
func checkProtected(t *testing.T, v *Vault, k *Key) {
	t.Helper()
	var err error
	for range 3 {
		if err = readProtection(t, v, k); !handleLost(err) {
			break
		}
		k.handle.Store(nil)
	}
	if err != nil {
		t.Fatal(err)
	}
}

func readProtection(t *testing.T, v *Vault, k *Key) error {
	return v.withSession(ctx, func(c *p11.Ctx, s *session) error {
		h, err := k.handleFor(c, s.h, s.gen)
		if err != nil {
			return err
		}
		a, err := attrs(c, s.h, h, p11.CKA_SENSITIVE, p11.CKA_EXTRACTABLE, p11.CKA_TOKEN, p11.CKA_VALUE)
		if err != nil {
			return err
		}
		if string(a[p11.CKA_SENSITIVE]) != "\x01" || string(a[p11.CKA_EXTRACTABLE]) != "\x00" || string(a[p11.CKA_TOKEN]) != "\x01" {
			t.Errorf("%s: sensitive %x extractable %x token %x", k.ID(), a[p11.CKA_SENSITIVE], a[p11.CKA_EXTRACTABLE], a[p11.CKA_TOKEN])
		}
		if a[p11.CKA_VALUE] != nil {
			t.Errorf("%s: the secret value can be read from the token", k.ID())
		}
		return nil
	})
}

func TestImport(t *testing.T) {
	need(t)
	t.Parallel()
	v, _ := open(t, "token_label: gen\npin: \"1234\"\n")
	for _, curve := range []tezos.Curve{tezos.Ed25519, tezos.Secp256k1, tezos.P256} {
		priv, err := tezos.GenerateKey(curve)
		if err != nil {
			t.Fatal(err)
		}
		pkh := priv.Public().Hash().String()
		k, err := v.Import(ctx, priv, "")
		if err != nil {
			t.Fatal(err)
		}
		if k.ID() != pkh || k.PublicKey().Hash().String() != pkh {
			t.Fatalf("imported key %s has id %s, pkh %s", pkh, k.ID(), k.PublicKey().Hash())
		}
		signVerify(t, k)
		checkProtected(t, v, k.(*Key))
		// Listed from the token by a fresh vault, with the same public key.
		fresh, _ := open(t, "token_label: gen\npin: \"1234\"\n")
		listed := keysByLabel(t, fresh)[pkh]
		if listed == nil || !listed.PublicKey().Equal(priv.Public()) {
			t.Fatalf("imported key %s not listed with its public key", pkh)
		}
		signVerify(t, listed)
		if _, err := v.Import(ctx, priv, "other-name"); err == nil || !strings.Contains(err.Error(), "already on the token") {
			t.Fatalf("second import: %v", err)
		}
	}
	bls, _ := tezos.GenerateKey(tezos.BLS)
	if _, err := v.Import(ctx, bls, ""); err == nil || !strings.Contains(err.Error(), "not bls") {
		t.Fatalf("BLS import: %v", err)
	}
}

func TestGenerate(t *testing.T) {
	need(t)
	t.Parallel()
	v, _ := open(t, "token_label: gen\npin: \"1234\"\n")
	for _, curve := range []tezos.Curve{tezos.Ed25519, tezos.Secp256k1, tezos.P256} {
		k, err := v.Generate(ctx, curve, "")
		if err != nil {
			t.Fatal(err)
		}
		if tezos.CurveOf(k.PublicKey()) != curve {
			t.Fatalf("generated a %s key for %s", tezos.CurveOf(k.PublicKey()), curve)
		}
		pkh := k.PublicKey().Hash().String()
		if k.ID() != pkh {
			t.Errorf("generated key %s is labelled %s", pkh, k.ID())
		}
		signVerify(t, k)
		checkProtected(t, v, k.(*Key))
		fresh, _ := open(t, "token_label: gen\npin: \"1234\"\n")
		if listed := keysByLabel(t, fresh)[pkh]; listed == nil || !listed.PublicKey().Equal(k.PublicKey()) {
			t.Fatalf("generated key %s not listed", pkh)
		}
	}
	name := "named-" + time.Now().Format("150405.000000")
	k, err := v.Generate(ctx, tezos.P256, name)
	if err != nil {
		t.Fatal(err)
	}
	if k.ID() != name {
		t.Errorf("named key listed as %s", k.ID())
	}
	if _, err := v.Generate(ctx, tezos.P256, name); err == nil || !strings.Contains(err.Error(), "already on the token") {
		t.Fatalf("second key with the same name: %v", err)
	}
	if _, err := v.Generate(ctx, tezos.BLS, ""); err == nil || !strings.Contains(err.Error(), "not bls") {
		t.Fatalf("BLS generate: %v", err)
	}
	var _ vault.Generator = v
	var _ vault.Importer = v
}

// TestTokenUnplugged moves the token directory away under a working vault: signing fails with a
// clear error (never a panic), readiness fails, and both recover once the token is back. Not
// parallel: every vault of the process shares the module and sees the token go.
func TestTokenUnplugged(t *testing.T) {
	need(t)
	v, _ := open(t, "token_label: test\npin: \"1234\"\n")
	keys := keysByLabel(t, v)
	for _, k := range keys {
		signVerify(t, k)
	}
	if err := store.Unplug(); err != nil {
		t.Fatal(err)
	}
	plugged := false
	defer func() {
		if !plugged {
			_ = store.Plug()
		}
	}()
	for label, k := range keys {
		msg, d := randomMessage(t)
		sig, err := k.Sign(ctx, msg, d, vault.SignOptions{})
		if err == nil {
			t.Fatalf("%s: signed with the token unplugged: %v", label, sig)
		}
		if !strings.Contains(err.Error(), `token "test"`) && !strings.Contains(err.Error(), store.Module) {
			t.Errorf("%s: error does not name the token or module: %v", label, err)
		}
		t.Logf("%s while unplugged: %v", label, err)
	}
	if err := v.Ready(ctx); err == nil {
		t.Error("Ready with the token unplugged")
	}
	if err := store.Plug(); err != nil {
		t.Fatal(err)
	}
	plugged = true
	deadline := time.Now().Add(10 * time.Second)
	for label, k := range keys {
		for {
			msg, d := randomMessage(t)
			sig, err := k.Sign(ctx, msg, d, vault.SignOptions{})
			if err == nil {
				if !tezos.Verify(k.PublicKey(), tezos.LowS(sig), msg, 2) {
					t.Fatalf("%s: bad signature after recovery", label)
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: not recovered 10 s after the token came back: %v", label, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	if err := v.Ready(ctx); err != nil {
		t.Fatal(err)
	}
}
