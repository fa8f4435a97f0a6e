package pkcs11

import (
	"path/filepath"
	"testing"

	"github.com/signatory-go/signatory/internal/tezos"
	"github.com/signatory-go/signatory/internal/vault"
	"github.com/signatory-go/signatory/internal/vault/file"
)

// BenchmarkSign signs a 32-byte digest per curve through SoftHSM2 (one goroutine, then parallel
// through the session pool) and, for comparison, with the file vault's in-process keys.
func BenchmarkSign(b *testing.B) {
	need(b)
	v, _ := open(b, "token_label: test\npin: \"1234\"\nsessions: 4\n")
	hsm := keysByLabel(b, v)
	fv, err := file.Open("file", file.Config{File: filepath.Join(b.TempDir(), "keys.json")}, vault.Env{Create: true})
	if err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct {
		curve tezos.Curve
		label string
	}{{tezos.Ed25519, "k3"}, {tezos.Secp256k1, "k2"}, {tezos.P256, "k1"}} {
		fk, err := fv.Generate(ctx, c.curve, "")
		if err != nil {
			b.Fatal(err)
		}
		msg, d := randomMessage(b)
		for _, run := range []struct {
			name string
			key  vault.Key
		}{{"softhsm", hsm[c.label]}, {"file", fk}} {
			b.Run(run.name+"/"+string(c.curve), func(b *testing.B) {
				for b.Loop() {
					if _, err := run.key.Sign(ctx, msg, d, vault.SignOptions{}); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
		b.Run("softhsm-parallel/"+string(c.curve), func(b *testing.B) {
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := hsm[c.label].Sign(ctx, msg, d, vault.SignOptions{}); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}
