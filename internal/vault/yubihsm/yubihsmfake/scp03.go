package yubihsmfake

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/pbkdf2"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"time"

	"github.com/enceve/crypto/cmac"
)

// SCP03 as the YubiHSM 2 uses it. The primitives are crypto/aes, AES-CMAC (RFC 4493, checked
// against the RFC's vectors in the tests) and PBKDF2 from the standard library; this file only
// composes them as Yubico's documents and libyubihsm do.

// KDF derivation constants (libyubihsm's scp.h).
const (
	ddCardCryptogram = 0x00
	ddHostCryptogram = 0x01
	ddSENC           = 0x04
	ddSMAC           = 0x06
	ddSRMAC          = 0x07
	macLen           = 8
)

// session is one of the device's 16 session slots.
type session struct {
	id            byte
	auth          *object
	authenticated bool
	context       []byte // host challenge || card challenge
	sEnc, sMac    []byte
	sRmac         []byte
	chain         []byte   // MAC chaining value: the last command's full C-MAC
	ctr           [16]byte // message counter, 1 after authentication
	used          time.Time
	closing       bool
}

// DeriveAuthKey derives an authentication key's K-ENC and K-MAC from a password: PBKDF2-SHA256,
// salt "Yubico", 10,000 iterations, 32 bytes split in two (YubiHSM 2 Concepts: Session).
func DeriveAuthKey(password string) (enc, mac []byte) {
	k, err := pbkdf2.Key(sha256.New, password, []byte("Yubico"), 10000, 32)
	if err != nil {
		panic(err) // only for lengths FIPS mode refuses; 32 bytes is fine
	}
	return k[:16], k[16:]
}

func cmacSum(key []byte, parts ...[]byte) []byte {
	block, err := aes.NewCipher(key)
	if err != nil {
		panic(err) // keys are always 16 bytes here
	}
	h, _ := cmac.New(block)
	for _, p := range parts {
		h.Write(p)
	}
	return h.Sum(nil)
}

// kdf is SCP03's key derivation as in libyubihsm's compute_cryptogram: CMAC(key, label ||
// 0x00 || L || i=1 || context), where label is 11 zero bytes and the derivation constant, and L
// the output length in bits (64 or 128: one CMAC block is enough).
func kdf(key []byte, constant byte, context []byte, bits int) []byte {
	in := make([]byte, 16, 16+len(context))
	in[11] = constant
	binary.BigEndian.PutUint16(in[13:], uint16(bits))
	in[15] = 0x01
	return cmacSum(key, in, context)[:bits/8]
}

// createSession: Vc = authentication key ID (2) || host challenge (8); Vr = session ID ||
// card challenge (8) || card cryptogram (8).
func (d *Device) createSession(data []byte) []byte {
	if len(data) != 10 {
		return errFrame(ErrWrongLength)
	}
	ak := d.objects[objKey(TypeAuthenticationKey, binary.BigEndian.Uint16(data[:2]))]
	if ak == nil {
		return errFrame(ErrObjectNotFound)
	}
	slot := -1
	for i, s := range d.sessions {
		if s == nil {
			slot = i
			break
		}
	}
	if slot < 0 {
		return errFrame(ErrSessionsFull)
	}
	card := randomBytes(8)
	s := &session{id: byte(slot), auth: ak, context: append(append([]byte(nil), data[2:]...), card...), used: time.Now()}
	s.sEnc = kdf(ak.encKey, ddSENC, s.context, 128)
	s.sMac = kdf(ak.macKey, ddSMAC, s.context, 128)
	s.sRmac = kdf(ak.macKey, ddSRMAC, s.context, 128)
	d.sessions[slot] = s
	d.stats.SessionsCreated++
	out := append([]byte{s.id}, card...)
	return frame(cmdCreateSession|respFlag, append(out, kdf(s.sMac, ddCardCryptogram, s.context, 64)...))
}

// authenticateSession: Vc = session ID || host cryptogram (8) || C-MAC (8), the MAC over 16 zero
// bytes and the frame without its MAC. Both are checked with S-MAC; a failure frees the session.
func (d *Device) authenticateSession(req, data []byte) []byte {
	if len(data) != 1+8+macLen {
		return errFrame(ErrWrongLength)
	}
	s := d.session(data[0])
	if s == nil || s.authenticated {
		return errFrame(ErrInvalidSession)
	}
	full := cmacSum(s.sMac, make([]byte, 16), req[:len(req)-macLen])
	okMAC := subtle.ConstantTimeCompare(full[:macLen], data[9:]) == 1
	okCrypto := subtle.ConstantTimeCompare(kdf(s.sMac, ddHostCryptogram, s.context, 64), data[1:9]) == 1
	if !okMAC || !okCrypto {
		d.sessions[s.id] = nil
		d.stats.AuthFailures++
		return errFrame(ErrAuthenticationFailed)
	}
	s.chain = full
	s.ctr = [16]byte{15: 1}
	s.authenticated = true
	s.used = time.Now()
	d.stats.SessionsAuthenticated++
	return frame(cmdAuthenticate|respFlag, nil)
}

func (d *Device) session(id byte) *session {
	if int(id) >= maxSessions {
		return nil
	}
	return d.sessions[id]
}

// sessionMessage: Vc = session ID || AES-CBC(S-ENC, IV = AES(S-ENC, counter), padded inner
// command) || C-MAC; Vr likewise with the inner response and an R-MAC computed with S-RMAC over
// the new chaining value and the response frame. A bad MAC ends the session.
func (d *Device) sessionMessage(req, data []byte) []byte {
	if len(data) < 1+aes.BlockSize+macLen || (len(data)-1-macLen)%aes.BlockSize != 0 {
		return errFrame(ErrWrongLength)
	}
	s := d.session(data[0])
	if s == nil || !s.authenticated {
		return errFrame(ErrInvalidSession)
	}
	full := cmacSum(s.sMac, s.chain, req[:len(req)-macLen])
	if subtle.ConstantTimeCompare(full[:macLen], data[len(data)-macLen:]) != 1 {
		d.sessions[s.id] = nil
		d.stats.MACFailures++
		return errFrame(ErrAuthenticationFailed)
	}
	s.chain = full
	s.used = time.Now()
	block, _ := aes.NewCipher(s.sEnc)
	iv := make([]byte, aes.BlockSize)
	block.Encrypt(iv, s.ctr[:])
	enc := data[1 : len(data)-macLen]
	plain := make([]byte, len(enc))
	cipher.NewCBCDecrypter(block, iv).CryptBlocks(plain, enc)

	var resp []byte
	if inner, ok := unpad(plain); !ok {
		resp = errFrame(ErrInvalidData)
	} else if cmd, args, ok := parseFrame(inner); !ok {
		resp = errFrame(ErrWrongLength)
	} else {
		resp = d.inner(s, cmd, args)
	}
	padded := pad(resp)
	out := make([]byte, 4+len(padded), 4+len(padded)+macLen)
	out[0] = cmdSessionMessage | respFlag
	binary.BigEndian.PutUint16(out[1:], uint16(1+len(padded)+macLen))
	out[3] = s.id
	cipher.NewCBCEncrypter(block, iv).CryptBlocks(out[4:], padded)
	incr(&s.ctr)
	out = append(out, cmacSum(s.sRmac, s.chain, out)[:macLen]...)
	if s.closing {
		d.sessions[s.id] = nil
	}
	return out
}

// pad appends 0x80 and zeros up to a whole number of blocks (always at least one byte).
func pad(b []byte) []byte {
	n := aes.BlockSize - len(b)%aes.BlockSize
	out := append(append([]byte(nil), b...), 0x80)
	return append(out, make([]byte, n-1)...)
}

// unpad strips the padding, which must be present and well formed.
func unpad(b []byte) ([]byte, bool) {
	for i := len(b) - 1; i >= 0 && i >= len(b)-aes.BlockSize; i-- {
		switch b[i] {
		case 0x00:
			continue
		case 0x80:
			return b[:i], true
		}
		return nil, false
	}
	return nil, false
}

func incr(ctr *[16]byte) {
	for i := len(ctr) - 1; i >= 0; i-- {
		ctr[i]++
		if ctr[i] != 0 {
			return
		}
	}
}
