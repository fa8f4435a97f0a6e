package tezos

import (
	"bytes"
	"crypto/ecdsa"
	crand "crypto/rand"
	"errors"
	"math/big"
	"strings"
	"testing"

	"github.com/ecadlabs/goblst/minpk"
	tz "github.com/ecadlabs/gotez/v2"
	"github.com/ecadlabs/gotez/v2/crypt"

	tv "github.com/signatory-go/signatory/internal/testvectors"
)

func TestReferenceKeys(t *testing.T) {
	t.Parallel()
	for _, k := range []struct{ sk, pk, pkh string }{
		{tv.K1SK, tv.K1PK, tv.K1PKH}, {tv.K2SK, tv.K2PK, tv.K2PKH}, {tv.K3SK, tv.K3PK, tv.K3PKH},
		{tv.K4SK, tv.K4PK, tv.K4PKH}, {tv.K5SK, tv.K5PK, tv.K5PKH}, {tv.K6SK, tv.K6PK, tv.K6PKH},
		{tv.K7SK, tv.K7PK, tv.K7PKH}, {tv.K8SK, tv.K8PK, tv.K8PKH},
	} {
		priv, err := ParseSecretKey(k.sk, nil)
		if err != nil {
			t.Fatalf("%s: %v", k.pkh, err)
		}
		if got := priv.Public().String(); got != k.pk {
			t.Errorf("public key %s, want %s", got, k.pk)
		}
		if got := priv.Public().Hash().String(); got != k.pkh {
			t.Errorf("pkh %s, want %s", got, k.pkh)
		}
		if got := string(priv.ToBase58()); got != k.sk {
			t.Errorf("secret key round trip %s, want %s", got, k.sk)
		}
		pub, err := ParsePublicKey(k.pk)
		if err != nil || !pub.Equal(priv.Public()) {
			t.Errorf("ParsePublicKey(%s): %v", k.pk, err)
		}
		pkh, err := ParsePublicKeyHash(k.pkh)
		if err != nil || pkh.String() != k.pkh {
			t.Errorf("ParsePublicKeyHash(%s): %v", k.pkh, err)
		}
	}
}

func TestEncodingVectors(t *testing.T) {
	t.Parallel()
	// E1, E2, E4 from the reference server tests.
	var sig tz.Ed25519Signature
	sig[0], sig[1], sig[2] = 1, 2, 3
	if got := string(sig.ToBase58()); got != "edsigtXwQk7vJvUGLVjSDqE3egYMVYVvDctZCXnXrbecmB85kfN51fib1NKq6aDiVHYDNGMid1EW7hfq92ZUXYsag8Gyx4GFyU6" {
		t.Errorf("E1: %s", got)
	}
	var pk tz.Ed25519PublicKey
	pk[0], pk[1], pk[2] = 1, 2, 3
	if got := string(pk.ToBase58()); got != "edpktefgU4dfKqN1rZVBwBP8ZueBoJZfhDS3kHPSbo8c3aGPrMrunt" {
		t.Errorf("E2: %s", got)
	}
	var pkh tz.Ed25519PublicKeyHash
	if got := pkh.String(); got != "tz1Ke2h7sDdakHJQh8WX4Z372du1KChsksyU" {
		t.Errorf("E4: %s", got)
	}
	bls := tv.Hex("a0d995e9a635fd10ee28a494a80a8cb01a2b255ec19527ed35dd1718ee6adc223c770f8bf7da8880c395efa7d393c09504e9588fa264df6d3996b24c84e08f958abef570ab8b50fb2930b4bf204b48c311b90ca1d6ba3b5de1450a6e5b88d1c9")
	var bsig tz.BLSSignature
	copy(bsig[:], bls)
	if got := string(bsig.ToBase58()); got != "BLsigAnMm6w9C3xzsGZiUAxNPX5SkpWqhKDbXttbbWbWTFPyu2cMTKZkCiwWMj1dP55yQuoKvhwE6mESqLBAwSDoBnbzSoGZhTJgc8ZFJbYQhwnBusHUVXXmHv6NWAhoZa1gfHXLqrEinH" {
		t.Errorf("E3: %s", got)
	}
}

func TestEncryptedRoundTrip(t *testing.T) {
	t.Parallel()
	for _, c := range Curves {
		priv, err := GenerateKey(c)
		if err != nil {
			t.Fatal(err)
		}
		if got := CurveOf(priv.Public()); got != c {
			t.Fatalf("CurveOf = %s, want %s", got, c)
		}
		enc, err := EncryptSecretKey(priv, []byte("correct horse"))
		if err != nil {
			t.Fatal(err)
		}
		if !IsEncrypted(enc) {
			t.Fatalf("%s: %s is not an encrypted key", c, enc[:6])
		}
		got, err := ParseSecretKey(enc, func() ([]byte, error) { return []byte("correct horse"), nil })
		if err != nil {
			t.Fatalf("%s: %v", c, err)
		}
		if !got.Equal(priv) {
			t.Fatalf("%s: decrypted key differs", c)
		}
		_, err = ParseSecretKey(enc, func() ([]byte, error) { return []byte("wrong"), nil })
		if !errors.Is(err, ErrWrongPassword) {
			t.Fatalf("%s: wrong password gave %v", c, err)
		}
		if _, err = ParseSecretKey(enc, nil); !errors.Is(err, ErrNoPassword) {
			t.Fatalf("%s: no password gave %v", c, err)
		}
	}
}

func TestParseSecretKeyErrorsDoNotLeak(t *testing.T) {
	t.Parallel()
	bad := tv.K1SK[:len(tv.K1SK)-1] + "e" // checksum broken
	_, err := ParseSecretKey(bad, nil)
	if err == nil {
		t.Fatal("accepted a key with a bad checksum")
	}
	if strings.Contains(err.Error(), bad[4:20]) {
		t.Fatalf("error leaks the key: %v", err)
	}
	for _, s := range []string{"", "edsk", "tz1LggX2HUdvJ1tF4Fvv8fjsrzLeW4Jr9t2Q", "not base58 0OIl"} {
		if _, err := ParseSecretKey(s, nil); err == nil {
			t.Errorf("accepted %q", s)
		}
	}
}

func TestLowS(t *testing.T) {
	t.Parallel()
	for _, c := range []Curve{Secp256k1, P256} {
		priv, _ := GenerateKey(c)
		msg := []byte("\x03hello")
		highSeen := false
		for i := 0; i < 64; i++ {
			d := crypt.DigestFunc(msg)
			r, s, err := ecdsa.Sign(crand.Reader, (*ecdsa.PrivateKey)(priv.(*crypt.ECDSAPrivateKey)), d[:])
			if err != nil {
				t.Fatal(err)
			}
			raw := &crypt.ECDSASignature{R: r, S: s, Curve: priv.(*crypt.ECDSAPrivateKey).Curve}
			if !IsLowS(raw) {
				highSeen = true
			}
			low := LowS(raw)
			if !IsLowS(low) {
				t.Fatalf("%s: LowS left a high s", c)
			}
			if !Verify(priv.Public(), low, msg, 2) {
				t.Fatalf("%s: normalised signature does not verify", c)
			}
			if IsLowS(raw) && low.(*crypt.ECDSASignature).S.Cmp(s) != 0 {
				t.Fatalf("%s: LowS changed a low s", c)
			}
		}
		if !highSeen {
			t.Fatalf("%s: no high-s signature in 64 tries; the test did not exercise normalisation", c)
		}
	}
	half := new(big.Int).Rsh(crypt.S256().Params().N, 1)
	sig := &crypt.ECDSASignature{R: big.NewInt(1), S: new(big.Int).Add(half, big.NewInt(1)), Curve: crypt.S256()}
	if IsLowS(sig) || !IsLowS(LowS(sig)) {
		t.Fatal("boundary n/2+1 not normalised")
	}
}

func TestDerivedSignatures(t *testing.T) {
	t.Parallel()
	d := tv.LoadDerived()
	// S: tz2 and tz3 signatures are verify-only (random nonce).
	for _, c := range []struct{ pk, sig string }{{tv.K5PK, d.ECDSA["tz2"]}, {tv.K6PK, d.ECDSA["tz3"]}} {
		pub, _ := ParsePublicKey(c.pk)
		sig, err := ParseSignature(c.sig)
		if err != nil {
			t.Fatal(err)
		}
		if !IsLowS(sig) {
			t.Errorf("%s: reference signature is high-S", c.sig[:6])
		}
		okA := Verify(pub, sig, tv.Hex(d.W["A1"]), 2)
		okAuth := Verify(pub, sig, tv.Hex(d.Auth.Msg), 2)
		if !okA && !okAuth {
			t.Errorf("%s does not verify", c.sig[:6])
		}
	}
	// tz4: deterministic, both versions, and proofs of possession.
	k7, _ := ParseSecretKey(tv.K7SK, nil)
	bk := k7.(*crypt.BLSPrivateKey)
	// The reference's derived BLS signatures: the first is over bls_attestation_tag41, the second over bls_preattestation_tag40.
	for i, name := range []string{"bls_attestation_tag41", "bls_preattestation_tag40"} {
		s := d.BLS.Sigs[i]
		prefix := strings.TrimSuffix(s.Msg, "...")
		msg := tv.Hex(d.DerivedPayloads[name])
		if !strings.HasPrefix(d.DerivedPayloads[name], prefix) {
			t.Fatalf("vector %d is not over %s", i, name)
		}
		v2, _ := bk.Sign(msg)
		v1, _ := bk.SignAugmented(msg)
		if v2.String() != s.V2 || v1.String() != s.V1 {
			t.Errorf("BLS signature over %s differs", prefix)
		}
	}
	if got := bk.ProvePossession().String(); got != d.BLS.PoP {
		t.Errorf("K7 PoP %s", got)
	}
	k8, _ := ParseSecretKey(tv.K8SK, nil)
	pop := k8.(*crypt.BLSPrivateKey).ProvePossession()
	if pop.String() != d.BLSPoPKey.PoP || !VerifyPossession(k8.Public(), pop) {
		t.Errorf("K8 PoP %s", pop)
	}
	if VerifyPossession(k7.Public(), pop) {
		t.Error("K8's proof verified for K7")
	}
	// K1 ed25519 signatures are exact known answers.
	k1, _ := ParseSecretKey(tv.K1SK, nil)
	for name, hexMsg := range tv.LoadPolicyHex() {
		want, ok := d.UnitSigs[name]
		if !ok {
			continue
		}
		sig, _ := k1.Sign(tv.Hex(hexMsg))
		if sig.String() != want {
			t.Errorf("%s: %s, want %s", name, sig, want)
		}
	}
}

func TestSecp256k1FastPathAgreesWithGeneric(t *testing.T) {
	t.Parallel()
	priv, _ := GenerateKey(Secp256k1)
	ep := (*ecdsa.PrivateKey)(priv.(*crypt.ECDSAPrivateKey))
	msg := []byte("\x03payload")
	d := crypt.DigestFunc(msg)
	for i := 0; i < 32; i++ {
		r, s, _ := ecdsa.Sign(crand.Reader, ep, d[:])
		generic := &crypt.ECDSASignature{R: r, S: s, Curve: crypt.S256()}
		if !Verify(priv.Public(), generic, msg, 2) || !Verify(priv.Public(), LowS(generic), msg, 2) {
			t.Fatal("signature rejected by the fast path")
		}
		bad := &crypt.ECDSASignature{R: r, S: new(big.Int).Add(s, big.NewInt(1)), Curve: crypt.S256()}
		if Verify(priv.Public(), bad, msg, 2) {
			t.Fatal("altered signature accepted")
		}
		if Verify(priv.Public(), generic, []byte("\x03other"), 2) {
			t.Fatal("signature accepted for another message")
		}
	}
	other, _ := GenerateKey(Secp256k1)
	r, s, _ := ecdsa.Sign(crand.Reader, ep, d[:])
	if Verify(other.Public(), &crypt.ECDSASignature{R: r, S: s, Curve: crypt.S256()}, msg, 2) {
		t.Fatal("signature accepted for another key")
	}
	zero := &crypt.ECDSASignature{R: big.NewInt(0), S: big.NewInt(1), Curve: crypt.S256()}
	if Verify(priv.Public(), zero, msg, 2) {
		t.Fatal("r = 0 accepted")
	}
}

// TestBase58LengthBoundedBeforeDecoding: 60 KB of base58 (quadratic to decode) is refused by its
// length, and the error does not echo it.
func TestBase58LengthBoundedBeforeDecoding(t *testing.T) {
	t.Parallel()
	long := "tz1" + strings.Repeat("z", 60<<10)
	if _, err := ParsePublicKeyHash(long); err == nil || !strings.Contains(err.Error(), "36 characters") || len(err.Error()) > 200 {
		t.Fatalf("key hash: %v", err)
	}
	for name, f := range map[string]func(string) error{
		"signature":  func(s string) error { _, err := ParseSignature(s); return err },
		"public key": func(s string) error { _, err := ParsePublicKey(s); return err },
		"chain id":   func(s string) error { _, err := ParseChainID(s); return err },
	} {
		if err := f(long); err == nil || !strings.Contains(err.Error(), "too long") || len(err.Error()) > 200 {
			t.Fatalf("%s: %v", name, err)
		}
	}
}

// TestPossessionOver: a proof over the key's own public key is the ordinary proof of
// possession; a proof over another key verifies only for that key and that signer.
func TestPossessionOver(t *testing.T) {
	t.Parallel()
	a, _ := GenerateKey(BLS)
	b, _ := GenerateKey(BLS)
	ak, bpub := a.(*crypt.BLSPrivateKey), b.Public().(*crypt.BLSPublicKey)
	own := ProvePossessionOver(ak, a.Public().(*crypt.BLSPublicKey))
	if !bytes.Equal((*minpk.Signature)(own).Bytes(), (*minpk.Signature)(ak.ProvePossession()).Bytes()) {
		t.Fatal("the proof over the own key is not the ordinary proof of possession")
	}
	if !VerifyPossession(a.Public(), own) || !VerifyPossessionOver(a.Public(), a.Public(), own) {
		t.Fatal("the own proof does not verify")
	}
	over := ProvePossessionOver(ak, bpub)
	if !VerifyPossessionOver(a.Public(), bpub, over) {
		t.Fatal("the proof over another key does not verify")
	}
	if VerifyPossessionOver(b.Public(), bpub, over) || VerifyPossessionOver(a.Public(), a.Public(), over) || VerifyPossession(bpub, over) {
		t.Fatal("a proof verified for the wrong signer or key")
	}
}
