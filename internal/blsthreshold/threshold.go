// Package blsthreshold splits a tz4 (BLS12-381, min-pk) secret key into Shamir shares and combines
// the shares' signatures into the group key's signature.
//
// A secret s is split with a random polynomial f of degree t−1 over the scalar field (f(0) = s):
// share i (1 ≤ i ≤ n) is f(i). A partial signature by share i is an ordinary BLS signature
// σ_i = f(i)·H(m), so any t of them combine into σ = Σ λ_i σ_i = s·H(m), where λ_i are the
// Lagrange coefficients at 0 of the t indices; public keys combine the same way. BLS signing is
// deterministic, so the combined signature is byte for byte the one the unsplit key makes.
//
// Only the proof-of-possession ciphersuite (signing version 2, and proofs of possession) combines:
// with the augmented ciphersuite (version 1) each share signs its own public key with the
// message, and those signatures do not interpolate to the group key's.
package blsthreshold

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"math/big"
	"slices"

	blst "github.com/ecadlabs/goblst"
	"github.com/ecadlabs/goblst/minpk"
	"github.com/ecadlabs/gotez/v2/crypt"
)

// order is r, the order of the BLS12-381 groups and of the scalar field.
var order, _ = new(big.Int).SetString("73eda753299d7d483339d80809a1d80553bda402fffe5bfeffffffff00000001", 16)

// MaxShares is the largest number of shares (member indices are 1 to 255).
const MaxShares = 255

// Share is one member's share of a secret key.
type Share struct {
	Index int // 1 … n: the point the polynomial was evaluated at
	Key   *crypt.BLSPrivateKey
}

// scalarOf returns a BLS secret key as an integer.
func scalarOf(k *crypt.BLSPrivateKey) *big.Int {
	return new(big.Int).SetBytes((*blst.Scalar)(k).BEBytes())
}

// keyOf returns the BLS secret key of x (0 < x < r).
func keyOf(x *big.Int) (*crypt.BLSPrivateKey, error) {
	var be [32]byte
	x.FillBytes(be[:])
	s, err := blst.ScalarFromBEBytes(be[:])
	if err != nil {
		return nil, err
	}
	return (*crypt.BLSPrivateKey)(s), nil
}

// Split splits secret into n shares of which any t recover it (1 ≤ t ≤ n ≤ MaxShares). random is
// the source of the polynomial's coefficients (crypto/rand when nil).
func Split(secret *crypt.BLSPrivateKey, t, n int, random io.Reader) ([]Share, error) {
	if t < 1 || n < t || n > MaxShares {
		return nil, fmt.Errorf("threshold: need 1 ≤ t ≤ n ≤ %d, got t = %d, n = %d", MaxShares, t, n)
	}
	if random == nil {
		random = rand.Reader
	}
	s := scalarOf(secret)
	if s.Sign() == 0 || s.Cmp(order) >= 0 {
		return nil, errors.New("threshold: the secret key is not a valid scalar")
	}
	coeffs := []*big.Int{s}
	for range t - 1 {
		c, err := rand.Int(random, order)
		if err != nil {
			return nil, err
		}
		coeffs = append(coeffs, c)
	}
	shares := make([]Share, n)
	for i := 1; i <= n; i++ {
		y := new(big.Int)
		x := big.NewInt(int64(i))
		for j := len(coeffs) - 1; j >= 0; j-- { // Horner
			y.Mul(y, x)
			y.Add(y, coeffs[j])
			y.Mod(y, order)
		}
		if y.Sign() == 0 {
			return nil, errors.New("threshold: a share is zero; split again")
		}
		k, err := keyOf(y)
		if err != nil {
			return nil, err
		}
		shares[i-1] = Share{Index: i, Key: k}
	}
	return shares, nil
}

// Lagrange returns the Lagrange coefficients at 0 of the distinct indices (each 1 … MaxShares),
// in their order.
func Lagrange(indices []int) ([]*big.Int, error) {
	if len(indices) == 0 {
		return nil, errors.New("threshold: no index")
	}
	seen := map[int]bool{}
	for _, i := range indices {
		if i < 1 || i > MaxShares {
			return nil, fmt.Errorf("threshold: index %d is not in 1 … %d", i, MaxShares)
		}
		if seen[i] {
			return nil, fmt.Errorf("threshold: index %d is given twice", i)
		}
		seen[i] = true
	}
	out := make([]*big.Int, len(indices))
	for a, i := range indices {
		num, den := big.NewInt(1), big.NewInt(1)
		for _, j := range indices {
			if j == i {
				continue
			}
			num.Mul(num, big.NewInt(int64(j)))
			num.Mod(num, order)
			den.Mul(den, big.NewInt(int64(j-i)))
			den.Mod(den, order)
		}
		inv := new(big.Int).ModInverse(den, order)
		out[a] = num.Mul(num, inv).Mod(num, order)
	}
	return out, nil
}

// sorted returns the indices of m in increasing order.
func sorted[T any](m map[int]T) []int {
	idx := make([]int, 0, len(m))
	for i := range m {
		idx = append(idx, i)
	}
	slices.Sort(idx)
	return idx
}

// Mismatch is what CheckShares found: share Index, combined with the shares With (Index
// included, increasing), does not give the group key.
type Mismatch struct {
	Index int
	With  []int
}

func (m *Mismatch) Error() string {
	return fmt.Sprintf("threshold: share %d with shares %v does not interpolate to the group key", m.Index, m.With)
}

// CheckShares checks that the share public keys (index → key) belong to group for threshold t:
// each share, combined with the t − 1 lowest other indices, must interpolate to group. Those
// t − 1 shares and group fix the polynomial, so every share is checked against the same one, and
// a share that is not on it is named (a *Mismatch). There must be at least t keys.
func CheckShares(group *crypt.BLSPublicKey, keys map[int]*crypt.BLSPublicKey, t int) error {
	idx := sorted(keys)
	if t < 1 || len(idx) < t {
		return fmt.Errorf("threshold: %d share keys for a threshold of %d", len(idx), t)
	}
	want := (*minpk.PublicKey)(group).Bytes()
	for _, i := range idx {
		set := map[int]*crypt.BLSPublicKey{i: keys[i]}
		for _, j := range idx {
			if len(set) == t {
				break
			}
			set[j] = keys[j]
		}
		got, err := CombinePublicKeys(set)
		if err != nil {
			return err
		}
		if !bytes.Equal((*minpk.PublicKey)(got).Bytes(), want) {
			return &Mismatch{Index: i, With: sorted(set)}
		}
	}
	return nil
}

// scalarFor returns λ as a blst scalar (λ may be 0 … r−1; a zero λ cannot occur for distinct
// non-zero indices).
func scalarFor(l *big.Int) (*blst.Scalar, error) {
	var be [32]byte
	l.FillBytes(be[:])
	return blst.ScalarFromBEBytes(be[:])
}

// CombineSignatures combines partial signatures (share index → the share's signature of one
// message, proof-of-possession ciphersuite) into the group key's signature. Every index given
// counts: pass exactly t partials, each verified against its share's public key beforehand.
func CombineSignatures(partials map[int]*crypt.BLSSignature) (*crypt.BLSSignature, error) {
	idx := sorted(partials)
	ls, err := Lagrange(idx)
	if err != nil {
		return nil, err
	}
	var acc *blst.P2
	for a, i := range idx {
		sig := (*blst.P2Affine)(partials[i])
		if !sig.IsInG2() {
			return nil, fmt.Errorf("threshold: the partial signature of share %d is not in G2", i)
		}
		l, err := scalarFor(ls[a])
		if err != nil {
			return nil, err
		}
		term := l.SignInG1(sig.Jacobian()).Affine()
		if acc == nil {
			acc = term.Jacobian()
		} else {
			acc.AddOrDoubleAffine(term)
		}
	}
	return (*crypt.BLSSignature)(acc.Affine()), nil
}

// CombinePublicKeys combines the public keys of shares (index → key) as CombineSignatures does
// signatures: t shares of one split give the group public key.
func CombinePublicKeys(keys map[int]*crypt.BLSPublicKey) (*crypt.BLSPublicKey, error) {
	idx := sorted(keys)
	ls, err := Lagrange(idx)
	if err != nil {
		return nil, err
	}
	var acc *blst.P1
	for a, i := range idx {
		pub := (*blst.P1Affine)(keys[i])
		if !pub.IsInG1() || pub.IsInf() {
			return nil, fmt.Errorf("threshold: the public key of share %d is not a valid G1 point", i)
		}
		l, err := scalarFor(ls[a])
		if err != nil {
			return nil, err
		}
		term := l.SignInG2(pub.Jacobian()).Affine()
		if acc == nil {
			acc = term.Jacobian()
		} else {
			acc.AddOrDoubleAffine(term)
		}
	}
	return (*crypt.BLSPublicKey)((*minpk.PublicKey)(acc.Affine())), nil
}
