package remote

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/ecadlabs/gotez/v2/crypt"

	"github.com/signatory-go/signatory/internal/tezos"
)

func TestSPKIRoundTrip(t *testing.T) {
	t.Parallel()
	for _, c := range []tezos.Curve{tezos.P256, tezos.Secp256k1} {
		curve, _ := Elliptic(c)
		priv, err := ecdsa.GenerateKey(curve, rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		der, err := MarshalSPKI(&priv.PublicKey)
		if err != nil {
			t.Fatal(err)
		}
		if c == tezos.P256 { // agrees with crypto/x509 where it can
			std, _ := x509.MarshalPKIXPublicKey(&priv.PublicKey)
			if string(std) != string(der) {
				t.Fatal("P-256 SPKI differs from crypto/x509's")
			}
		}
		pub, err := ParsePEMPublicKey(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
		if err != nil {
			t.Fatal(err)
		}
		if !pub.Equal((*crypt.ECDSAPublicKey)(&priv.PublicKey)) || tezos.CurveOf(pub) != c {
			t.Fatalf("%s: round trip changed the key", c)
		}
		x, y := priv.X.FillBytes(make([]byte, 32)), priv.Y.FillBytes(make([]byte, 32))
		if jwk, err := ECDSAPublicKey(c, x, y); err != nil || !jwk.Equal(pub) {
			t.Fatalf("%s: JWK coordinates: %v", c, err)
		}
		y[31] ^= 1
		if _, err := ECDSAPublicKey(c, x, y); err == nil {
			t.Fatalf("%s: a point off the curve was accepted", c)
		}
	}
	ed, _ := x509.MarshalPKIXPublicKey(crypt.Ed25519PublicKey(make([]byte, 32)).Unwrap())
	if _, err := ParseSPKI(ed); err == nil || !strings.Contains(err.Error(), "not an EC public key") {
		t.Fatalf("ed25519 SPKI: %v", err)
	}
	edPub := crypt.Ed25519PublicKey(make([]byte, 32))
	edPub[0] = 7
	ed, _ = x509.MarshalPKIXPublicKey(edPub.Unwrap())
	if pub, err := ParsePEMSigningKey(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: ed})); err != nil || !pub.Equal(edPub) {
		t.Fatalf("ed25519 PEM: %v %v", pub, err)
	}
	p256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := x509.MarshalPKIXPublicKey(&p256.PublicKey)
	if pub, err := ParsePEMSigningKey(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})); err != nil ||
		!pub.Equal((*crypt.ECDSAPublicKey)(&p256.PublicKey)) {
		t.Fatalf("P-256 PEM: %v %v", pub, err)
	}
}

func TestSignatures(t *testing.T) {
	t.Parallel()
	n := elliptic.P256().Params().N
	der, _ := MarshalDER(big.NewInt(5), big.NewInt(7))
	sig, err := SignatureFromDER(der, tezos.P256)
	if err != nil || sig.R.Int64() != 5 || sig.S.Int64() != 7 {
		t.Fatalf("%v %v", sig, err)
	}
	if _, err := SignatureFromDER(append(der, 0), tezos.P256); err == nil {
		t.Fatal("trailing data accepted")
	}
	bad, _ := MarshalDER(big.NewInt(5), n)
	if _, err := SignatureFromDER(bad, tezos.P256); err == nil {
		t.Fatal("s = n accepted")
	}
	if _, err := SignatureFromRaw(make([]byte, 63), tezos.Secp256k1); err == nil {
		t.Fatal("63 bytes accepted")
	}
	rs := make([]byte, 64)
	rs[31], rs[63] = 1, 2
	if sig, err := SignatureFromRaw(rs, tezos.Secp256k1); err != nil || sig.Curve != crypt.S256() || sig.S.Int64() != 2 {
		t.Fatalf("%v %v", sig, err)
	}
}

func TestBackoff(t *testing.T) {
	t.Parallel()
	now := time.Now()
	b := Backoff{Initial: 100 * time.Millisecond, Max: 300 * time.Millisecond, Retries: 4, Deadline: now.Add(time.Second)}
	var got []time.Duration
	for {
		d, ok := b.Next(now)
		if !ok {
			break
		}
		got = append(got, d)
	}
	// 100, 200, 300, 300: doubling up to the cap, and every wait ends before the deadline.
	if len(got) != 4 || got[0] != 100*time.Millisecond || got[2] != 300*time.Millisecond {
		t.Fatalf("%v", got)
	}
	b = Backoff{Initial: 2 * time.Second, Max: 10 * time.Second, Retries: 3, Deadline: now.Add(time.Second)}
	if _, ok := b.Next(now); ok {
		t.Fatal("a wait past the deadline was allowed")
	}
}
