package tezos

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/ecadlabs/gotez/v2/b58/prefix"
)

// Every base58 value a client sends (the /keys/<pkh> path, ?authentication=, bls_pk, a policy's
// addresses and chain ids) takes one path, (*b58Set).parse, whose cost is bounded and
// proportionate before any decoding: text longer than the longest value of any kind we parse is
// refused first; then the text must start as one of the accepted kinds starts and have one of that
// kind's lengths, or it is refused undecoded. Only then is it decoded, by decodeBase58 (never
// gotez's slower decoder), and it passes or fails exactly as gotez's base58.DecodeTZ and the b58
// package's type switch would, with the same error messages. TestParseMatchesGotez and
// FuzzParseMatchesGotez compare the two.
//
// A kind's lengths and leading text are derived from gotez's prefix table, not written by hand:
// a value of a kind is prefix ‖ payload (Len bytes) ‖ 4 checksum bytes, read as one big-endian
// number. All those numbers lie between prefix ‖ 00…00 and prefix ‖ ff…ff, and since base58 digits
// are in ASCII order and a prefix never starts with a zero byte (which would be a leading '1'),
// every encoding has between as many digits as the lower bound and as many as the upper bound and,
// when those are equal, starts with what the two bounds' encodings have in common.
// TestB58KindsDerivation checks this against the encodings of random payloads.

// b58Kind is one base58check encoding we parse from text.
type b58Kind struct {
	pre      *prefix.Prefix
	text     string // what every encoding starts with ("" when the lengths vary)
	min, max int    // the lengths of its encodings
	says     string // "a <noun> starting <text> is <lengths> characters", for refusals
}

// deriveKind computes the lengths and leading text of p's encodings.
func deriveKind(p *prefix.Prefix) *b58Kind {
	if len(p.Prefix) == 0 || p.Prefix[0] == 0 || p.Len <= 0 {
		panic(fmt.Sprintf("tezos: base58 prefix %v with payload length %d: lengths not derivable", p.Prefix, p.Len))
	}
	rest := uint(8 * (p.Len + 4)) // payload ‖ checksum, in bits
	one := big.NewInt(1)
	lo := new(big.Int).Lsh(new(big.Int).SetBytes(p.Prefix), rest)
	hi := new(big.Int).SetBytes(p.Prefix)
	hi.Add(hi, one).Lsh(hi, rest).Sub(hi, one)
	const k = 12 // leading digits compared; a Tezos prefix's text is shorter
	loLen, loHead := base58Head(lo, k)
	hiLen, hiHead := base58Head(hi, k)
	kind := &b58Kind{pre: p, min: loLen, max: hiLen}
	if loLen == hiLen {
		n := 0
		for n < len(loHead) && n < len(hiHead) && loHead[n] == hiHead[n] {
			n++
		}
		kind.text = loHead[:n]
	}
	return kind
}

// base58Head returns how many base58 digits x > 0 has and the first k of them (Bitcoin
// alphabet), by math/big, independently of encodeBase58 and without writing all of them (an mdsig
// has 3,316).
func base58Head(x *big.Int, k int) (int, string) {
	b58 := big.NewInt(58)
	// Find d with 58^(d-1) ≤ x < 58^d, from below: log2(58) < 5.86, so 58^d ≤ 2^(BitLen-1) ≤ x.
	d := int(float64(x.BitLen()-1) / 5.86)
	p := new(big.Int).Exp(b58, big.NewInt(int64(d)), nil)
	for p.Cmp(x) <= 0 {
		p.Mul(p, b58)
		d++
	}
	lead := x
	if d > k {
		lead = new(big.Int).Quo(x, new(big.Int).Exp(b58, big.NewInt(int64(d-k)), nil))
	}
	const bigDigits = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ" // Text's
	t := []byte(lead.Text(58))
	for i, c := range t {
		t[i] = b58Alphabet[strings.IndexByte(bigDigits, c)]
	}
	return d, string(t)
}

// b58Set is what one parser accepts: some kinds, under one name.
type b58Set struct {
	noun     string // "signature", …
	unknown  string // gotez's message for a value of another kind
	kinds    []*b58Kind
	lengths  []int // every length of every kind, ascending
	says     string
	prefixes []*prefix.Prefix
}

func newB58Set(noun, unknown string, pres ...*prefix.Prefix) *b58Set {
	set := &b58Set{noun: noun, unknown: unknown, prefixes: pres}
	for _, p := range pres {
		k := deriveKind(p)
		var ls []int
		for n := k.min; n <= k.max; n++ {
			ls = append(ls, n)
		}
		k.says = "a " + noun + " starting " + k.text + " is " + lengthsText(ls) + " characters"
		set.kinds = append(set.kinds, k)
		set.lengths = append(set.lengths, ls...)
	}
	slices.Sort(set.lengths)
	set.lengths = slices.Compact(set.lengths)
	set.says = "a " + noun + " is " + lengthsText(set.lengths) + " characters"
	return set
}

// lengthsText is "36" or "96, 98, 99, 142 or 3316".
func lengthsText(ls []int) string {
	var b strings.Builder
	for i, l := range ls {
		switch {
		case i == 0:
		case i == len(ls)-1:
			b.WriteString(" or ")
		default:
			b.WriteString(", ")
		}
		b.WriteString(strconv.Itoa(l))
	}
	return b.String()
}

var (
	pkhSet = newB58Set("key hash", "unknown public key prefix", &prefix.Ed25519PublicKeyHash,
		&prefix.Secp256k1PublicKeyHash, &prefix.P256PublicKeyHash, &prefix.BLS12_381PublicKeyHash,
		&prefix.MLDSA44PublicKeyHash)
	contractSet  = newB58Set("contract address", "invalid ContractHash encoding", &prefix.ContractHash)
	publicKeySet = newB58Set("public key", "unknown public key prefix", &prefix.Ed25519PublicKey,
		&prefix.Secp256k1PublicKey, &prefix.P256PublicKey, &prefix.BLS12_381PublicKey, &prefix.MLDSA44PublicKey)
	signatureSet = newB58Set("signature", "unknown signature prefix", &prefix.GenericSignature,
		&prefix.Ed25519Signature, &prefix.Secp256k1Signature, &prefix.P256Signature,
		&prefix.BLS12_381Signature, &prefix.MLDSA44Signature)
	chainIDSet = newB58Set("chain id", "invalid ChainID encoding", &prefix.ChainID)

	b58Sets = []*b58Set{pkhSet, contractSet, publicKeySet, signatureSet, chainIDSet}

	// maxTZLength is the length of the longest value of any kind parsed from text (an mdsig
	// signature's): anything longer is refused before anything else.
	maxTZLength = func() int {
		n := 0
		for _, set := range b58Sets {
			n = max(n, set.lengths[len(set.lengths)-1])
		}
		return n
	}()
)

// refusal is why text is not a value of a set's kinds; the zero refusal is none. A refusal costs
// about as little as the parse of a short valid value (BenchmarkParseWorst): it is put into words
// once, by parseError, from precomputed parts, without fmt.
type refusal struct {
	msg  string // the reason, or, for a length, what a value is: "a key hash is 36 characters"
	form int    // how msg and n make the reason
	n    int    // the length of the text
}

const (
	refusedAs     = iota // msg
	refusedLength        // "<msg>, not <n>"
	refusedLong          // "<n> characters is too long (<msg>)"
)

func (r refusal) ok() bool { return r.msg == "" }

// appendTo appends the reason's words to b.
func (r refusal) appendTo(b []byte) []byte {
	switch r.form {
	case refusedLength:
		b = append(b, r.msg...)
		b = append(b, ", not "...)
		return strconv.AppendInt(b, int64(r.n), 10)
	case refusedLong:
		b = strconv.AppendInt(b, int64(r.n), 10)
		b = append(b, " characters is too long ("...)
		b = append(b, r.msg...)
		return append(b, ')')
	}
	return append(b, r.msg...)
}

// How parseError shows the refused text.
const (
	showNone  = iota
	showShort // quoted, cut to 40 characters (quoteShort)
	showKey   // quoted, whole up to MaxBase58Length characters, else cut to 40 (quoteKey)
)

// parseError is "<what><s, quoted as asked>: <why>" (or "<what><why>" with showNone), built
// in one buffer.
func parseError(what, s string, show int, why refusal) error {
	b := make([]byte, 0, 256)
	b = append(b, what...)
	if show != showNone {
		if show == showKey {
			b = appendQuoteKey(b, s)
		} else {
			b = appendQuoteShort(b, s)
		}
		b = append(b, ": "...)
	}
	return errors.New(string(why.appendTo(b)))
}

// admit says whether s may be a value of one of set's kinds, by its length and leading
// characters only, and if not, why.
func (set *b58Set) admit(s string) refusal {
	n := len(s)
	// The overall cap first (a set's own longest length is never above it).
	if n > maxTZLength || n > set.lengths[len(set.lengths)-1] {
		return refusal{msg: set.says, form: refusedLong, n: n}
	}
	var near *b58Kind // a kind s starts as, of other lengths
	for _, k := range set.kinds {
		if strings.HasPrefix(s, k.text) {
			if n >= k.min && n <= k.max {
				return refusal{}
			}
			near = k
		}
	}
	switch {
	case near != nil && n > near.max:
		return refusal{msg: near.says, form: refusedLong, n: n}
	case near != nil:
		return refusal{msg: near.says, form: refusedLength, n: n}
	case !slices.Contains(set.lengths, n):
		return refusal{msg: set.says, form: refusedLength, n: n}
	}
	return refusal{msg: set.unknown}
}

// parse is the one bounded path from text to a prefix and payload of one of set's kinds: admit,
// then decode with our decoder. Once admitted, s passes or fails as gotez's base58.DecodeTZ and
// type switch would, with the same messages (without their "gotez: ").
func (set *b58Set) parse(s string) (*prefix.Prefix, []byte, refusal) {
	if why := set.admit(s); !why.ok() {
		return nil, nil, why
	}
	p, payload, why := decodeTZAny(s)
	if why != "" {
		return nil, nil, refusal{msg: why}
	}
	if !slices.Contains(set.prefixes, p) {
		return nil, nil, refusal{msg: set.unknown}
	}
	return p, payload, refusal{}
}

// decodeTZAny is gotez's base58.DecodeTZ on our decoder: the same prefix (the first of
// prefix.List the bytes start with), the same payload and the same error messages, without their
// "gotez: "; why is "" when s decodes.
func decodeTZAny(s string) (p *prefix.Prefix, payload []byte, why string) {
	raw, ok := decodeBase58(s)
	if !ok {
		i := 0
		for b58Index[s[i]] != 0xff {
			i++
		}
		b := append([]byte("base58 decoding error: unexpected character at position "), strconv.Itoa(i)...)
		b = utf8.AppendRune(append(b, ": "...), rune(s[i])) // as %c of a byte
		return nil, nil, string(b)
	}
	if len(raw) < 4 {
		return nil, nil, "base58Check decoding error: data is too short: " + strconv.Itoa(len(raw))
	}
	body := raw[:len(raw)-4]
	s0 := sha256.Sum256(body)
	s1 := sha256.Sum256(s0[:])
	if [4]byte(raw[len(raw)-4:]) != [4]byte(s1[:4]) {
		return nil, nil, "base58Check decoding error: invalid checksum"
	}
	for _, p := range prefix.List {
		if len(body) >= len(p.Prefix) && string(body[:len(p.Prefix)]) == string(p.Prefix) {
			if n := len(body) - len(p.Prefix); p.Len != 0 && n != p.Len {
				return p, nil, "invalid base58 message length: expected " + strconv.Itoa(p.Len) + ", got " + strconv.Itoa(n)
			}
			return p, body[len(p.Prefix):], ""
		}
	}
	return nil, nil, "unknown Tezos base58 prefix"
}
