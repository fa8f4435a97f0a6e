package blsthreshold

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/ecadlabs/gotez/v2/crypt"

	"github.com/signatory-go/signatory/internal/tezos"
)

// Octez is octez-client's `share bls secret key <BLsk> between <n> shares with threshold <t>`
// output (octez v23 and later): the group key, its proof of possession, and each share as
// {id, secret_key}, share id i being the polynomial at x = i (the convention used here too), ids
// an int8 (so at most OctezMaxShares shares). The threshold is not in it.
type Octez struct {
	PublicKey     string       `json:"public_key"`
	PublicKeyHash string       `json:"public_key_hash"`
	Proof         string       `json:"proof"`
	SecretShares  []OctezShare `json:"secret_shares"`
}

// OctezShare is one share of Octez.
type OctezShare struct {
	ID        int    `json:"id"`
	SecretKey string `json:"secret_key"`
}

// OctezMaxShares is the largest share id octez's format holds (an int8).
const OctezMaxShares = 127

// ToOctez writes shares of group, with the group's proof of possession, in octez's format
// (unencrypted, as octez writes them).
func ToOctez(group *crypt.BLSPublicKey, proof crypt.Signature, shares []Share) Octez {
	out := Octez{PublicKey: group.String(), PublicKeyHash: group.Hash().String(), Proof: tezos.SignatureString(proof)}
	for _, s := range shares {
		out.SecretShares = append(out.SecretShares, OctezShare{ID: s.Index, SecretKey: string(s.Key.ToProtocol().ToBase58())})
	}
	return out
}

// ParseOctez reads octez-client's share JSON and checks it: no unknown field, the group key and
// its address agree, the proof of possession verifies, the ids are distinct and in
// 1 … OctezMaxShares, and every share with t − 1 others interpolates to the group key. It returns
// the shares sorted by id. Secrets never appear in its errors.
func ParseOctez(data []byte, t int) (*crypt.BLSPublicKey, crypt.Signature, []Share, error) {
	var in Octez
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		return nil, nil, nil, fmt.Errorf("not octez-client's share JSON: %w", err)
	}
	bad := func(format string, args ...any) (*crypt.BLSPublicKey, crypt.Signature, []Share, error) {
		return nil, nil, nil, fmt.Errorf(format, args...)
	}
	pub, err := tezos.ParsePublicKey(in.PublicKey)
	if err != nil {
		return bad("public_key: %w", err)
	}
	group, ok := pub.(*crypt.BLSPublicKey)
	if !ok {
		return bad("public_key is not a BLS key")
	}
	if in.PublicKeyHash != group.Hash().String() {
		return bad("public_key_hash %q is not public_key's address %s", in.PublicKeyHash, group.Hash())
	}
	proof, err := tezos.ParseSignature(in.Proof)
	if err != nil || !tezos.VerifyPossession(group, proof) {
		return bad("proof does not verify against public_key: not the group key's proof of possession")
	}
	if len(in.SecretShares) == 0 {
		return bad("no secret_shares")
	}
	var shares []Share
	pubs := map[int]*crypt.BLSPublicKey{}
	for i, s := range in.SecretShares {
		if s.ID < 1 || s.ID > OctezMaxShares || pubs[s.ID] != nil {
			return bad("secret_shares[%d]: id %d must be 1 … %d and distinct", i, s.ID, OctezMaxShares)
		}
		priv, err := tezos.ParseSecretKey(strings.TrimPrefix(s.SecretKey, "unencrypted:"), nil)
		if err != nil {
			return bad("secret_shares[%d] (id %d): secret_key does not parse as a secret key", i, s.ID)
		}
		k, ok := priv.(*crypt.BLSPrivateKey)
		if !ok {
			return bad("secret_shares[%d] (id %d): secret_key is not a BLS key", i, s.ID)
		}
		shares = append(shares, Share{Index: s.ID, Key: k})
		pubs[s.ID] = k.Public().(*crypt.BLSPublicKey)
	}
	sort.Slice(shares, func(a, b int) bool { return shares[a].Index < shares[b].Index })
	if t > len(shares) {
		return bad("threshold %d but only %d shares", t, len(shares))
	}
	var m *Mismatch
	if err := CheckShares(group, pubs, t); errors.As(err, &m) {
		return bad("share %d with shares %v does not interpolate to public_key with threshold %d: a wrong share, or not the threshold they were made for", m.Index, m.With, t)
	} else if err != nil {
		return nil, nil, nil, err
	}
	return group, proof, shares, nil
}

// SecretKeyText is a share's secret key as a secret_keys file holds it: "unencrypted:BLsk…", or
// with a password "encrypted:BLesk…" (octez-client's encryption).
func SecretKeyText(k *crypt.BLSPrivateKey, password []byte) (string, error) {
	if password == nil {
		return "unencrypted:" + string(k.ToProtocol().ToBase58()), nil
	}
	enc, err := tezos.EncryptSecretKey(k, password)
	if err != nil {
		return "", err
	}
	return "encrypted:" + enc, nil
}
