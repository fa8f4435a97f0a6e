package yubihsmfake

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/binary"
	"maps"
	"math/big"
	mrand "math/rand/v2"
	"slices"

	"github.com/decred/dcrd/dcrec/secp256k1/v4"
	secpecdsa "github.com/decred/dcrd/dcrec/secp256k1/v4/ecdsa"
	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// inner runs a command received inside a session and returns its response frame.
func (d *Device) inner(s *session, cmd byte, data []byte) []byte {
	switch cmd {
	case cmdEcho:
		return frame(cmdEcho|respFlag, data)
	case cmdCloseSession:
		s.closing = true
		return frame(cmdCloseSession|respFlag, nil)
	case cmdListObjects:
		return d.listObjects(s, data)
	case cmdGetPublicKey:
		if len(data) != 2 {
			return errFrame(ErrWrongLength)
		}
		o, code := d.key(s, binary.BigEndian.Uint16(data), 0)
		if code != 0 {
			return errFrame(code)
		}
		return frame(cmdGetPublicKey|respFlag, append([]byte{byte(o.alg)}, o.pub...))
	case cmdSignEdDSA, cmdSignECDSA:
		return d.sign(s, cmd, data)
	case cmdPutAsymmetric, cmdGenerateAsym:
		return d.create(s, cmd, data)
	}
	return errFrame(ErrInvalidCommand)
}

// visible reports whether the session's authentication key shares a domain with o.
func visible(s *session, o *object) bool { return s.auth.domains&o.domains != 0 }

// key finds an asymmetric key the session may see and, when capability is not 0, use for it.
func (d *Device) key(s *session, id uint16, capability uint64) (*object, ErrorCode) {
	o := d.objects[objKey(TypeAsymmetricKey, id)]
	if o == nil || !visible(s, o) {
		return nil, ErrObjectNotFound
	}
	if capability != 0 && (o.caps&capability == 0 || s.auth.caps&capability == 0) {
		return nil, ErrInsufficientPerms
	}
	return o, 0
}

// listObjects: Vc = a list of filters, tag || value: ID (0x01, 2 bytes), type (0x02, 1),
// domains (0x03, 2), capabilities (0x04, 8), algorithm (0x05, 1), label (0x06, 40).
// Vr = (ID (2) || type (1) || sequence (1)) for each matching object.
func (d *Device) listObjects(s *session, data []byte) []byte {
	type filter struct {
		id, domains *uint16
		typ, alg    *byte
		caps        *uint64
		label       []byte
	}
	var f filter
	for len(data) > 0 {
		size := map[byte]int{1: 2, 2: 1, 3: 2, 4: 8, 5: 1, 6: labelLen}[data[0]]
		if size == 0 || len(data) < 1+size {
			return errFrame(ErrInvalidData)
		}
		v := data[1 : 1+size]
		switch data[0] {
		case 1:
			x := binary.BigEndian.Uint16(v)
			f.id = &x
		case 2:
			f.typ = &v[0]
		case 3:
			x := binary.BigEndian.Uint16(v)
			f.domains = &x
		case 4:
			x := binary.BigEndian.Uint64(v)
			f.caps = &x
		case 5:
			f.alg = &v[0]
		case 6:
			f.label = v
		}
		data = data[1+size:]
	}
	var out []byte
	for _, k := range sortedKeys(d.objects) {
		o := d.objects[k]
		switch {
		case !visible(s, o),
			f.id != nil && o.id != *f.id,
			f.typ != nil && o.typ != *f.typ,
			f.domains != nil && o.domains&*f.domains == 0,
			f.caps != nil && o.caps&*f.caps == 0,
			f.alg != nil && byte(o.alg) != *f.alg,
			f.label != nil && !bytes.Equal(o.label[:], f.label):
			continue
		}
		out = binary.BigEndian.AppendUint16(out, o.id)
		out = append(out, o.typ, 0)
	}
	return frame(cmdListObjects|respFlag, out)
}

// sign: Vc = key ID (2) || data. EdDSA signs the data (Ed25519, 64-byte reply); ECDSA signs the
// possibly zero-left-padded hash and replies DER, with a high s as often as the device is told.
func (d *Device) sign(s *session, cmd byte, data []byte) []byte {
	if len(data) < 3 {
		return errFrame(ErrWrongLength)
	}
	capability := CapSignECDSA
	if cmd == cmdSignEdDSA {
		capability = CapSignEdDSA
	}
	o, code := d.key(s, binary.BigEndian.Uint16(data), capability)
	if code != 0 {
		return errFrame(code)
	}
	msg := data[2:]
	if cmd == cmdSignEdDSA {
		if o.ed == nil {
			return errFrame(ErrInvalidData)
		}
		d.stats.Signatures++
		return frame(cmd|respFlag, ed25519.Sign(o.ed, msg))
	}
	var r, sv, n *big.Int
	switch {
	case o.ec != nil:
		var err error
		if r, sv, err = ecdsa.Sign(rand.Reader, o.ec, msg); err != nil {
			return errFrame(ErrInvalidData)
		}
		n = elliptic.P256().Params().N
	case o.k1 != nil:
		if len(msg) > 64 {
			return errFrame(ErrWrongLength)
		}
		sig := secpecdsa.Sign(o.k1, msg)
		rs, ss := sig.R(), sig.S()
		rb, sb := rs.Bytes(), ss.Bytes()
		r, sv = new(big.Int).SetBytes(rb[:]), new(big.Int).SetBytes(sb[:])
		n = secp256k1.Params().N
	default:
		return errFrame(ErrInvalidData)
	}
	if high := sv.Cmp(new(big.Int).Rsh(n, 1)) > 0; high != d.wantHigh() {
		sv.Sub(n, sv)
	}
	if sv.Cmp(new(big.Int).Rsh(n, 1)) > 0 {
		d.stats.HighSSignatures++
	}
	d.stats.Signatures++
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1BigInt(r)
		b.AddASN1BigInt(sv)
	})
	return frame(cmd|respFlag, b.BytesOrPanic())
}

func (d *Device) wantHigh() bool {
	switch d.highS {
	case HighSAlways:
		return true
	case HighSNever:
		return false
	}
	return mrand.IntN(2) == 0
}

// create: Vc = ID (2; 0 lets the device choose) || label (40) || domains (2) || capabilities (8) ||
// algorithm (1) { || private key for Put Asymmetric Key }; Vr = ID (2).
func (d *Device) create(s *session, cmd byte, data []byte) []byte {
	const head = 2 + labelLen + 2 + 8 + 1
	if len(data) < head || (cmd == cmdGenerateAsym && len(data) != head) {
		return errFrame(ErrWrongLength)
	}
	need := CapPutAsymmetric
	if cmd == cmdGenerateAsym {
		need = CapGenerateAsymmetric
	}
	o := &object{id: binary.BigEndian.Uint16(data), typ: TypeAsymmetricKey,
		domains: binary.BigEndian.Uint16(data[42:]), caps: binary.BigEndian.Uint64(data[44:]), alg: Algorithm(data[52])}
	copy(o.label[:], data[2:42])
	switch {
	case s.auth.caps&need == 0, o.caps&^s.auth.delegated != 0, o.domains&^s.auth.domains != 0:
		return errFrame(ErrInsufficientPerms)
	case o.domains == 0, o.id == 0xffff:
		return errFrame(ErrInvalidData)
	}
	raw := data[head:]
	if cmd == cmdGenerateAsym {
		raw = randomBytes(32)
		if o.alg != AlgEd25519 {
			raw = nil
		}
	}
	if code := o.setPrivate(raw); code != 0 {
		return errFrame(code)
	}
	if o.id == 0 {
		for o.id == 0 || o.id == 0xffff || d.objects[objKey(TypeAsymmetricKey, o.id)] != nil {
			o.id = uint16(mrand.IntN(0x10000))
		}
	}
	if d.objects[objKey(TypeAsymmetricKey, o.id)] != nil {
		return errFrame(ErrObjectExists)
	}
	if len(d.objects) >= maxObjects {
		return errFrame(ErrStorageFailed)
	}
	d.objects[objKey(TypeAsymmetricKey, o.id)] = o
	return frame(cmd|respFlag, binary.BigEndian.AppendUint16(nil, o.id))
}

// setPrivate sets the key from its raw private part (nil: generate one), checking its length and
// range as the device does.
func (o *object) setPrivate(raw []byte) ErrorCode {
	switch o.alg {
	case AlgEd25519:
		if len(raw) != ed25519.SeedSize {
			return ErrWrongLength
		}
		o.ed = ed25519.NewKeyFromSeed(raw)
		o.pub = append([]byte(nil), o.ed.Public().(ed25519.PublicKey)...)
	case AlgP256:
		var err error
		if raw == nil {
			o.ec, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		} else if len(raw) != 32 {
			return ErrWrongLength
		} else {
			o.ec, err = ecdsa.ParseRawPrivateKey(elliptic.P256(), raw)
		}
		if err != nil {
			return ErrInvalidData
		}
		o.pub = append(o.ec.X.FillBytes(make([]byte, 32)), o.ec.Y.FillBytes(make([]byte, 32))...)
	case AlgSecp256k1:
		if raw == nil {
			k, err := secp256k1.GeneratePrivateKey()
			if err != nil {
				return ErrInvalidData
			}
			raw = k.Serialize()
		}
		var sc secp256k1.ModNScalar
		if len(raw) != 32 {
			return ErrWrongLength
		}
		if overflow := sc.SetByteSlice(raw); overflow || sc.IsZero() {
			return ErrInvalidData
		}
		o.k1 = secp256k1.NewPrivateKey(&sc)
		o.pub = o.k1.PubKey().SerializeUncompressed()[1:]
	default:
		return ErrInvalidData // the emulator holds only the curves Tezos uses
	}
	return 0
}

func signCap(a Algorithm) uint64 {
	if a == AlgEd25519 {
		return CapSignEdDSA
	}
	return CapSignECDSA
}

func sortedKeys(m map[uint32]*object) []uint32 { return slices.Sorted(maps.Keys(m)) }
