package blsthreshold

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/ecadlabs/gotez/v2/crypt"

	"github.com/signatory-go/signatory/internal/tezos"
)

// TestOctezRoundTrip: shares written in octez's format read back as the same shares, in id
// order; a share changed, or read with a threshold they were not made for, is refused without
// the secret in the message. (The format against octez's own conventions: internal/cli's
// TestThresholdOctezShares.)
func TestOctezRoundTrip(t *testing.T) {
	t.Parallel()
	k, err := tezos.GenerateKey(tezos.BLS)
	if err != nil {
		t.Fatal(err)
	}
	secret := k.(*crypt.BLSPrivateKey)
	shares, err := Split(secret, 2, 3, nil)
	if err != nil {
		t.Fatal(err)
	}
	group := secret.Public().(*crypt.BLSPublicKey)
	oct := ToOctez(group, secret.ProvePossession(), shares)
	data, err := json.Marshal(oct)
	if err != nil {
		t.Fatal(err)
	}
	g, _, back, err := ParseOctez(data, 2)
	if err != nil || g.String() != group.String() || len(back) != 3 {
		t.Fatalf("%v %v %d", err, g, len(back))
	}
	for i := range back {
		if back[i].Index != shares[i].Index || !back[i].Key.Equal(shares[i].Key) {
			t.Fatalf("share %d read back differently", i)
		}
	}
	if _, _, _, err := ParseOctez(data, 1); err == nil || !strings.Contains(err.Error(), "with threshold 1") {
		t.Fatalf("read with threshold 1: %v", err)
	}
	oct.SecretShares[0], oct.SecretShares[1] = oct.SecretShares[1], oct.SecretShares[0]
	other, _ := tezos.GenerateKey(tezos.BLS)
	oct.SecretShares[2].SecretKey = string(other.(*crypt.BLSPrivateKey).ToProtocol().ToBase58())
	data, _ = json.Marshal(oct)
	if _, _, _, err := ParseOctez(data, 2); err == nil || !strings.Contains(err.Error(), "does not interpolate") || strings.Contains(err.Error(), "BLsk") {
		t.Fatalf("a foreign share: %v", err)
	}
}
