package tezos

import (
	"bytes"
	"math/rand/v2"
	"testing"

	tz "github.com/ecadlabs/gotez/v2"
	"github.com/ecadlabs/gotez/v2/b58"
	"github.com/ecadlabs/gotez/v2/b58/base58"
)

// TestBase58MatchesGotez: the limb encoder gives gotez's output on random inputs of every length
// up to 200 bytes, with and without leading zero bytes, and on the edge cases.
func TestBase58MatchesGotez(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(7, 11))
	check := func(src []byte) {
		t.Helper()
		enc := string(encodeBase58(src))
		if want := string(base58.Encode(append([]byte(nil), src...))); enc != want {
			t.Fatalf("%x: %q, gotez %q", src, enc, want)
		}
		// And back, against gotez's decoder.
		dec, ok := decodeBase58(enc)
		want, err := base58.Decode([]byte(enc))
		if !ok || err != nil || !bytes.Equal(dec, want) || !bytes.Equal(dec, src) && len(src) > 0 {
			t.Fatalf("%q: decoded %x (%v), gotez %x (%v), encoded %x", enc, dec, ok, want, err, src)
		}
	}
	check(nil)
	check([]byte{0})
	check([]byte{0, 0, 0})
	check([]byte{57})
	check([]byte{58})
	check([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	sizes := []int{2425, 3876} // a tz5 signature's and secret key's, checksum included
	for n := 1; n <= 200; n++ {
		sizes = append(sizes, n)
	}
	for _, n := range sizes {
		for range 8 {
			src := make([]byte, n)
			for i := range src {
				src[i] = byte(rng.Uint32())
			}
			for z := rng.IntN(4); z > 0 && z <= n; z-- {
				src[z-1] = 0
			}
			check(src)
		}
	}
}

// TestSignatureStringMatchesGotez: every signature kind the signer releases encodes as gotez's
// String does.
func TestSignatureStringMatchesGotez(t *testing.T) {
	t.Parallel()
	msg := []byte("\x03payload")
	for _, c := range Curves {
		for range 16 {
			priv, err := GenerateKey(c)
			if err != nil {
				t.Fatal(err)
			}
			sig, err := priv.Sign(msg)
			if err != nil {
				t.Fatal(err)
			}
			if got, want := SignatureString(sig), sig.String(); got != want {
				t.Fatalf("%s: %q, gotez %q", c, got, want)
			}
			if c == Secp256k1 || c == P256 {
				if got, want := SignatureString(LowS(sig)), LowS(sig).String(); got != want {
					t.Fatalf("%s low-S: %q, gotez %q", c, got, want)
				}
			}
		}
	}
}

func BenchmarkSignatureString(b *testing.B) {
	priv, _ := GenerateKey(Ed25519)
	sig, _ := priv.Sign([]byte("\x03payload"))
	b.Run("gotez", func(b *testing.B) {
		for b.Loop() {
			_ = sig.String()
		}
	})
	b.Run("limbs", func(b *testing.B) {
		for b.Loop() {
			_ = SignatureString(sig)
		}
	})
}

// BenchmarkParseMLDSA44Signature: a tz5 signature as a client sends it in ?authentication=.
func BenchmarkParseMLDSA44Signature(b *testing.B) {
	priv, err := GenerateKey(MLDSA44)
	if err != nil {
		b.Fatal(err)
	}
	sig, err := priv.Sign([]byte("\x04\x01bench"))
	if err != nil {
		b.Fatal(err)
	}
	s := SignatureString(sig)
	b.Run("ours", func(b *testing.B) {
		for b.Loop() {
			if _, err := ParseSignature(s); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("gotez", func(b *testing.B) {
		for b.Loop() {
			if _, err := b58.ParseSignature([]byte(s)); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// TestPayloadHashString: a payload hash's base58 is gotez's, for random hashes, all-zero and
// all-ones included.
func TestPayloadHashString(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(3, 5))
	var ones [32]byte
	for i := range ones {
		ones[i] = 0xff
	}
	hashes := [][32]byte{{}, ones}
	for range 2000 {
		var h [32]byte
		for i := range h {
			h[i] = byte(rng.Uint32())
		}
		hashes = append(hashes, h)
	}
	for _, h := range hashes {
		if got, want := PayloadHashString(&h), tz.BlockPayloadHash(h).String(); got != want {
			t.Fatalf("%x: %s, gotez %s", h, got, want)
		}
	}
}
