package daemon

import (
	"os"
	"path/filepath"
	"slices"
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

// TestVaultCurvesDocumented: the key types of each vault driver in VaultCurves are those
// docs/vaults.md's table marks, and every driver has a row in both.
func TestVaultCurvesDocumented(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "vaults.md"))
	if err != nil {
		t.Fatal(err)
	}
	columns := []tezos.Curve{tezos.Ed25519, tezos.Secp256k1, tezos.P256, tezos.BLS, tezos.MLDSA44} // tz1 … tz5
	rows := map[string][]tezos.Curve{}
	for _, line := range strings.Split(string(doc), "\n") {
		cells := strings.Split(line, "|")
		if len(cells) < 8 || !strings.HasPrefix(strings.TrimSpace(cells[1]), "`") {
			continue
		}
		driver := strings.Trim(strings.TrimSpace(cells[1]), "`")
		rows[driver] = []tezos.Curve{}
		for i, c := range columns {
			if strings.HasPrefix(strings.TrimSpace(cells[2+i]), "✓") {
				rows[driver] = append(rows[driver], c)
			}
		}
	}
	if len(rows) != len(VaultDrivers) || len(VaultCurves) != len(VaultDrivers) {
		t.Fatalf("%d drivers, %d in VaultCurves, %d rows in docs/vaults.md", len(VaultDrivers), len(VaultCurves), len(rows))
	}
	for driver := range VaultDrivers {
		if !slices.Equal(rows[driver], VaultCurves[driver]) {
			t.Errorf("%s: docs/vaults.md says %v, VaultCurves %v", driver, rows[driver], VaultCurves[driver])
		}
	}
}
