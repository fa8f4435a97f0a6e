package daemon

import (
	"strings"
	"testing"

	"github.com/ecadlabs/gotez/v2/crypt"

	"github.com/signatory-go/signatory/internal/tezos"
	"github.com/signatory-go/signatory/internal/vault"
	vaultmem "github.com/signatory-go/signatory/internal/vault/mem"
)

// TestSignWith: the key an authenticating vault asks for is found in any opened vault and signs
// authentication bytes (low-S, verifying); anything else — a Tezos payload, an unknown key — is
// refused, so this path without policy or watermark never signs a baker's operation.
func TestSignWith(t *testing.T) {
	var keys []crypt.PrivateKey
	for _, c := range []tezos.Curve{tezos.Ed25519, tezos.Secp256k1, tezos.BLS, tezos.MLDSA44} {
		k, err := tezos.GenerateKey(c)
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, k)
	}
	vk := &vaultKeys{}
	vk.set([]vault.Vault{vaultmem.NewFromKeys("a", keys[0]), vaultmem.NewFromKeys("b", keys[1:]...)})
	share, err := tezos.GenerateKey(tezos.BLS)
	if err != nil {
		t.Fatal(err)
	}
	msg := tezos.AuthenticatedBytes(share.Public().Hash(), []byte{0x13, 1, 2, 3})
	for _, k := range keys {
		pkh := k.Public().Hash().String()
		for range 2 { // the second time from the cache
			s, err := vk.signWith(t.Context(), pkh, msg)
			if err != nil {
				t.Fatal(err)
			}
			sig, err := tezos.ParseSignature(s)
			if err != nil || !tezos.Verify(k.Public(), sig, msg, 3) {
				t.Fatalf("%s: %q does not verify (%v)", pkh, s, err)
			}
		}
	}
	for _, payload := range [][]byte{{0x13, 1, 2, 3}, {0x03, 0xff}, {0x04}, {0x04, 0x00, 1}, nil} {
		if _, err := vk.signWith(t.Context(), keys[0].Public().Hash().String(), payload); err == nil {
			t.Fatalf("signed %x, which is no authentication", payload)
		}
	}
	if _, err := vk.signWith(t.Context(), share.Public().Hash().String(), msg); err == nil || !strings.Contains(err.Error(), "in none of the signer's vaults") {
		t.Fatalf("a key in no vault: %v", err)
	}
}
