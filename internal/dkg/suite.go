// Package dkg generates a threshold tz4 key among n members with no dealer: no machine ever holds
// the group's secret key. It runs the joint-Feldman distributed key generation of Gennaro,
// Jarecki, Krawczyk and Rabin ("Secure distributed key generation for discrete-log based
// cryptosystems", 1999/2007) as drand's kyber implements it (share/dkg, the one drand's network
// runs on BLS12-381), with complaints, justifications and a qualified set, over G1 of BLS12-381:
// the group key is a tz4 public key (min-pk), each member's share an ordinary BLS secret key
// (share i is the group polynomial at x = i, as threshold.Split and octez-client make them), so
// the threshold vault combines their partial signatures unchanged.
//
// Members talk directly over HTTP. Every message is signed with its sender's long-term identity
// key (a Schnorr signature over G1) and encrypted to its recipient's (ECIES), so nobody else on
// the network can read or forge one; the deals inside are also signed and encrypted by kyber. A
// member writes nothing until every member of the qualified set has confirmed the same group key
// and transcript hash.
package dkg

import (
	"crypto/cipher"
	"fmt"
	"hash"

	blst "github.com/ecadlabs/goblst"
	"github.com/ecadlabs/goblst/minpk"
	"github.com/ecadlabs/gotez/v2/crypt"

	"crypto/sha256"
	"github.com/drand/kyber"
	bls "github.com/drand/kyber/pairing/circl_bls12381"
	"github.com/drand/kyber/util/random"
	"github.com/drand/kyber/xof/blake2xb"
)

// suite is G1 of BLS12-381 with the hash, XOF and randomness kyber's DKG needs.
type suite struct{}

var g1 = bls.NewSuite().G1()

func (suite) String() string              { return "bls12381-g1" }
func (suite) ScalarLen() int              { return g1.ScalarLen() }
func (suite) Scalar() kyber.Scalar        { return g1.Scalar() }
func (suite) PointLen() int               { return g1.PointLen() }
func (suite) Point() kyber.Point          { return g1.Point() }
func (suite) Hash() hash.Hash             { return sha256.New() }
func (suite) XOF(seed []byte) kyber.XOF   { return blake2xb.New(seed) }
func (suite) RandomStream() cipher.Stream { return random.New() }

// keyOfScalar returns the BLS secret key of a nonzero scalar.
func keyOfScalar(s kyber.Scalar) (*crypt.BLSPrivateKey, error) {
	be, err := s.MarshalBinary() // big-endian
	if err != nil {
		return nil, err
	}
	k, err := blst.ScalarFromBEBytes(be)
	if err != nil {
		return nil, fmt.Errorf("share: %w", err)
	}
	return (*crypt.BLSPrivateKey)(k), nil
}

// scalarOfKey returns a BLS secret key as a kyber scalar.
func scalarOfKey(k *crypt.BLSPrivateKey) kyber.Scalar {
	return g1.Scalar().SetBytes((*blst.Scalar)(k).BEBytes())
}

// publicKeyOf returns a G1 point as a tz4 public key.
func publicKeyOf(p kyber.Point) (*crypt.BLSPublicKey, error) {
	b, err := p.MarshalBinary() // compressed, as octez encodes BLpk
	if err != nil {
		return nil, err
	}
	pk, err := minpk.PublicKeyFromBytes(b)
	if err != nil {
		return nil, err
	}
	return (*crypt.BLSPublicKey)(pk), nil
}

// pointOfKey returns a tz4 public key as a G1 point.
func pointOfKey(pk *crypt.BLSPublicKey) (kyber.Point, error) {
	p := g1.Point()
	if err := p.UnmarshalBinary((*minpk.PublicKey)(pk).Bytes()); err != nil {
		return nil, err
	}
	return p, nil
}
