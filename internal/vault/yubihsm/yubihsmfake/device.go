// Package yubihsmfake emulates a YubiHSM 2 behind yubihsm-connector, in process, for tests: the
// connector's HTTP API and the device commands the yubihsm vault uses, with SCP03 sessions
// checked as strictly as a device checks them and signatures made with real keys.
//
// Sources followed (public Yubico documentation and code):
//   - "YubiHSM 2 Command Reference" (docs.yubico.com/hardware/yubihsm-2/hsm-2-user-guide/hsm2-cmd-reference,
//     and developers.yubico.com/YubiHSM2/Commands/*): frame layout, command and response codes,
//     Create Session, Authenticate Session, Session Message, Close Session, Echo, List Objects,
//     Get Public Key, Sign ECDSA (DER reply), Sign EdDSA, Put Asymmetric Key, Generate Asymmetric Key;
//   - "YubiHSM 2 Concepts: Session" (16 sessions, 30 s inactivity timeout, PBKDF2-SHA256 with salt
//     "Yubico" and 10,000 iterations to derive an authentication key from a password);
//   - libyubihsm (github.com/Yubico/yubihsm-shell, lib/yubihsm.c): the SCP03 KDF
//     (compute_cryptogram), the MAC chaining of send_authenticated_msg, the encrypted counter used as
//     the CBC IV in both directions (send_encrypted_msg), and the device error codes
//     (translate_device_error).
//
// What is not emulated: the audit log, wrap keys and export, attestation, RSA/P-384/P-521 and
// brainpool keys (listed but not usable), asymmetric (P-256) authentication, options, the USB
// transport and firmware timing.
package yubihsmfake

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/decred/dcrd/dcrec/secp256k1/v4"
	"github.com/ecadlabs/gotez/v2/crypt"
)

// Command codes (YubiHSM 2 Command Reference; libyubihsm's YHC_* values). A response carries the
// command code with the high bit set, or cmdError.
const (
	cmdEcho           = 0x01
	cmdCreateSession  = 0x03
	cmdAuthenticate   = 0x04
	cmdSessionMessage = 0x05
	cmdCloseSession   = 0x40
	cmdPutAsymmetric  = 0x45
	cmdGenerateAsym   = 0x46
	cmdListObjects    = 0x48
	cmdGetPublicKey   = 0x54
	cmdSignECDSA      = 0x56
	cmdSignEdDSA      = 0x6a
	cmdError          = 0x7f
	respFlag          = 0x80
)

// ErrorCode is a device error code, the payload of an error response.
type ErrorCode byte

// Device error codes (libyubihsm's translate_device_error).
const (
	ErrInvalidCommand       ErrorCode = 0x01
	ErrInvalidData          ErrorCode = 0x02
	ErrInvalidSession       ErrorCode = 0x03
	ErrAuthenticationFailed ErrorCode = 0x04
	ErrSessionsFull         ErrorCode = 0x05
	ErrStorageFailed        ErrorCode = 0x07
	ErrWrongLength          ErrorCode = 0x08
	ErrInsufficientPerms    ErrorCode = 0x09
	ErrObjectNotFound       ErrorCode = 0x0b
	ErrInvalidID            ErrorCode = 0x0c
	ErrObjectExists         ErrorCode = 0x11
)

// Algorithm is a YubiHSM algorithm identifier.
type Algorithm byte

// The algorithms the emulator knows (YubiHSM 2 Concepts: Algorithms).
const (
	AlgRSA2048        Algorithm = 9
	AlgP256           Algorithm = 12
	AlgP384           Algorithm = 13
	AlgSecp256k1      Algorithm = 15
	AlgAuthentication Algorithm = 38 // aes128-yubico-authentication
	AlgEd25519        Algorithm = 46
)

// Capabilities (YubiHSM 2 Concepts: Capability).
const (
	CapPutAsymmetric      uint64 = 0x0008
	CapGenerateAsymmetric uint64 = 0x0010
	CapSignECDSA          uint64 = 0x0080
	CapSignEdDSA          uint64 = 0x0100
	CapAll                uint64 = 0x00007fffffffffff
)

// Object types (YubiHSM 2 Concepts: Object).
const (
	TypeAuthenticationKey byte = 0x02
	TypeAsymmetricKey     byte = 0x03
)

const (
	maxSessions    = 16
	maxObjects     = 256
	maxMessage     = 2048 // SCP_MSG_BUF_SIZE
	labelLen       = 40
	defaultTimeout = 30 * time.Second
)

// HighS says how often the emulator returns ECDSA signatures with s > n/2.
type HighS int

const (
	HighSRandom HighS = iota // about half the time, as a device may
	HighSAlways
	HighSNever
)

type object struct {
	id        uint16
	typ       byte
	label     [labelLen]byte
	domains   uint16
	caps      uint64
	delegated uint64
	alg       Algorithm
	// asymmetric keys: exactly one is set for a usable key; unusable algorithms have pub only
	ed  ed25519.PrivateKey
	ec  *ecdsa.PrivateKey
	k1  *secp256k1.PrivateKey
	pub []byte // the Get Public Key payload after the algorithm byte
	// authentication keys
	encKey, macKey []byte
}

func objKey(typ byte, id uint16) uint32 { return uint32(typ)<<16 | uint32(id) }

// Stats counts what the device saw.
type Stats struct {
	SessionsCreated       int
	SessionsAuthenticated int
	AuthFailures          int
	MACFailures           int
	Signatures            int
	HighSSignatures       int
}

// Device is an emulated YubiHSM 2. It processes one command at a time, as the device does.
type Device struct {
	mu       sync.Mutex
	objects  map[uint32]*object
	sessions [maxSessions]*session
	timeout  time.Duration
	highS    HighS
	stats    Stats
}

// New returns an empty device; add an authentication key with PutAuthKey.
func New() *Device {
	return &Device{objects: map[uint32]*object{}, timeout: defaultTimeout}
}

// PutAuthKey stores an authentication key derived from password as the device does, with all
// capabilities and domains unless caps or domains are given (non-zero).
func (d *Device) PutAuthKey(id uint16, password string, domains uint16, caps uint64) {
	enc, mac := DeriveAuthKey(password)
	if domains == 0 {
		domains = 0xffff
	}
	if caps == 0 {
		caps = CapAll
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.objects[objKey(TypeAuthenticationKey, id)] = &object{id: id, typ: TypeAuthenticationKey, domains: domains,
		caps: caps, delegated: caps, alg: AlgAuthentication, encKey: enc, macKey: mac}
}

// PutKey stores a Tezos secret key as an asymmetric key object (domains 0 means domain 1; caps 0
// means the curve's signing capability).
func (d *Device) PutKey(id uint16, label string, domains uint16, caps uint64, priv crypt.PrivateKey) error {
	o := &object{id: id, typ: TypeAsymmetricKey, domains: domains, caps: caps}
	if len(label) > labelLen {
		return errors.New("label longer than 40 bytes")
	}
	copy(o.label[:], label)
	var raw []byte
	switch k := priv.(type) {
	case crypt.Ed25519PrivateKey:
		o.alg, raw = AlgEd25519, k.Seed()
	case *crypt.ECDSAPrivateKey:
		o.alg, raw = AlgP256, k.D.FillBytes(make([]byte, 32))
		if k.Curve == crypt.S256() {
			o.alg = AlgSecp256k1
		}
	default:
		return fmt.Errorf("the YubiHSM 2 holds no %T keys", priv)
	}
	if code := o.setPrivate(raw); code != 0 {
		return fmt.Errorf("bad key: device error 0x%02x", code)
	}
	if o.domains == 0 {
		o.domains = 1
	}
	if o.caps == 0 {
		o.caps = signCap(o.alg)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, dup := d.objects[objKey(TypeAsymmetricKey, id)]; dup {
		return fmt.Errorf("asymmetric key 0x%04x exists", id)
	}
	d.objects[objKey(TypeAsymmetricKey, id)] = o
	return nil
}

// PutUnusableKey stores an asymmetric key object of another algorithm (RSA, P-384…) with a dummy
// public key, to test that such keys are skipped.
func (d *Device) PutUnusableKey(id uint16, label string, alg Algorithm) {
	o := &object{id: id, typ: TypeAsymmetricKey, domains: 1, caps: CapSignECDSA, alg: alg, pub: make([]byte, 96)}
	copy(o.label[:], label)
	d.mu.Lock()
	defer d.mu.Unlock()
	d.objects[objKey(TypeAsymmetricKey, id)] = o
}

// DeleteKey removes an asymmetric key, as yubihsm-shell's "delete" would.
func (d *Device) DeleteKey(id uint16) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	_, ok := d.objects[objKey(TypeAsymmetricKey, id)]
	delete(d.objects, objKey(TypeAsymmetricKey, id))
	return ok
}

// KeyInfo describes an asymmetric key on the device.
type KeyInfo struct {
	ID      uint16
	Label   string
	Alg     Algorithm
	Domains uint16
	Caps    uint64
}

// Keys lists the asymmetric keys, by ID.
func (d *Device) Keys() []KeyInfo {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []KeyInfo
	for _, o := range d.objects {
		if o.typ == TypeAsymmetricKey {
			out = append(out, KeyInfo{ID: o.id, Label: trimLabel(o.label), Alg: o.alg, Domains: o.domains, Caps: o.caps})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// SetHighS sets how often ECDSA signatures come back with a high s.
func (d *Device) SetHighS(h HighS) {
	d.mu.Lock()
	d.highS = h
	d.mu.Unlock()
}

// SetSessionTimeout changes the inactivity timeout (30 s on a device).
func (d *Device) SetSessionTimeout(t time.Duration) {
	d.mu.Lock()
	d.timeout = t
	d.mu.Unlock()
}

// ExpireSessions forgets every session, as after 30 s of inactivity or a power cycle.
func (d *Device) ExpireSessions() {
	d.mu.Lock()
	d.sessions = [maxSessions]*session{}
	d.mu.Unlock()
}

// OpenSessions counts the sessions the device holds (created or authenticated).
func (d *Device) OpenSessions() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.expire()
	n := 0
	for _, s := range d.sessions {
		if s != nil {
			n++
		}
	}
	return n
}

// Stats returns the counters.
func (d *Device) Stats() Stats {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.stats
}

// Process handles one message as the connector hands it to the device, and returns the reply.
func (d *Device) Process(req []byte) []byte {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.expire()
	cmd, data, ok := parseFrame(req)
	if !ok {
		return errFrame(ErrWrongLength)
	}
	switch cmd {
	case cmdEcho:
		return frame(cmdEcho|respFlag, data)
	case cmdCreateSession:
		return d.createSession(data)
	case cmdAuthenticate:
		return d.authenticateSession(req, data)
	case cmdSessionMessage:
		return d.sessionMessage(req, data)
	}
	return errFrame(ErrInvalidCommand) // every other command needs a session
}

// expire frees the sessions idle for longer than the timeout.
func (d *Device) expire() {
	now := time.Now()
	for i, s := range d.sessions {
		if s != nil && now.Sub(s.used) > d.timeout {
			d.sessions[i] = nil
		}
	}
}

// parseFrame splits T || L (2 bytes) || V, checking that L is V's length.
func parseFrame(b []byte) (cmd byte, data []byte, ok bool) {
	if len(b) < 3 || len(b) > 3+maxMessage || int(binary.BigEndian.Uint16(b[1:3])) != len(b)-3 {
		return 0, nil, false
	}
	return b[0], b[3:], true
}

func frame(cmd byte, data []byte) []byte {
	out := make([]byte, 3, 3+len(data))
	out[0] = cmd
	binary.BigEndian.PutUint16(out[1:], uint16(len(data)))
	return append(out, data...)
}

func errFrame(code ErrorCode) []byte { return frame(cmdError, []byte{byte(code)}) }

func trimLabel(l [labelLen]byte) string {
	n := labelLen
	for n > 0 && l[n-1] == 0 {
		n--
	}
	return string(l[:n])
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}
