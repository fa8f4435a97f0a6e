package blsthreshold

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"strings"
	"testing"

	blst "github.com/ecadlabs/goblst"
	"github.com/ecadlabs/goblst/minpk"
	"github.com/ecadlabs/gotez/v2/crypt"

	"github.com/signatory-go/signatory/internal/tezos"
)

// signedMarks returns a statement by a fresh BLS key with the given marks, signed as a member
// signs it (proof-of-possession ciphersuite, version 3), and the nonce it carries.
func signedMarks(t testing.TB, marks map[string]*MarkLevel) (*Marks, []byte) {
	priv, err := tezos.GenerateKey(tezos.BLS)
	if err != nil {
		t.Fatal(err)
	}
	group, err := tezos.GenerateKey(tezos.BLS)
	if err != nil {
		t.Fatal(err)
	}
	nonce := bytes.Repeat([]byte{7}, MarksNonceSize)
	m := &Marks{Key: priv.Public().Hash().String(), PublicKey: priv.Public().String(), Group: group.Public().String(),
		Chain: "NetXdQprcVkpaWU", Nonce: hex.EncodeToString(nonce), Marks: marks}
	sig := minpk.Sign((*minpk.PrivateKey)(priv.(*crypt.BLSPrivateKey)), m.Statement(), blst.ProofOfPossession)
	m.Signature = tezos.SignatureString((*crypt.BLSSignature)(sig))
	return m, nonce
}

// TestMarksStatement: the signed bytes are the documented lines, in class order, "none" for a
// class without a mark; every field the requester checks changes them or is checked against what
// it asked.
func TestMarksStatement(t *testing.T) {
	m, nonce := signedMarks(t, map[string]*MarkLevel{"attestation": {Level: 10, Round: 2}, "block": {Level: 9}})
	want := "signatory threshold marks v1\nkey " + m.Key + "\npublic_key " + m.PublicKey + "\ngroup " + m.Group +
		"\nchain NetXdQprcVkpaWU\nnonce " + m.Nonce + "\nblock 9 0\npreattestation none\nattestation 10 2\n"
	if got := string(m.Statement()); got != want {
		t.Fatalf("statement:\n%s\nwant:\n%s", got, want)
	}
	if m.Statement()[0] != 0x73 {
		t.Fatal("the statement must start with 's'")
	}
	if err := m.Verify(m.Key, m.Group, m.Chain, nonce); err != nil {
		t.Fatal(err)
	}
	other := bytes.Repeat([]byte{8}, MarksNonceSize)
	for _, c := range []struct {
		name   string
		change func(m *Marks)
		nonce  []byte
		want   string
	}{
		{"lowered", func(m *Marks) { m.Marks["attestation"].Level = 9 }, nonce, "does not verify"},
		{"mark removed", func(m *Marks) { delete(m.Marks, "block") }, nonce, "does not verify"},
		{"another nonce", nil, other, "nonce"},
		{"another chain", func(m *Marks) { m.Chain = "NetXo5iVw1vBoxM" }, nonce, "chain"},
		{"another key", func(m *Marks) { m.Key = "tz4EmNZQEASGMt6bz4htDq2iz5phjQVXp9Lm" }, nonce, "the answer is for"},
		{"another group", func(m *Marks) { m.Group = m.PublicKey }, nonce, "group"},
		{"unknown class", func(m *Marks) { m.Marks["blocks"] = &MarkLevel{} }, nonce, "unknown class"},
		{"negative", func(m *Marks) { m.Marks["attestation"].Round = -1 }, nonce, "negative"},
		{"public key not the key's", func(m *Marks) { m.PublicKey = m.Group }, nonce, "is not the key of"},
		{"no signature", func(m *Marks) { m.Signature = "" }, nonce, "signature"},
	} {
		t.Run(c.name, func(t *testing.T) {
			b, _ := json.Marshal(m)
			var cp Marks
			if err := json.Unmarshal(b, &cp); err != nil {
				t.Fatal(err)
			}
			key, group := cp.Key, cp.Group
			if c.change != nil {
				c.change(&cp)
			}
			err := cp.Verify(key, group, "NetXdQprcVkpaWU", c.nonce)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("%v; want %q", err, c.want)
			}
		})
	}
}

func TestMarksQuorum(t *testing.T) {
	for _, c := range [][3]int{{2, 3, 2}, {3, 5, 3}, {3, 4, 3}, {4, 7, 4}, {2, 4, 3}, {1, 3, 3}, {5, 5, 5}} {
		if got := MarksQuorum(c[0], c[1]); got != c[2] {
			t.Errorf("MarksQuorum(%d, %d) = %d; want %d", c[0], c[1], got, c[2])
		}
	}
}

// FuzzMarksVerify: any answer a member's port may send is decoded and checked without a panic,
// and one that verifies is the statement signed (its fields unchanged).
func FuzzMarksVerify(f *testing.F) {
	m, nonce := signedMarks(f, map[string]*MarkLevel{"attestation": {Level: 10}})
	good, _ := json.Marshal(m)
	f.Add(good)
	f.Add([]byte(`{"marks":{"block":null,"x":{"level":-1}}}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var got Marks
		if json.Unmarshal(data, &got) != nil {
			return
		}
		if got.Verify(m.Key, m.Group, m.Chain, nonce) == nil && !bytes.Equal(got.Statement(), m.Statement()) {
			t.Fatalf("a statement other than the one signed verifies: %s", data)
		}
	})
}

func TestHigher(t *testing.T) {
	a, b, c := &MarkLevel{Level: 10, Round: 2}, &MarkLevel{Level: 10, Round: 3}, &MarkLevel{Level: 11}
	for _, x := range []struct{ p, q, want *MarkLevel }{
		{nil, nil, nil}, {a, nil, a}, {nil, a, a}, {a, b, b}, {b, a, b}, {b, c, c}, {c, b, c}, {a, a, a},
	} {
		if got := Higher(x.p, x.q); got != x.want {
			t.Errorf("Higher(%v, %v) = %v; want %v", x.p, x.q, got, x.want)
		}
	}
}
