package blsthreshold

import (
	"bytes"
	"errors"
	"fmt"
	"math/big"
	"math/rand/v2"
	"testing"

	blst "github.com/ecadlabs/goblst"
	"github.com/ecadlabs/goblst/minpk"
	"github.com/ecadlabs/gotez/v2/crypt"

	"github.com/signatory-go/signatory/internal/tezos"
)

func sign(k *crypt.BLSPrivateKey, msg []byte) *crypt.BLSSignature {
	return (*crypt.BLSSignature)(minpk.Sign((*minpk.PrivateKey)(k), msg, blst.ProofOfPossession))
}

func sigBytes(s *crypt.BLSSignature) []byte { return (*minpk.Signature)(s).Bytes() }

func pubBytes(p crypt.PublicKey) []byte { return (*minpk.PublicKey)(p.(*crypt.BLSPublicKey)).Bytes() }

// subsets calls f with every subset of size k of shares.
func subsets(shares []Share, k int, f func([]Share)) {
	var rec func(start int, cur []Share)
	rec = func(start int, cur []Share) {
		if len(cur) == k {
			f(cur)
			return
		}
		for i := start; i < len(shares); i++ {
			rec(i+1, append(cur, shares[i]))
		}
	}
	rec(0, nil)
}

// TestSplitCombine: for (t, n) in a few shapes, every t of the n shares combine into exactly the
// unsplit key's signature (byte for byte) and public key; t−1 of them do not.
func TestSplitCombine(t *testing.T) {
	t.Parallel()
	msg := []byte("\x13an attestation")
	for _, tn := range [][2]int{{1, 1}, {2, 3}, {3, 5}, {4, 7}, {5, 5}} {
		th, n := tn[0], tn[1]
		priv, err := tezos.GenerateKey(tezos.BLS)
		if err != nil {
			t.Fatal(err)
		}
		secret := priv.(*crypt.BLSPrivateKey)
		want := sigBytes(sign(secret, msg))
		wantPub := pubBytes(priv.Public())
		shares, err := Split(secret, th, n, nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(shares) != n {
			t.Fatalf("%d shares, want %d", len(shares), n)
		}
		subsets(shares, th, func(set []Share) {
			partials := map[int]*crypt.BLSSignature{}
			pubs := map[int]*crypt.BLSPublicKey{}
			for _, s := range set {
				partials[s.Index] = sign(s.Key, msg)
				pubs[s.Index] = s.Key.Public().(*crypt.BLSPublicKey)
			}
			sig, err := CombineSignatures(partials)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(sigBytes(sig), want) {
				t.Fatalf("t=%d n=%d: the combined signature differs from the unsplit key's", th, n)
			}
			if !tezos.Verify(priv.Public(), sig, msg, 2) {
				t.Fatal("the combined signature does not verify with the group key")
			}
			pub, err := CombinePublicKeys(pubs)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal((*minpk.PublicKey)(pub).Bytes(), wantPub) {
				t.Fatalf("t=%d n=%d: the combined public key differs from the group key", th, n)
			}
		})
		if th > 1 {
			subsets(shares, th-1, func(set []Share) {
				partials := map[int]*crypt.BLSSignature{}
				for _, s := range set {
					partials[s.Index] = sign(s.Key, msg)
				}
				sig, err := CombineSignatures(partials)
				if err == nil && tezos.Verify(priv.Public(), sig, msg, 2) {
					t.Fatalf("t=%d n=%d: %d shares made the group's signature", th, n, th-1)
				}
			})
		}
	}
}

// TestWrongPartial: one bad partial (another message, or another share's signature under its
// index) spoils the combination, which the group key's verification then refuses.
func TestWrongPartial(t *testing.T) {
	t.Parallel()
	priv, _ := tezos.GenerateKey(tezos.BLS)
	shares, err := Split(priv.(*crypt.BLSPrivateKey), 2, 3, nil)
	if err != nil {
		t.Fatal(err)
	}
	msg := []byte("\x13level 7")
	good := map[int]*crypt.BLSSignature{1: sign(shares[0].Key, msg), 2: sign(shares[1].Key, msg)}
	for name, bad := range map[string]map[int]*crypt.BLSSignature{
		"other message":      {1: sign(shares[0].Key, msg), 2: sign(shares[1].Key, []byte("\x13level 8"))},
		"swapped indices":    {1: good[2], 2: good[1]},
		"share 3 as share 2": {1: good[1], 2: sign(shares[2].Key, msg)},
	} {
		sig, err := CombineSignatures(bad)
		if err == nil && tezos.Verify(priv.Public(), sig, msg, 2) {
			t.Fatalf("%s: the combination verifies", name)
		}
	}
}

// TestLagrange: known coefficients for indices {1, 2} (2 and −1) and {1, 2, 3} (3, −3, 1), and
// refusals of bad index sets.
func TestLagrange(t *testing.T) {
	t.Parallel()
	mod := func(x int64) *big.Int { return new(big.Int).Mod(big.NewInt(x), order) }
	for _, c := range []struct {
		idx  []int
		want []*big.Int
	}{
		{[]int{1, 2}, []*big.Int{mod(2), mod(-1)}},
		{[]int{1, 2, 3}, []*big.Int{mod(3), mod(-3), mod(1)}},
		{[]int{5}, []*big.Int{mod(1)}},
	} {
		got, err := Lagrange(c.idx)
		if err != nil {
			t.Fatal(err)
		}
		for i := range got {
			if got[i].Cmp(c.want[i]) != 0 {
				t.Fatalf("%v: λ%d = %v, want %v", c.idx, i, got[i], c.want[i])
			}
		}
	}
	for _, bad := range [][]int{nil, {0, 1}, {1, 1}, {256}, {-1, 2}} {
		if _, err := Lagrange(bad); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
}

// TestSplitRefuses: impossible shapes are refused; the coefficients come from the given source,
// so a split is reproducible with a seeded one.
func TestSplitRefuses(t *testing.T) {
	t.Parallel()
	priv, _ := tezos.GenerateKey(tezos.BLS)
	k := priv.(*crypt.BLSPrivateKey)
	for _, tn := range [][2]int{{0, 3}, {4, 3}, {2, 256}, {-1, -1}} {
		if _, err := Split(k, tn[0], tn[1], nil); err == nil {
			t.Errorf("t=%d n=%d accepted", tn[0], tn[1])
		}
	}
	seeded := func() []Share {
		s, err := Split(k, 3, 4, rand.NewChaCha8([32]byte{7}))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	a, b := seeded(), seeded()
	for i := range a {
		if !bytes.Equal((*minpk.PrivateKey)(a[i].Key).Bytes(), (*minpk.PrivateKey)(b[i].Key).Bytes()) {
			t.Fatal("the same random source gave different shares")
		}
	}
}

// TestCheckShares: the share keys of a 3-of-5 split pass; one share of another key is named,
// with the shares it was combined with; fewer keys than the threshold are refused.
func TestCheckShares(t *testing.T) {
	keyShares := func() (*crypt.BLSPublicKey, map[int]*crypt.BLSPublicKey) {
		priv, err := tezos.GenerateKey(tezos.BLS)
		if err != nil {
			t.Fatal(err)
		}
		shares, err := Split(priv.(*crypt.BLSPrivateKey), 3, 5, nil)
		if err != nil {
			t.Fatal(err)
		}
		keys := map[int]*crypt.BLSPublicKey{}
		for _, s := range shares {
			keys[s.Index] = s.Key.Public().(*crypt.BLSPublicKey)
		}
		return priv.Public().(*crypt.BLSPublicKey), keys
	}
	group, keys := keyShares()
	_, foreign := keyShares()
	if err := CheckShares(group, keys, 3); err != nil {
		t.Fatal(err)
	}
	keys[4] = foreign[4]
	var m *Mismatch
	if err := CheckShares(group, keys, 3); !errors.As(err, &m) || m.Index != 4 || fmt.Sprint(m.With) != "[1 2 4]" {
		t.Fatalf("a foreign share 4: %v", err)
	}
	delete(keys, 4)
	delete(keys, 5)
	delete(keys, 3)
	if err := CheckShares(group, keys, 3); err == nil || errors.As(err, &m) {
		t.Fatalf("two keys for a threshold of 3: %v", err)
	}
}
