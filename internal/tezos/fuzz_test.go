package tezos

import (
	"bytes"
	"testing"

	"github.com/ecadlabs/gotez/v2/b58/base58"
	tv "github.com/signatory-go/signatory/internal/testvectors"
)

// FuzzBase58 checks that the base58 parsers never panic, that whatever parses prints back to the
// same string, and that our base58 encoder agrees with gotez's on any bytes.
func FuzzBase58(f *testing.F) {
	for _, s := range []string{tv.K1SK, tv.K1PK, tv.K1PKH, tv.K5SK, tv.K5PK, tv.K5PKH, tv.K6SK, tv.K6PK, tv.K6PKH,
		tv.K7SK, tv.K7PK, tv.K7PKH, tv.LoadDerived().AuthPop.Sig, tv.LoadDerived().BLS.PoP, tv.LoadDerived().ECDSA["tz2"],
		"NetXdQprcVkpaWU", "edesk1", "sig", "", "tz1", "0OIl"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if pkh, err := ParsePublicKeyHash(s); err == nil && pkh.String() != s {
			t.Fatalf("pkh %q printed as %q", s, pkh)
		}
		if pub, err := ParsePublicKey(s); err == nil && pub.String() != s {
			t.Fatalf("public key %q printed as %q", s, pub)
		}
		if sig, err := ParseSignature(s); err == nil {
			if sig.String() == "" {
				t.Fatalf("signature %q printed empty", s)
			}
			if fast := SignatureString(sig); fast != sig.String() {
				t.Fatalf("signature %q: SignatureString %q, gotez %q", s, fast, sig)
			}
		}
		if got, want := string(encodeBase58([]byte(s))), string(base58.Encode([]byte(s))); got != want {
			t.Fatalf("base58 of %x: %q, gotez %q", s, got, want)
		}
		if len(s) <= 400 { // gotez's decoder is quadratic: kept short
			got, ok := decodeBase58(s)
			want, err := base58.Decode([]byte(s))
			if ok != (err == nil) || ok && !bytes.Equal(got, want) {
				t.Fatalf("decoding %q: %x (%v), gotez %x (%v)", s, got, ok, want, err)
			}
		}
		if id, err := ParseChainID(s); err == nil && id.String() != s {
			t.Fatalf("chain id %q printed as %q", s, id)
		}
		if !IsEncrypted(s) {
			if priv, err := ParseSecretKey(s, nil); err == nil && priv.Public() == nil {
				t.Fatal("secret key without public key")
			}
		}
	})
}
