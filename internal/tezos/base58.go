package tezos

import (
	"bytes"
	"crypto/elliptic"
	"crypto/sha256"
	"math/bits"

	"github.com/ecadlabs/goblst/minpk"
	"github.com/ecadlabs/gotez/v2/b58/prefix"
	"github.com/ecadlabs/gotez/v2/crypt"
)

// Every released signature is base58check-encoded once for the answer (and once more for the
// watermark record). gotez's encoder divides the whole number by 58 one digit at a time; this one
// works in limbs of 58^5 (which fit in 32 bits), about ten times faster, with the same output:
// TestBase58MatchesGotez compares the two on random inputs of every length up to 200 bytes,
// leading zeros included, and every signature kind.

const (
	b58Alphabet = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
	b58Limb     = 58 * 58 * 58 * 58 * 58 // 656 356 768 < 2^32
)

// encodeBase58 encodes src in base58 (Bitcoin alphabet), each leading zero byte as '1'.
func encodeBase58(src []byte) []byte {
	zeros := 0
	for zeros < len(src) && src[zeros] == 0 {
		zeros++
	}
	// log(256)/log(58^5) ≈ 0.2732 limbs per byte.
	limbs := make([]uint32, 0, (len(src)-zeros)*2733/10000+1)
	for _, b := range src[zeros:] {
		carry := uint64(b)
		for i := range limbs {
			x := uint64(limbs[i])<<8 | carry
			limbs[i] = uint32(x % b58Limb)
			carry = x / b58Limb
		}
		for carry > 0 {
			limbs = append(limbs, uint32(carry%b58Limb))
			carry /= b58Limb
		}
	}
	// Digits, least significant first.
	digits := make([]byte, 0, len(limbs)*5)
	for i, l := range limbs {
		for j := 0; j < 5; j++ {
			if i == len(limbs)-1 && l == 0 {
				break // no leading zero digits from the top limb
			}
			digits = append(digits, b58Alphabet[l%58])
			l /= 58
		}
	}
	out := make([]byte, zeros+len(digits))
	for i := range zeros {
		out[i] = '1'
	}
	for i, d := range digits {
		out[len(out)-1-i] = d
	}
	return out
}

// encodeBase58Check encodes prefix ‖ payload ‖ the first 4 bytes of sha256(sha256(prefix ‖
// payload)), as Tezos' base58check does.
func encodeBase58Check(pre, payload []byte) string {
	buf := make([]byte, 0, len(pre)+len(payload)+4)
	buf = append(buf, pre...)
	buf = append(buf, payload...)
	s0 := sha256.Sum256(buf)
	s1 := sha256.Sum256(s0[:])
	return string(encodeBase58(append(buf, s1[:4]...)))
}

// SignatureString is sig.String() (edsig…, spsig1…, p2sig…, BLsig…, mdsig…), faster.
func SignatureString(sig crypt.Signature) string {
	switch s := sig.(type) {
	case crypt.Ed25519Signature:
		if len(s) == prefix.Ed25519Signature.Len {
			return encodeBase58Check(prefix.Ed25519Signature.Prefix, s)
		}
	case *crypt.ECDSASignature:
		if s.R.Sign() > 0 && s.S.Sign() > 0 && s.R.BitLen() <= 256 && s.S.BitLen() <= 256 {
			var rs [64]byte
			s.R.FillBytes(rs[:32])
			s.S.FillBytes(rs[32:])
			switch s.Curve {
			case crypt.S256():
				return encodeBase58Check(prefix.Secp256k1Signature.Prefix, rs[:])
			case elliptic.P256():
				return encodeBase58Check(prefix.P256Signature.Prefix, rs[:])
			}
		}
	case *crypt.BLSSignature:
		return encodeBase58Check(prefix.BLS12_381Signature.Prefix, (*minpk.Signature)(s).Bytes())
	case crypt.MLDSA44Signature:
		if len(s) == prefix.MLDSA44Signature.Len {
			return encodeBase58Check(prefix.MLDSA44Signature.Prefix, s)
		}
	}
	return sig.String()
}

// b58Index maps a base58 digit to its value, 0xff for anything else.
var b58Index = func() (t [256]byte) {
	for i := range t {
		t[i] = 0xff
	}
	for i := range len(b58Alphabet) {
		t[b58Alphabet[i]] = byte(i)
	}
	return
}()

// pow58 are 58^0 … 58^10 (58^10 < 2^64).
var pow58 = func() (p [11]uint64) {
	p[0] = 1
	for i := 1; i < len(p); i++ {
		p[i] = p[i-1] * 58
	}
	return
}()

// decodeBase58 decodes s (Bitcoin alphabet), each leading '1' as a zero byte. gotez's decoder
// multiplies the whole number by 58 a digit at a time; this one takes ten digits at a time into
// 64-bit limbs: on a tz5 signature (3,316 characters), the difference between about 7 ms and
// a few hundredths of that for every ?authentication= a client sends. TestBase58MatchesGotez
// and FuzzBase58 compare the two.
func decodeBase58(s string) ([]byte, bool) {
	zeros := 0
	for zeros < len(s) && s[zeros] == '1' {
		zeros++
	}
	// log(58)/log(2^64) ≈ 0.0916 limbs per digit.
	limbs := make([]uint64, 0, (len(s)-zeros)*916/10000+1)
	for i := zeros; i < len(s); {
		n := min(10, len(s)-i)
		var chunk uint64
		for _, c := range []byte(s[i : i+n]) {
			d := b58Index[c]
			if d == 0xff {
				return nil, false
			}
			chunk = chunk*58 + uint64(d)
		}
		mul, carry := pow58[n], chunk
		for j := range limbs {
			hi, lo := bits.Mul64(limbs[j], mul)
			lo, c := bits.Add64(lo, carry, 0)
			limbs[j], carry = lo, hi+c
		}
		if carry > 0 {
			limbs = append(limbs, carry)
		}
		i += n
	}
	out := make([]byte, 0, zeros+len(limbs)*8)
	out = append(out, make([]byte, zeros)...)
	started := false
	for j := len(limbs) - 1; j >= 0; j-- {
		for k := 7; k >= 0; k-- {
			b := byte(limbs[j] >> (8 * k))
			if b == 0 && !started {
				continue
			}
			started = true
			out = append(out, b)
		}
	}
	return out, true
}

// decodeBase58Check decodes s and checks its 4-byte double-SHA-256 checksum; it returns what
// the checksum covers (prefix ‖ payload).
func decodeBase58Check(s string) ([]byte, bool) {
	raw, ok := decodeBase58(s)
	if !ok || len(raw) < 4 {
		return nil, false
	}
	body := raw[:len(raw)-4]
	s0 := sha256.Sum256(body)
	s1 := sha256.Sum256(s0[:])
	if [4]byte(raw[len(raw)-4:]) != [4]byte(s1[:4]) {
		return nil, false
	}
	return body, true
}

// decodeTZ decodes s as base58check with the given binary prefix and payload length.
func decodeTZ(s string, pre *prefix.Prefix) ([]byte, bool) {
	raw, ok := decodeBase58Check(s)
	if !ok || len(raw) != len(pre.Prefix)+pre.Len || !bytes.HasPrefix(raw, pre.Prefix) {
		return nil, false
	}
	return raw[len(pre.Prefix):], true
}

// ChainIDString is the base58 chain id (Net…) of id, as gotez's ChainID.String, faster.
func ChainIDString(id *[4]byte) string { return encodeBase58Check(prefix.ChainID.Prefix, id[:]) }

// PayloadHashString is tz.BlockPayloadHash(*d).String() (vh…), faster: every watermark record
// a store writes names its payload hash, once per signature.
func PayloadHashString(d *[32]byte) string {
	return encodeBase58Check(prefix.ValueHash.Prefix, d[:])
}
