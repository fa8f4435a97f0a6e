package testdaemon

import (
	"encoding/json"
	"errors"
	"github.com/signatory-go/signatory/internal/request/requesttest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/signatory-go/signatory/internal/tezos"
)

func TestNewKeysAndMembers(t *testing.T) {
	ks, keyFile := NewKeys(t, tezos.Ed25519, tezos.Secp256k1, tezos.Ed25519)
	if len(ks) != 3 || !strings.HasPrefix(ks[0].PKH, "tz1") || !strings.HasPrefix(ks[1].PKH, "tz2") ||
		ks[0].PKH == ks[2].PKH || ks[1].Curve != tezos.Secp256k1 || ks[1].Pub.Hash().String() != ks[1].PKH {
		t.Fatalf("keys: %+v", ks)
	}
	var entries []struct{ Name, Value string }
	b, _ := os.ReadFile(keyFile)
	if err := json.Unmarshal(b, &entries); err != nil || len(entries) != 3 || entries[2].Name != "k2" ||
		entries[2].Value != "unencrypted:"+string(ks[2].Priv.ToBase58()) {
		t.Fatalf("key file: %v\n%s", err, b)
	}
	if fi, err := os.Stat(keyFile); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode: %v %v", fi.Mode(), err)
	}
	pol := ConsensusPolicy(ks[0].PKH, ks[1].PKH)
	if strings.Count(pol, "      attestation_with_dal:\n") != 2 || !strings.HasPrefix(pol, "  "+ks[0].PKH+":\n    allow:\n") {
		t.Fatalf("policy:\n%s", pol)
	}

	ds := StartMembers(t, 2, "m", keyFile, "  driver: mem\n", pol)
	if len(ds) != 2 || ds[1].Name != "m-1" || !strings.Contains(ds[0].Logs(), "---- start ") {
		t.Fatalf("members: %d, log %q", len(ds), ds[0].Logs())
	}
	for _, d := range ds {
		p := requesttest.Attestation("b3d79f99", 5, 0, 0)
		if status, sig := d.Sign(ks[1].PKH, p); status != 200 {
			t.Fatalf("%s: %d %s", d.Name, status, sig)
		} else if err := d.Verify(ks[1].PKH, p, sig); err != nil {
			t.Fatal(err)
		}
	}
	ds[1].Kill()
	ds[1].ServeMember()
	if strings.Count(ds[1].Logs(), "---- start ") != 2 {
		t.Fatalf("restart not marked:\n%s", ds[1].Logs())
	}

	tries := 0
	Eventually(t, time.Minute, "the third try", func() error {
		if tries++; tries < 3 {
			return errors.New("not yet")
		}
		return nil
	})
	if tries != 3 {
		t.Fatalf("%d tries", tries)
	}
}
