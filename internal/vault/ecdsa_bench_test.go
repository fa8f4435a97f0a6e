package vault

import (
	"context"
	"crypto/ecdsa"
	"crypto/rand"
	"testing"

	"github.com/ecadlabs/gotez/v2/crypt"

	"github.com/signatory-go/signatory/internal/tezos"
)

// BenchmarkECDSACheck compares the two ways of checking an in-process ECDSA signature: a
// randomized signature verified (before), and an RFC 6979 signature made twice and compared
// (SignChecked, now); "once" is one deterministic signing alone.
func BenchmarkECDSACheck(b *testing.B) {
	msg := []byte("\x03payload of a transaction, about this long")
	d := digestOf(msg)
	for _, c := range []tezos.Curve{tezos.Secp256k1, tezos.P256} {
		priv, _ := tezos.GenerateKey(c)
		k := &SoftwareKey{Priv: priv}
		p := (*ecdsa.PrivateKey)(priv.(*crypt.ECDSAPrivateKey))
		b.Run(string(c)+"/randomized+verify", func(b *testing.B) {
			for b.Loop() {
				r, s, _ := ecdsa.Sign(rand.Reader, p, d[:])
				sig := tezos.LowS(&crypt.ECDSASignature{R: r, S: s, Curve: p.Curve})
				if !tezos.Verify(priv.Public(), sig, msg, 2) {
					b.Fatal("x")
				}
			}
		})
		b.Run(string(c)+"/deterministic-twice", func(b *testing.B) {
			for b.Loop() {
				if _, ok, err := k.SignChecked(context.Background(), msg, d, SignOptions{Version: 2}, priv.Public()); !ok || err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(string(c)+"/deterministic-once", func(b *testing.B) {
			for b.Loop() {
				_, _ = k.Sign(context.Background(), msg, d, SignOptions{Version: 2})
			}
		})
	}
}
