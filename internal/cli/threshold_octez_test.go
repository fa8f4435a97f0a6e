package cli

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"math/big"
	"slices"
	"strings"
	"testing"

	blst "github.com/ecadlabs/goblst"
	"github.com/ecadlabs/goblst/minpk"
	"github.com/ecadlabs/gotez/v2/crypt"

	"github.com/signatory-go/signatory/internal/blsthreshold"
	tv "github.com/signatory-go/signatory/internal/testvectors"
	"github.com/signatory-go/signatory/internal/tezos"
)

// octez's conventions, written here from its sources (src/lib_bls12_381_signature,
// src/lib_crypto) and independently of this project's code: a BLsk is base58check of the prefix
// 03 96 c0 28 and the 32-byte little-endian scalar; share id i is the secret polynomial at x = i.
var (
	blskPrefix = []byte{3, 150, 192, 40}
	// blsOrder is r, the order of BLS12-381's scalar field.
	blsOrder, _ = new(big.Int).SetString("73eda753299d7d483339d80809a1d80553bda402fffe5bfeffffffff00000001", 16)
	// octez's key-encoding vector (src/lib_crypto/test/key_encoding_vectors.ml).
	octezBLSK, octezBLPK, octezTZ4 = "BLsk1eGhiPQXKtvvkBeXzmtVVJs6KPhEF45drF7MLjoCDcSnTGuyjL",
		"BLpk1ur5XXicWYMMzCVZZWyLZhybtyX8Zot2uCzDCZW8KcC5BdZiLVXRZvZzi4GuZYL9SarUvKpE", "tz4TFJdv9Jd44FtBMAxi3KQT7AtazhVyaPa6"
)

const b58Alphabet = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"

func b58CheckDecode(t *testing.T, s string, prefix []byte) []byte {
	t.Helper()
	n := new(big.Int)
	for _, c := range s {
		i := strings.IndexRune(b58Alphabet, c)
		if i < 0 {
			t.Fatalf("%q: not base58", s)
		}
		n.Mul(n, big.NewInt(58)).Add(n, big.NewInt(int64(i)))
	}
	raw := n.Bytes()
	sum1 := sha256.Sum256(raw[:len(raw)-4])
	sum2 := sha256.Sum256(sum1[:])
	if !bytes.Equal(sum2[:4], raw[len(raw)-4:]) || !bytes.HasPrefix(raw, prefix) {
		t.Fatalf("%q: bad checksum or prefix", s)
	}
	return raw[len(prefix) : len(raw)-4]
}

func b58CheckEncode(prefix, payload []byte) string {
	raw := append(slices.Clone(prefix), payload...)
	sum1 := sha256.Sum256(raw)
	sum2 := sha256.Sum256(sum1[:])
	raw = append(raw, sum2[:4]...)
	n := new(big.Int).SetBytes(raw)
	var out []byte
	for n.Sign() > 0 {
		m := new(big.Int)
		n.DivMod(n, big.NewInt(58), m)
		out = append(out, b58Alphabet[m.Int64()])
	}
	slices.Reverse(out) // no leading zero bytes in these prefixes
	return string(out)
}

// scalarOf is the scalar of a BLsk, read little-endian as octez does.
func scalarOf(t *testing.T, blsk string) *big.Int {
	be := slices.Clone(b58CheckDecode(t, blsk, blskPrefix))
	slices.Reverse(be)
	return new(big.Int).SetBytes(be)
}

func blskOf(x *big.Int) string {
	be := make([]byte, 32)
	new(big.Int).Mod(x, blsOrder).FillBytes(be)
	slices.Reverse(be)
	return b58CheckEncode(blskPrefix, be)
}

// TestThresholdOctezShares: our shares and octez-client's are the same thing, checked against
// octez's conventions as written above (not against our own split):
//   - octez's BLS key-encoding vector parses to its known public key and address;
//   - shares made here by octez's rule (f(i) = s + a·i, little-endian BLsk) are taken by
//     `--from-octez` as they are, their partial signatures combining into exactly the unsplit
//     key's signature;
//   - `--format octez` prints octez-client's JSON, whose shares interpolate to the key by
//     octez's rule (2·f(1) − f(2) = s);
//   - a wrong proof, a foreign share, a wrong -t, duplicate ids, unknown fields are refused.
func TestThresholdOctezShares(t *testing.T) {
	t.Parallel()
	master, err := tezos.ParseSecretKey(octezBLSK, nil)
	if err != nil {
		t.Fatal(err)
	}
	if master.Public().String() != octezBLPK || master.Public().Hash().String() != octezTZ4 {
		t.Fatalf("octez's vector: %s %s", master.Public(), master.Public().Hash())
	}
	s, a := scalarOf(t, octezBLSK), scalarOf(t, tv.K7SK)
	share := func(i int64) string { return blskOf(new(big.Int).Add(s, new(big.Int).Mul(a, big.NewInt(i)))) }
	proof := tezos.SignatureString(master.(*crypt.BLSPrivateKey).ProvePossession())
	octezJSON := func(proof string, shares map[int]string, extra string) string {
		var b strings.Builder
		b.WriteString(`{ "public_key": "` + octezBLPK + `", "public_key_hash": "` + octezTZ4 + `", "proof": "` + proof + `",` + extra + ` "secret_shares": [`)
		for i, id := range []int{1, 2, 3} {
			if i > 0 {
				b.WriteString(",")
			}
			b.WriteString(`{ "id": ` + string(rune('0'+id)) + `, "secret_key": "` + shares[id] + `" }`)
		}
		return b.String() + "] }"
	}
	good := map[int]string{1: share(1), 2: share(2), 3: share(3)}
	out, err := runIn(t, octezJSON(proof, good, ""), "threshold", "split", "--from-octez", "-", "-t", "2", "--json")
	if err != nil {
		t.Fatal(err)
	}
	var res splitJSON
	if err := json.Unmarshal([]byte(out), &res); err != nil || res.GroupPKH != octezTZ4 || len(res.Shares) != 3 {
		t.Fatalf("%v %+v", err, res)
	}
	msg := []byte{0x13, 0x7a, 0x06, 0xa7, 0x70, 1, 2, 3}
	partials := map[int]*crypt.BLSSignature{}
	for _, i := range []int{3, 1} {
		k, err := tezos.ParseSecretKey(strings.TrimPrefix(res.Shares[i-1].SecretKey, "unencrypted:"), nil)
		if err != nil || res.Shares[i-1].SecretKey != "unencrypted:"+good[i] {
			t.Fatalf("share %d: %v %q", i, err, res.Shares[i-1].SecretKey)
		}
		partials[i] = (*crypt.BLSSignature)(minpk.Sign((*minpk.PrivateKey)(k.(*crypt.BLSPrivateKey)), msg, blst.ProofOfPossession))
	}
	sig, err := blsthreshold.CombineSignatures(partials)
	if err != nil {
		t.Fatal(err)
	}
	want := minpk.Sign((*minpk.PrivateKey)(master.(*crypt.BLSPrivateKey)), msg, blst.ProofOfPossession)
	if !bytes.Equal((*minpk.Signature)(sig).Bytes(), (*minpk.Signature)(want).Bytes()) {
		t.Fatal("octez-style shares 1 and 3 do not combine into the key's signature")
	}

	// --format octez: octez-client's JSON, interpolating by octez's rule.
	out, err = runIn(t, octezBLSK+"\n", "threshold", "split", "-t", "2", "-n", "3", "--format", "octez")
	if err != nil {
		t.Fatal(err)
	}
	var oct map[string]any
	if err := json.Unmarshal([]byte(out), &oct); err != nil {
		t.Fatal(err)
	}
	var keys []string
	for k := range oct {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	if strings.Join(keys, ",") != "proof,public_key,public_key_hash,secret_shares" || oct["public_key"] != octezBLPK || oct["proof"] != proof {
		t.Fatalf("not octez's shape: %s", out)
	}
	var parsed blsthreshold.Octez
	if err := json.Unmarshal([]byte(out), &parsed); err != nil || len(parsed.SecretShares) != 3 {
		t.Fatalf("%v %s", err, out)
	}
	f := map[int]*big.Int{}
	for _, sh := range parsed.SecretShares {
		f[sh.ID] = scalarOf(t, sh.SecretKey)
	}
	s0 := new(big.Int).Sub(new(big.Int).Mul(big.NewInt(2), f[1]), f[2])
	if blskOf(s0) != blskOf(s) {
		t.Fatal("2·f(1) − f(2) is not the key: the shares are not octez's polynomial at x = id")
	}

	// Refusals.
	other, _ := tezos.GenerateKey(tezos.BLS)
	foreign := map[int]string{1: good[1], 2: string(other.(*crypt.BLSPrivateKey).ToProtocol().ToBase58()), 3: good[3]}
	otherProof := tezos.SignatureString(other.(*crypt.BLSPrivateKey).ProvePossession())
	for _, c := range []struct {
		stdin string
		args  []string
		want  string
	}{
		{octezJSON(otherProof, good, ""), []string{"-t", "2"}, "proof does not verify"},
		{octezJSON(proof, foreign, ""), []string{"-t", "2"}, "share 1 with shares [1 2] does not interpolate"},
		{octezJSON(proof, good, ""), []string{"-t", "1", "--unsafe-threshold"}, "does not interpolate to public_key with threshold 1"},
		{octezJSON(proof, good, ""), nil, "needs -t"},
		{strings.Replace(octezJSON(proof, good, ""), `"id": 2`, `"id": 1`, 1), []string{"-t", "2"}, "distinct"},
		{octezJSON(proof, good, ` "threshold": 2,`), []string{"-t", "2"}, "not octez-client's share JSON"},
		{octezJSON(proof, good, ""), []string{"-t", "2", "--generate"}, "one or the other"},
	} {
		_, err := runIn(t, c.stdin, append([]string{"threshold", "split", "--from-octez", "-"}, c.args...)...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: %v, want %q", c.args, err, c.want)
		}
		if err != nil && strings.Contains(err.Error(), "BLsk") {
			t.Errorf("an error shows a secret key: %v", err)
		}
	}
	if _, err := runIn(t, octezBLSK, "threshold", "split", "--format", "octez", "--password-file", "x"); err == nil || !strings.Contains(err.Error(), "unencrypted shares") {
		t.Errorf("--format octez with a password: %v", err)
	}
}
