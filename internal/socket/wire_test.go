package socket

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"io"
	"strings"
	"testing"

	tz "github.com/ecadlabs/gotez/v2"
	"github.com/ecadlabs/gotez/v2/crypt"

	"github.com/signatory-go/signatory/internal/tezos"
)

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func frame(t testing.TB, payload []byte) []byte {
	t.Helper()
	f, err := AppendFrame(nil, payload)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// Golden frames, each written out by hand from octez's definitions (tezos/tezos-mirror):
// framing from src/lib_base/unix/socket.ml (send, recv: a uint16 big-endian length), requests
// from src/lib_signer_services/signer_messages.ml (Request.encoding, a uint8 union tag;
// Sign's pkh_encoding; obj3 pkh, data as `bytes`: a uint32 length, and the signature as an
// optional Variable field: no presence byte), key hashes and keys from
// src/lib_crypto/signature_v3.ml (a uint8 curve tag and the bytes), the result wrapper from
// src/lib_error_monad/monad_maker.ml (result_encoding: 0x00 Ok, 0x01 Error) and the error from
// core_maker.ml and error_monad.ml (a `failure` as BSON in data-encoding's json).
const (
	tz1      = "tz1VSUr8wwNhLAzempoch5d6hLRiTh8Cjcjb"
	tz1Hash  = "6b82198cb179e8306c1bedd08f12dc863f328886"
	edpk     = "edpkvGfYw3LyB1UcCahKQk4rF2tvbMUk8GFiTuMjL75uGXrpvKXhjn"
	edpkHash = "d670f72efd9475b62275fae773eb5f5eb1fea4f2a0880e6d21983273bf95a0af"
)

func TestGoldenRequests(t *testing.T) {
	tz4, err := tezos.GenerateKey(tezos.BLS)
	if err != nil {
		t.Fatal(err)
	}
	tz4Hash := hex.EncodeToString(tz4.Public().Hash().(*tz.BLSPublicKeyHash)[:])
	blsPub := hex.EncodeToString((tz4.Public().ToProtocol().(*tz.BLSPublicKey))[:])
	auth64 := strings.Repeat("11", 64)
	for _, c := range []struct {
		name, frame string
		tag         byte
		pkh         string
		version     int
		data        string
		auth        bool
		override    bool
	}{
		// Public_key: 0x01 and a 21-byte key hash (tag 0x00, Ed25519).
		{"public_key", "0016 01 00" + tz1Hash, TagPublicKey, tz1, -1, "", false, false},
		// Authorized_keys and Known_keys: the tag alone.
		{"authorized_keys", "0001 02", TagAuthorizedKeys, "", -1, "", false, false},
		{"known_keys", "0001 06", TagKnownKeys, "", -1, "", false, false},
		// Sign, tz1: tag 0x00, pkh_encoding's case 0 (an Ed25519 hash: 0x00 and 20 bytes), data
		// as `bytes` (uint32 length), no signature.
		{"sign tz1", "001f 00 00" + tz1Hash + "00000005 03deadbeef", TagSign, tz1, -1, "03deadbeef", false, false},
		// The same, authenticated: the 64 signature bytes follow the data, with no flag.
		{"sign tz1 authenticated", "005f 00 00" + tz1Hash + "00000005 03deadbeef" + auth64, TagSign, tz1, -1, "03deadbeef", true, false},
		// Sign, tz4: case 3 is obj2 (a 21-byte key hash, with its own tag 0x03) and the version.
		{"sign tz4 v2", "001f 00 03 03" + tz4Hash + "02 00000003 112233", TagSign, tz4.Public().Hash().String(), 2, "112233", false, false},
		// Deterministic_nonce and its hash: a plain 21-byte key hash, then data.
		{"deterministic_nonce", "001e 03 00" + tz1Hash + "00000004 0001e240", TagDeterministicNonce, tz1, -1, "0001e240", false, false},
		{"deterministic_nonce_hash", "001e 04 00" + tz1Hash + "00000004 0001e240", TagDeterministicNonceHash, tz1, -1, "0001e240", false, false},
		{"supports_deterministic_nonces", "0016 05 00" + tz1Hash, TagSupportsDeterministicNonces, tz1, -1, "", false, false},
		// Bls_prove_possession: the key hash, then override_pk as an option of a fixed-size
		// field: a presence byte (0x00, or 0xff and 48 bytes).
		{"bls_prove_possession", "0017 07 03" + tz4Hash + "00", TagProvePossession, tz4.Public().Hash().String(), -1, "", false, false},
		{"bls_prove_possession override", "0047 07 03" + tz4Hash + "ff" + blsPub, TagProvePossession, tz4.Public().Hash().String(), -1, "", false, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := unhex(t, c.frame)
			payload, err := ReadFrame(bytes.NewReader(f), nil)
			if err != nil {
				t.Fatal(err)
			}
			r, err := DecodeRequest(payload)
			if err != nil {
				t.Fatal(err)
			}
			got := ""
			if r.PKH != nil {
				got = r.PKH.String()
			}
			if r.Tag != c.tag || got != c.pkh || r.Version != c.version || hex.EncodeToString(r.Data) != c.data ||
				(r.Auth != nil) != c.auth || (r.Override != nil) != c.override {
				t.Fatalf("%+v", r)
			}
			if c.override && r.Override.String() != tz4.Public().String() {
				t.Fatalf("override %s", r.Override)
			}
			if c.auth {
				if _, ok := r.Auth.(*crypt.GenericSignature); !ok {
					t.Fatalf("a 64-byte signature is generic: %T", r.Auth)
				}
			}
		})
	}
}

func TestGoldenResponses(t *testing.T) {
	pub, err := tezos.ParsePublicKey(edpk)
	if err != nil {
		t.Fatal(err)
	}
	pk, err := PublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	pkh, err := tezos.ParsePublicKeyHash(tz1)
	if err != nil {
		t.Fatal(err)
	}
	list, err := PKHList([]tz.PublicKeyHash{pkh, pkh})
	if err != nil {
		t.Fatal(err)
	}
	nonce := bytes.Repeat([]byte{0xab}, 32)
	for _, c := range []struct {
		name    string
		payload []byte
		frame   string
	}{
		// Public_key's answer: Ok, then the key: its curve tag (0x00) and 32 bytes.
		{"public_key", OK(pk), "0022 00 00" + edpkHash},
		// Authorized_keys with no authentication required: Ok, case 0 of its union.
		{"no authentication", OK([]byte{0x00}), "0002 00 00"},
		// Authorized_keys: case 1, a list (uint32 length of its bytes) of key hashes.
		{"authorized keys", OK([]byte{0x01}, list), "0030 00 01 0000002a 00" + tz1Hash + "00" + tz1Hash},
		{"supports nonces", OK(Bool(true)), "0002 00 ff"},
		{"does not support nonces", OK(Bool(false)), "0002 00 00"},
		// Deterministic_nonce: `bytes`, a uint32 length and 32 bytes.
		{"deterministic_nonce", OK(Bytes(nonce)), "0025 00 00000020" + hex.EncodeToString(nonce)},
		// An error: 0x01, the trace (a list: uint32 length), one error (json in binary: a uint32
		// length and BSON) {"kind":"temporary","id":"failure","msg":…}.
		{"error", Error("List known keys request not allowed."),
			"0060 01 0000005b 00000057 57000000" +
				"02 6b696e6400 0a000000 74656d706f7261727900" +
				"02 696400 08000000 6661696c75726500" +
				"02 6d736700 25000000 4c697374206b6e6f776e206b6579732072657175657374206e6f7420616c6c6f7765642e00" +
				"00"},
	} {
		if got, want := hex.EncodeToString(frame(t, c.payload)), strings.ReplaceAll(c.frame, " ", ""); got != want {
			t.Errorf("%s:\n got %s\nwant %s", c.name, got, want)
		}
	}
	sig, err := tezos.ParseSignature("sigXeXB5JD5TaLb3xgTPKjgf9W45judiCmNP9UBdZBdmtHSGBxL1M8ZSUb6LpjGP2MdfUBTB4WHs5APnvyRV1LooU6QHJuDe")
	if err != nil {
		t.Fatal(err)
	}
	raw, err := Signature(sig)
	if err != nil || len(raw) != 64 {
		t.Fatalf("a generic signature's raw bytes: %d, %v", len(raw), err)
	}
}

// TestMalformed: every request that does not follow the encoding is refused, and says why.
func TestMalformed(t *testing.T) {
	for _, c := range []struct{ name, payload, want string }{
		{"empty", "", "empty frame"},
		{"unknown tag", "08", "unknown request tag 0x08"},
		{"truncated pkh", "01 00" + tz1Hash[:10], "truncated key hash"},
		{"pkh tag", "01 05" + tz1Hash, "key hash tag 5"},
		{"extra byte", "01 00" + tz1Hash + "00", "1 bytes after the public_key request"},
		{"sign key tag 4", "00 04" + tz1Hash + "00000000", "key tag 4"},
		{"sign version 4", "00 03 03" + tz1Hash + "04 00000000", "signing version 4"},
		{"sign no version", "00 03 03" + tz1Hash, "no signing version"},
		{"data longer than the frame", "00 00" + tz1Hash + "00000005 03", "data of 5 bytes in 1"},
		{"data length truncated", "00 00" + tz1Hash + "0000", "truncated data length"},
		{"auth of 63 bytes", "00 00" + tz1Hash + "00000001 03" + strings.Repeat("11", 63), "signature of 63 bytes"},
		{"presence byte", "07 03" + tz1Hash + "01", "presence byte 0x01"},
		{"override truncated", "07 03" + tz1Hash + "ff" + strings.Repeat("aa", 47), "truncated override_pk"},
		{"override not a key", "07 03" + tz1Hash + "ff" + strings.Repeat("ff", 48), "override_pk"},
		{"authorized_keys with bytes", "02 00", "1 bytes after"},
	} {
		_, err := DecodeRequest(unhex(t, c.payload))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v; want %q", c.name, err, c.want)
		}
	}
}

func TestFrames(t *testing.T) {
	if _, err := ReadFrame(bytes.NewReader(nil), nil); err != io.EOF {
		t.Fatalf("no frame: %v", err)
	}
	if _, err := ReadFrame(bytes.NewReader([]byte{0}), nil); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("half a length: %v", err)
	}
	if _, err := ReadFrame(bytes.NewReader([]byte{0, 3, 1, 2}), nil); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("a short payload: %v", err)
	}
	if _, err := AppendFrame(nil, make([]byte, MaxFrame+1)); err == nil {
		t.Fatal("a frame over 65535 bytes")
	}
	f, err := AppendFrame(nil, make([]byte, MaxFrame))
	if err != nil || binary.BigEndian.Uint16(f) != MaxFrame {
		t.Fatalf("a frame of 65535 bytes: %v", err)
	}
	// Two frames back to back, read into one reused buffer.
	r := bytes.NewReader(append(frame(t, []byte{1, 2, 3}), frame(t, []byte{4})...))
	buf := make([]byte, 0, 8)
	a, _ := ReadFrame(r, buf)
	if !bytes.Equal(a, []byte{1, 2, 3}) {
		t.Fatalf("%x", a)
	}
	b, _ := ReadFrame(r, buf)
	if !bytes.Equal(b, []byte{4}) {
		t.Fatalf("%x", b)
	}
	if len(Error(strings.Repeat("x", 100000))) > MaxFrame {
		t.Fatal("an error too long for a frame")
	}
}

// FuzzDecodeRequest: any payload decodes or is refused, never panics, and a decoded request
// holds only what the payload said (its data within the payload).
func FuzzDecodeRequest(f *testing.F) {
	for _, s := range []string{"01 00" + tz1Hash, "02", "00 00" + tz1Hash + "00000005 03deadbeef", "00 03 03" + tz1Hash + "02 00000001 11",
		"07 03" + tz1Hash + "00", "03 00" + tz1Hash + "00000004 0001e240" + strings.Repeat("22", 64)} {
		f.Add(unhex(f, s))
	}
	f.Fuzz(func(t *testing.T, p []byte) {
		r, err := DecodeRequest(p)
		if err != nil {
			return
		}
		if len(r.Data) > len(p) || (r.Tag != TagSign && r.Version != -1) {
			t.Fatalf("%+v from %x", r, p)
		}
		if r.Data != nil && !bytes.Contains(p, r.Data) {
			t.Fatalf("data not from the payload: %x", p)
		}
	})
}
