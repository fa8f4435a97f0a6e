// Package socket is octez-signer's socket protocol, the one `octez-signer launch socket signer`
// (TCP) and `launch local signer` (a Unix socket) speak, and octez-client and octez-baker reach
// with tcp://host:port/tz1… and unix:/path?pkh=tz1… secret-key URIs. This file is the wire
// format, written from octez's own definitions (docs/protocol.md names the files):
//
//   - a frame is a 2-byte big-endian length and that many bytes (at most 65,535);
//   - a request is a 1-byte tag and the fields of that kind, in data-encoding's binary form;
//   - a response is 0x00 and the result, or 0x01 and an error trace.
//
// A connection carries any number of requests, answered in order.
package socket

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"

	tz "github.com/ecadlabs/gotez/v2"
	"github.com/ecadlabs/gotez/v2/crypt"
	"github.com/ecadlabs/gotez/v2/encoding"
)

// Request tags (signer_messages.ml, Request.encoding).
const (
	TagSign                        = 0x00
	TagPublicKey                   = 0x01
	TagAuthorizedKeys              = 0x02
	TagDeterministicNonce          = 0x03
	TagDeterministicNonceHash      = 0x04
	TagSupportsDeterministicNonces = 0x05
	TagKnownKeys                   = 0x06
	TagProvePossession             = 0x07
)

// TagName names a request tag, for logs and metrics.
func TagName(tag byte) string {
	switch tag {
	case TagSign:
		return "sign"
	case TagPublicKey:
		return "public_key"
	case TagAuthorizedKeys:
		return "authorized_keys"
	case TagDeterministicNonce:
		return "deterministic_nonce"
	case TagDeterministicNonceHash:
		return "deterministic_nonce_hash"
	case TagSupportsDeterministicNonces:
		return "supports_deterministic_nonces"
	case TagKnownKeys:
		return "known_keys"
	case TagProvePossession:
		return "bls_prove_possession"
	}
	return "unknown"
}

// MaxFrame is the largest frame payload: the length is a uint16.
const MaxFrame = math.MaxUint16

// ReadFrame reads one frame's payload into buf (which it grows to the frame's length) and returns
// it. It returns io.EOF when the peer closed the connection between frames, and
// io.ErrUnexpectedEOF when it closed inside one.
func ReadFrame(r io.Reader, buf []byte) ([]byte, error) {
	var hdr [2]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err
	}
	n := int(binary.BigEndian.Uint16(hdr[:]))
	if cap(buf) < n {
		buf = make([]byte, n)
	}
	buf = buf[:n]
	if _, err := io.ReadFull(r, buf); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	return buf, nil
}

// AppendFrame appends payload to dst as one frame.
func AppendFrame(dst, payload []byte) ([]byte, error) {
	if len(payload) > MaxFrame {
		return dst, fmt.Errorf("a frame of %d bytes is more than %d", len(payload), MaxFrame)
	}
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(payload)))
	return append(dst, payload...), nil
}

// Request is a decoded request. Fields a kind does not carry are zero.
type Request struct {
	Tag byte
	PKH tz.PublicKeyHash
	// Version is the signing version a tz4 Sign request carries, or -1 when the request
	// carries none (tz1, tz2, tz3: the latest applies).
	Version int
	Data    []byte
	// Auth is the raw authentication signature of a Sign or nonce request (no tag: its curve is
	// told by its length), or nil.
	Auth crypt.Signature
	// Override is the public key a Bls_prove_possession request proves possession over, or nil.
	Override *crypt.BLSPublicKey
}

// Decoding errors. A request that does not decode gets no answer: octez-signer closes the
// connection, and so do we.
var (
	ErrUnknownTag = errors.New("unknown request tag")
	ErrMalformed  = errors.New("malformed request")
)

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, args...))
}

// DecodeRequest decodes one frame's payload. It never keeps a reference to p beyond Data, which
// is a copy.
func DecodeRequest(p []byte) (*Request, error) {
	if len(p) == 0 {
		return nil, malformed("empty frame")
	}
	r := &Request{Tag: p[0], Version: -1}
	rest := p[1:]
	var err error
	switch r.Tag {
	case TagSign:
		if rest, err = r.signerPKH(rest); err != nil {
			return nil, err
		}
		if rest, err = r.dataAndAuth(rest); err != nil {
			return nil, err
		}
	case TagDeterministicNonce, TagDeterministicNonceHash:
		if rest, err = r.pkh(rest); err != nil {
			return nil, err
		}
		if rest, err = r.dataAndAuth(rest); err != nil {
			return nil, err
		}
	case TagPublicKey, TagSupportsDeterministicNonces:
		if rest, err = r.pkh(rest); err != nil {
			return nil, err
		}
	case TagAuthorizedKeys, TagKnownKeys:
	case TagProvePossession:
		if rest, err = r.pkh(rest); err != nil {
			return nil, err
		}
		if len(rest) == 0 {
			return nil, malformed("bls_prove_possession: no override_pk presence byte")
		}
		switch rest[0] {
		case 0x00:
			rest = rest[1:]
		case 0xff:
			if len(rest) < 1+48 {
				return nil, malformed("bls_prove_possession: a truncated override_pk")
			}
			var raw tz.BLSPublicKey
			copy(raw[:], rest[1:49])
			pub, err := crypt.NewPublicKey(&raw)
			if err != nil {
				return nil, malformed("bls_prove_possession: override_pk: %v", err)
			}
			r.Override = pub.(*crypt.BLSPublicKey)
			rest = rest[49:]
		default:
			return nil, malformed("bls_prove_possession: override_pk presence byte 0x%02x", rest[0])
		}
	default:
		return nil, fmt.Errorf("%w 0x%02x", ErrUnknownTag, r.Tag)
	}
	if len(rest) != 0 {
		return nil, malformed("%d bytes after the %s request", len(rest), TagName(r.Tag))
	}
	return r, nil
}

// pkh reads a 21-byte key hash: a curve tag (0 tz1 … 4 tz5) and 20 bytes.
func (r *Request) pkh(p []byte) ([]byte, error) {
	if len(p) < 21 {
		return nil, malformed("a truncated key hash")
	}
	if p[0] > 4 {
		return nil, malformed("key hash tag %d", p[0])
	}
	var pkh tz.PublicKeyHash
	if _, err := encoding.Decode(p[:21], &pkh); err != nil {
		return nil, malformed("key hash: %v", err)
	}
	r.PKH = pkh
	return p[21:], nil
}

// signerPKH reads the Sign request's key: tags 0–2 are a tz1, tz2 or tz3 hash; tag 3 is a
// 21-byte key hash (any curve) followed by the signing version, 0 to 3.
func (r *Request) signerPKH(p []byte) ([]byte, error) {
	if len(p) == 0 {
		return nil, malformed("no key")
	}
	switch p[0] {
	case 0, 1, 2:
		return r.pkh(p)
	case 3:
		rest, err := r.pkh(p[1:])
		if err != nil {
			return nil, err
		}
		if len(rest) == 0 {
			return nil, malformed("no signing version")
		}
		if rest[0] > 3 {
			return nil, malformed("signing version %d", int8(rest[0]))
		}
		r.Version = int(rest[0])
		return rest[1:], nil
	}
	return nil, malformed("sign: key tag %d", p[0])
}

// dataAndAuth reads the data (a 4-byte length and the bytes) and the optional authentication
// signature: whatever follows, if anything, with no presence byte and no length.
func (r *Request) dataAndAuth(p []byte) ([]byte, error) {
	if len(p) < 4 {
		return nil, malformed("a truncated data length")
	}
	n := binary.BigEndian.Uint32(p)
	if uint64(n) > uint64(len(p)-4) {
		return nil, malformed("data of %d bytes in %d", n, len(p)-4)
	}
	r.Data = bytes.Clone(p[4 : 4+n])
	auth := p[4+n:]
	if len(auth) == 0 {
		return nil, nil
	}
	var raw tz.Signature
	switch len(auth) {
	case tz.GenericSignatureBytesLen:
		raw = (*tz.GenericSignature)(auth)
	case tz.BLSSignatureBytesLen:
		raw = (*tz.BLSSignature)(auth)
	case tz.MLDSA44SignatureBytesLen:
		raw = (*tz.MLDSA44Signature)(auth)
	default:
		return nil, malformed("an authentication signature of %d bytes", len(auth))
	}
	sig, err := crypt.NewSignature(raw)
	if err != nil {
		return nil, malformed("authentication signature: %v", err)
	}
	r.Auth = sig
	return nil, nil
}

// Response payloads (the frame's content). Each starts with the tzresult tag.

// OK is a success: 0x00 and the result's bytes.
func OK(result ...[]byte) []byte {
	out := []byte{0x00}
	for _, b := range result {
		out = append(out, b...)
	}
	return out
}

// Error is a failure: 0x01 and a trace of one error, the shape of octez's `failwith`:
// {"kind":"temporary","id":"failure","msg":msg} in BSON, within two 4-byte lengths (the list's
// and the error's). msg is cut to fit a frame.
func Error(msg string) []byte {
	const room = MaxFrame - 1 - 4 - 4 - 64 // the tag, two lengths, the document's fixed part
	if len(msg) > room {
		msg = msg[:room]
	}
	doc := bsonDoc([][2]string{{"kind", "temporary"}, {"id", "failure"}, {"msg", msg}})
	out := []byte{0x01}
	out = binary.BigEndian.AppendUint32(out, uint32(4+len(doc)))
	out = binary.BigEndian.AppendUint32(out, uint32(len(doc)))
	return append(out, doc...)
}

// bsonDoc encodes string fields as a BSON document: an int32 little-endian size, each field as
// 0x02, its name and a NUL, an int32 little-endian length (with the NUL) and the string and a
// NUL, then a final NUL.
func bsonDoc(fields [][2]string) []byte {
	var body []byte
	for _, f := range fields {
		body = append(body, 0x02)
		body = append(body, f[0]...)
		body = append(body, 0)
		body = binary.LittleEndian.AppendUint32(body, uint32(len(f[1])+1))
		body = append(body, f[1]...)
		body = append(body, 0)
	}
	out := binary.LittleEndian.AppendUint32(nil, uint32(4+len(body)+1))
	out = append(out, body...)
	return append(out, 0)
}

// Bytes is data-encoding's `bytes`: a 4-byte big-endian length and the bytes.
func Bytes(b []byte) []byte {
	return append(binary.BigEndian.AppendUint32(nil, uint32(len(b))), b...)
}

// Bool is data-encoding's bool: 0xff or 0x00.
func Bool(v bool) []byte {
	if v {
		return []byte{0xff}
	}
	return []byte{0x00}
}

// PKH is a key hash's 21 bytes (its curve tag and hash).
func PKH(pkh tz.PublicKeyHash) ([]byte, error) {
	var buf bytes.Buffer
	if err := encoding.Encode(&buf, &pkh); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// PKHList is data-encoding's list of key hashes: a 4-byte length of all of them, then each.
func PKHList(pkhs []tz.PublicKeyHash) ([]byte, error) {
	var items []byte
	for _, p := range pkhs {
		b, err := PKH(p)
		if err != nil {
			return nil, err
		}
		items = append(items, b...)
	}
	return Bytes(items), nil
}

// PublicKey is a public key's binary form: its curve tag and bytes.
func PublicKey(pub crypt.PublicKey) ([]byte, error) {
	p := pub.ToProtocol()
	var buf bytes.Buffer
	if err := encoding.Encode(&buf, &p); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// Signature is a signature's raw bytes, with no tag and no length: 64 bytes for tz1–tz3, 96 for
// tz4, 2,420 for tz5.
func Signature(sig crypt.Signature) ([]byte, error) {
	var buf bytes.Buffer
	if err := encoding.Encode(&buf, sig.ToProtocol()); err != nil { // the concrete type: no tag
		return nil, err
	}
	return buf.Bytes(), nil
}
