package tezos

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/cloudflare/circl/sign/mldsa/mldsa44"
	tz "github.com/ecadlabs/gotez/v2"
	"github.com/ecadlabs/gotez/v2/b58/prefix"
	"github.com/ecadlabs/gotez/v2/crypt"
	"golang.org/x/crypto/blake2b"

	tv "github.com/signatory-go/signatory/internal/testvectors"
)

// Known answers for octez's hard-coded tz5 key (testdata/octez/mldsa44_hardcoded_sk.txt): its
// address and the SHA-256 of its public key were derived outside this module.
const (
	octezMLDSA44PKH      = tv.OctezTz5PKH
	octezMLDSA44PKHHex   = "d43df5462854e0abcc4f733ff75fcfb2a8d2654e"
	octezMLDSA44PKSHA256 = "664512fb1bca3039773ec5cfa4cbb68dbcfed62cf9c5cfe0c0b167422eef874d"
)

// circlVerify checks sig as octez does, with circl directly: pure ML-DSA-44 over
// Blake2b-256(msg) with an empty context; nothing of this package's ML-DSA code is used.
func circlVerify(t *testing.T, pkRaw []byte, msg []byte, sig crypt.Signature) bool {
	t.Helper()
	var pk mldsa44.PublicKey
	if err := pk.UnmarshalBinary(pkRaw); err != nil {
		t.Fatal(err)
	}
	s, ok := sig.(crypt.MLDSA44Signature)
	if !ok {
		t.Fatalf("signature is a %T", sig)
	}
	d := blake2b.Sum256(msg)
	return mldsa44.Verify(&pk, d[:], []byte{}, s)
}

// TestOctezHardcodedMLDSA44Key: octez's fixed tz5 secret key decodes, and the public key and
// address computed here are the ones derived independently; the key round-trips, signs and
// verifies (with circl directly too), and its signatures are randomized.
func TestOctezHardcodedMLDSA44Key(t *testing.T) {
	t.Parallel()
	skText, pkText := tv.OctezTz5()
	if len(skText) != MLDSA44SecretKeyLength || len(pkText) != MLDSA44PublicKeyLength {
		t.Fatalf("testdata lengths %d, %d", len(skText), len(pkText))
	}
	priv, err := ParseSecretKey(skText, nil)
	if err != nil {
		t.Fatal(err)
	}
	pub := priv.Public()
	if got := pub.Hash().String(); got != octezMLDSA44PKH {
		t.Errorf("address %s, want %s", got, octezMLDSA44PKH)
	}
	if got := hex.EncodeToString(pub.Hash().PublicKeyHash()); got != octezMLDSA44PKHHex {
		t.Errorf("address bytes %s, want %s", got, octezMLDSA44PKHHex)
	}
	if _, ok := pub.Hash().(*tz.MLDSA44PublicKeyHash); !ok {
		t.Errorf("address is a %T", pub.Hash())
	}
	raw := pub.(*MLDSA44PublicKey).Bytes()
	if sum := sha256.Sum256(raw); hex.EncodeToString(sum[:]) != octezMLDSA44PKSHA256 {
		t.Errorf("public key SHA-256 %x, want %s", sum, octezMLDSA44PKSHA256)
	}
	if got := pub.String(); got != pkText {
		t.Errorf("public key %s…, want %s…", got[:40], pkText[:40])
	}
	if CurveOf(pub) != MLDSA44 {
		t.Errorf("CurveOf = %q", CurveOf(pub))
	}
	if got := string(priv.ToBase58()); got != skText {
		t.Error("the secret key does not round-trip")
	}
	parsed, err := ParsePublicKey(pkText)
	if err != nil || !parsed.Equal(pub) || parsed.Hash().String() != octezMLDSA44PKH {
		t.Fatalf("ParsePublicKey: %v", err)
	}
	pkh, err := ParsePublicKeyHash(octezMLDSA44PKH)
	if err != nil || !pkh.Eq(pub.Hash()) {
		t.Fatalf("ParsePublicKeyHash: %v", err)
	}

	msg := []byte("\x03\x01\x02\x03 some operation bytes")
	a, err := priv.Sign(msg)
	if err != nil {
		t.Fatal(err)
	}
	b, err := priv.Sign(msg)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(a.(crypt.MLDSA44Signature), b.(crypt.MLDSA44Signature)) {
		t.Error("two signatures of the same bytes are equal: signing is not hedged")
	}
	for _, sig := range []crypt.Signature{a, b} {
		if !Verify(pub, sig, msg, 3) || !circlVerify(t, raw, msg, sig) {
			t.Fatal("signature does not verify")
		}
		if Verify(pub, sig, append(msg, 0), 3) || circlVerify(t, raw, append(msg, 0), sig) {
			t.Fatal("signature verifies for other bytes")
		}
		text := SignatureString(sig)
		if !strings.HasPrefix(text, "mdsig") || len(text) != MLDSA44SignatureLength || text != sig.String() {
			t.Fatalf("signature text %s… (%d characters)", text[:10], len(text))
		}
		back, err := ParseSignature(text)
		if err != nil || !Verify(pub, back, msg, 3) {
			t.Fatalf("ParseSignature: %v", err)
		}
	}
	// What octez signs is the digest: a signature over the message itself (gotez's
	// crypt.MLDSA44PrivateKey.Sign) is not a Tezos signature.
	var gotezKey mldsa44.PrivateKey
	if err := gotezKey.UnmarshalBinary(priv.(*MLDSA44PrivateKey).payload()[:mldsa44.PrivateKeySize]); err != nil {
		t.Fatal(err)
	}
	undigested, err := (*crypt.MLDSA44PrivateKey)(&gotezKey).Sign(msg)
	if err != nil {
		t.Fatal(err)
	}
	if Verify(pub, undigested, msg, 3) {
		t.Error("a signature over the undigested message verifies")
	}
	d := blake2b.Sum256(msg)
	if digested, err := (*crypt.MLDSA44PrivateKey)(&gotezKey).Sign(d[:]); err != nil || !Verify(pub, digested, msg, 3) {
		t.Errorf("gotez's signature over the digest does not verify: %v", err)
	}
}

// TestMLDSA44KeyGenACVP: key derivation from a seed, which generation uses, gives NIST's ACVP
// known answers (public and signing key), and the key's octez form holds both.
func TestMLDSA44KeyGenACVP(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile("testdata/acvp_mldsa44_keygen.json")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Tests []struct {
			TcID         int `json:"tcId"`
			Seed, PK, SK string
		}
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Tests) == 0 {
		t.Fatal("no vectors")
	}
	for _, v := range doc.Tests {
		seed, pk, sk := mustHex(t, v.Seed), mustHex(t, v.PK), mustHex(t, v.SK)
		k := MLDSA44KeyFromSeed((*[32]byte)(seed))
		if got := k.pub.Bytes(); !bytes.Equal(got, pk) {
			t.Errorf("tcId %d: public key differs", v.TcID)
		}
		payload := k.payload()
		if !bytes.Equal(payload[:mldsa44.PrivateKeySize], sk) || !bytes.Equal(payload[mldsa44.PrivateKeySize:], pk) {
			t.Errorf("tcId %d: secret key payload differs", v.TcID)
		}
		again, err := NewMLDSA44PrivateKey(payload)
		if err != nil || !again.Equal(k) || !again.Public().Equal(k.Public()) {
			t.Errorf("tcId %d: the payload does not make the key again: %v", v.TcID, err)
		}
	}
}

func mustHex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestMLDSA44InconsistentSecretKey: an mdsk whose halves disagree is refused when it is read.
func TestMLDSA44InconsistentSecretKey(t *testing.T) {
	t.Parallel()
	priv, err := GenerateKey(MLDSA44)
	if err != nil {
		t.Fatal(err)
	}
	good := priv.(*MLDSA44PrivateKey).payload()
	other, _ := GenerateKey(MLDSA44)
	for name, spoil := range map[string]func(p []byte){
		"public key byte":  func(p []byte) { p[mldsa44.PrivateKeySize+100] ^= 1 },
		"rho":              func(p []byte) { p[0] ^= 1 },
		"tr":               func(p []byte) { p[70] ^= 1 },
		"s1":               func(p []byte) { p[200] ^= 0x40 },
		"another's public": func(p []byte) { copy(p[mldsa44.PrivateKeySize:], other.(*MLDSA44PrivateKey).pub.raw[:]) },
	} {
		p := bytes.Clone(good)
		spoil(p)
		if _, err := NewMLDSA44PrivateKey(p); !errors.Is(err, ErrMLDSA44Inconsistent) {
			t.Errorf("%s changed: %v", name, err)
		}
		text := encodeBase58Check(prefix.MLDSA44SecretKey.Prefix, p)
		if _, err := ParseSecretKey(text, nil); !errors.Is(err, ErrMLDSA44Inconsistent) || strings.Contains(err.Error(), text[10:30]) {
			t.Errorf("%s changed, ParseSecretKey: %v", name, err)
		}
	}
	if _, err := NewMLDSA44PrivateKey(good[:100]); err == nil {
		t.Error("a short payload is accepted")
	}
}

// TestMLDSA44TextBounds: tz5 text is allowed its own length, with its prefix only.
func TestMLDSA44TextBounds(t *testing.T) {
	t.Parallel()
	long := func(pre string, n int) string { return pre + strings.Repeat("z", n-len(pre)) }
	for _, c := range []struct {
		name string
		err  error
	}{
		{"mdpk too long", func() error { _, err := ParsePublicKey(long("mdpk", MLDSA44PublicKeyLength+1)); return err }()},
		{"long edpk", func() error { _, err := ParsePublicKey(long("edpk", MaxBase58Length+1)); return err }()},
		{"mdsig too long", func() error { _, err := ParseSignature(long("mdsig", MLDSA44SignatureLength+1)); return err }()},
		{"long BLsig", func() error { _, err := ParseSignature(long("BLsig", MaxBase58Length+1)); return err }()},
		{"mdsk too long", func() error { _, err := ParseSecretKey(long("mdsk", MLDSA44SecretKeyLength+1), nil); return err }()},
		{"mdesk too long", func() error {
			_, err := ParseSecretKey(long("mdesk", MLDSA44EncryptedSecretKeyLength+1), nil)
			return err
		}()},
	} {
		if c.err == nil || !strings.Contains(c.err.Error(), "too long") {
			t.Errorf("%s: %v", c.name, c.err)
		}
	}
	// A bad mdpk's error quotes only its start.
	if _, err := ParsePublicKey(long("mdpk", MLDSA44PublicKeyLength)); err == nil || len(err.Error()) > 200 {
		t.Errorf("bad mdpk: %v", err)
	}
}
