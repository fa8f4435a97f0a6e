// Package vault defines what a key backend offers the signer: keys that have a public key and
// sign a digest (or, for BLS, a message). Hashing, low-S, verification and watermarks are the
// signer's job, so each backend stays a thin adapter to its service.
//
// A driver is a package with a Driver name constant and a New of the one constructor shape
// (Constructor: context, name, config node, Env); it decodes its config node with
// yamlstrict.Decode and marks its own config checks with yamlstrict.Invalid, so that a mistake
// stops start-up; it embeds a Lifecycle; and its tests run vaulttest.Run against the real
// token, an emulator or an in-repo fake of the service.
package vault

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"encoding/asn1"
	"errors"
	"fmt"
	"math/big"
	"os"
	"sync"
	"sync/atomic"

	"github.com/decred/dcrd/dcrec/secp256k1/v4"
	dcrecdsa "github.com/decred/dcrd/dcrec/secp256k1/v4/ecdsa"
	blst "github.com/ecadlabs/goblst"
	"github.com/ecadlabs/goblst/minpk"
	"github.com/ecadlabs/gotez/v2/crypt"
	_ "golang.org/x/crypto/blake2b" // registers crypto.BLAKE2b_256, P-256's RFC 6979 hash

	"github.com/signatory-go/signatory/internal/backend"
	"github.com/signatory-go/signatory/internal/tezos"
)

// SignOptions carries per-request signing options.
type SignOptions struct {
	// Version is the signing version, 0 to tezos.MaxVersion; for BLS it selects the
	// ciphersuite: 1 the augmented one, 2 and 3 the proof-of-possession one (0 is refused).
	Version int
}

// Key is a signing key held by a vault.
type Key interface {
	// PublicKey returns the key's public key.
	PublicKey() crypt.PublicKey
	// ID is the key's reference inside its vault (alias, label, key id, ARN…), for listing.
	ID() string
	// Sign signs a request. digest is blake2b-256(message). Ed25519, ECDSA and ML-DSA-44 (tz5)
	// keys sign digest; BLS keys sign message. ECDSA signatures are returned as the backend made them, high-S
	// included: low-S normalisation is the signer's job, never a driver's. Sign fails with
	// ErrClosed once the vault is closed, and with the context's error when ctx is done before
	// or while the backend is asked (see Lifecycle). Every driver passes the vaulttest suite.
	Sign(ctx context.Context, message []byte, digest *[32]byte, opts SignOptions) (crypt.Signature, error)
}

// PossessionProver is a Key that can produce a BLS proof of possession.
type PossessionProver interface {
	ProvePossession(ctx context.Context) (crypt.Signature, error)
}

// PossessionOverProver is a Key that can produce a proof of possession over another public key
// (octez's bls_pk parameter; tezos.ProvePossessionOver).
type PossessionOverProver interface {
	ProvePossessionOver(ctx context.Context, over *crypt.BLSPublicKey) (crypt.Signature, error)
}

// Vault is a named key backend.
type Vault interface {
	// Name is the vault's name in the config.
	Name() string
	// Driver is the backend's driver name ("file", "mem", …).
	Driver() string
	// List returns every key the vault can sign with.
	List(ctx context.Context) ([]Key, error)
	// Close releases the backend.
	Close() error
}

// Importer is a Vault that can store an existing secret key.
type Importer interface {
	Import(ctx context.Context, priv crypt.PrivateKey, name string) (Key, error)
}

// Generator is a Vault that can create a new key.
type Generator interface {
	Generate(ctx context.Context, curve tezos.Curve, name string) (Key, error)
}

// ReadinessChecker is a Vault that can report whether it can sign now.
type ReadinessChecker interface {
	Ready(ctx context.Context) error
}

// ErrBLSVersion0 is returned when a BLS key is asked to sign with signing version 0.
var ErrBLSVersion0 = tezos.ErrBLSVersion0

// ErrInvalidSignature is wrapped by a driver's error when its service answered with a signature
// that is not one (a wrong length, a value out of range): the client is told so.
var ErrInvalidSignature = errors.New("invalid signature")

// ErrUnknownVersion is returned when a key is asked to sign with a signing version that does not
// exist (the server refuses such a request before).
var ErrUnknownVersion = errors.New("unknown signing version")

// SoftwareKey is a key whose secret is held in process memory (file and mem vaults).
type SoftwareKey struct {
	Priv crypt.PrivateKey
	Ref  string
	// Life is the owning vault's lifecycle (nil: a key that is never closed).
	Life *Lifecycle

	pubOnce sync.Once
	pub     crypt.PublicKey // derived from Priv once: a tz4 key's costs a scalar multiplication
	blsOnce sync.Once
	blsPub  []byte // the BLS public key derived from Priv, for SignChecked
}

// PublicKey implements Key.
func (k *SoftwareKey) PublicKey() crypt.PublicKey {
	k.pubOnce.Do(func() { k.pub = k.Priv.Public() })
	return k.pub
}

// ID implements Key.
func (k *SoftwareKey) ID() string { return k.Ref }

// usable is nil when the key may sign now: its Life allows it, or ctx is not done.
func (k *SoftwareKey) usable(ctx context.Context) error {
	if k.Life != nil {
		return k.Life.Usable(ctx)
	}
	return context.Cause(ctx)
}

// Sign implements Key.
func (k *SoftwareKey) Sign(ctx context.Context, message []byte, digest *[32]byte, opts SignOptions) (crypt.Signature, error) {
	if err := k.usable(ctx); err != nil {
		return nil, err
	}
	switch p := k.Priv.(type) {
	case crypt.Ed25519PrivateKey:
		return crypt.Ed25519Signature(ed25519.Sign(ed25519.PrivateKey(p), digest[:])), nil
	case *crypt.ECDSAPrivateKey:
		return signECDSA((*ecdsa.PrivateKey)(p), digest)
	case *crypt.BLSPrivateKey:
		switch opts.Version {
		case 0:
			return nil, ErrBLSVersion0
		case 1:
			return (*crypt.BLSSignature)(minpk.Sign((*minpk.PrivateKey)(p), message, blst.Augmentation)), nil
		case 2, 3: // version 3 signs tz4 as version 2 does
			return (*crypt.BLSSignature)(minpk.Sign((*minpk.PrivateKey)(p), message, blst.ProofOfPossession)), nil
		default:
			return nil, fmt.Errorf("%w %d", ErrUnknownVersion, opts.Version)
		}
	case *tezos.MLDSA44PrivateKey:
		if err := tezos.CheckVersion(tezos.MLDSA44, opts.Version); err != nil {
			return nil, err
		}
		return p.SignDigest(digest)
	}
	return nil, fmt.Errorf("unsupported key type %T", k.Priv)
}

// signECDSA signs digest with a deterministic nonce (RFC 6979), low-S: secp256k1 with decred's
// signer (HMAC-SHA256 over the key and the digest, as Bitcoin's libraries do), P-256 with
// crypto/ecdsa's deterministic mode (its HMAC over the digest's own hash, Blake2b-256). The same
// key and digest give the same bytes, so an in-process ECDSA signature can be checked by signing
// twice, as Ed25519's and BLS's are (SignChecked), instead of by a verification that costs three
// to four times the signing. Any nonce that is secret and unique per message is valid to octez.
func signECDSA(p *ecdsa.PrivateKey, digest *[32]byte) (crypt.Signature, error) {
	var r, s *big.Int
	switch p.Curve {
	//lint:ignore SA1019 gotez's secp256k1 keys carry decred's elliptic.Curve, the one way to tell them
	case secp256k1.S256():
		var d secp256k1.ModNScalar
		// A secp256k1 key has no crypto/ecdsa encoding: its scalar is read, never set.
		//lint:ignore SA1019 see above
		if overflow := d.SetByteSlice(p.D.Bytes()); overflow || d.IsZero() {
			return nil, errors.New("invalid secp256k1 secret key")
		}
		key := secp256k1.NewPrivateKey(&d)
		d.Zero()
		sig := dcrecdsa.Sign(key, digest[:])
		key.Zero()
		sr, ss := sig.R(), sig.S()
		rb, sb := sr.Bytes(), ss.Bytes()
		r, s = new(big.Int).SetBytes(rb[:]), new(big.Int).SetBytes(sb[:])
	case elliptic.P256():
		der, err := p.Sign(nil, digest[:], crypto.BLAKE2b_256)
		if err != nil {
			return nil, err
		}
		var rs struct{ R, S *big.Int }
		if rest, err := asn1.Unmarshal(der, &rs); err != nil || len(rest) != 0 {
			return nil, fmt.Errorf("P-256 signature: %w", err)
		}
		r, s = rs.R, rs.S
	default:
		return nil, fmt.Errorf("unsupported ECDSA curve %s", p.Curve.Params().Name)
	}
	return tezos.LowS(&crypt.ECDSASignature{R: r, S: s, Curve: p.Curve}), nil
}

// NonceDeriver is a Key that can compute octez's deterministic nonce of its secret key
// (tezos.DeterministicNonce). Only keys whose secret is in this process can: no HSM or KMS
// offers an HMAC keyed by the secret of a signing key, and exporting it is what they exist to
// prevent.
type NonceDeriver interface {
	DeterministicNonce(ctx context.Context, data []byte) ([32]byte, error)
}

// DeterministicNonce implements NonceDeriver.
func (k *SoftwareKey) DeterministicNonce(ctx context.Context, data []byte) ([32]byte, error) {
	if k.Life != nil {
		if err := k.Life.Usable(ctx); err != nil {
			return [32]byte{}, err
		}
	}
	return tezos.DeterministicNonce(k.Priv, data)
}

// CheckedSigner is a Key that can check its own signature by a cheaper method than verification
// that catches the same faults. Only keys whose secret is in this process qualify: a signature from
// an HSM or a KMS is always fully verified.
type CheckedSigner interface {
	// SignChecked signs as Sign does and checks the result against pub, the key's listed public
	// key. checked is false when the key cannot check this signature itself: the signer then
	// verifies it. An error wrapping ErrFault means the check failed: nothing may be released.
	SignChecked(ctx context.Context, message []byte, digest *[32]byte, opts SignOptions, pub crypt.PublicKey) (sig crypt.Signature, checked bool, err error)
}

// ErrFault is returned by SignChecked when the key's own check of a signature fails.
var ErrFault = errors.New("the signature failed the key's own check")

// SignChecked implements CheckedSigner for the deterministic schemes, Ed25519, BLS and ECDSA
// (signECDSA's RFC 6979 nonces), whose verification costs 2.3, 3.5 and about 3 times the
// signing. The check replaces verification by:
//
//  1. comparing the key's public key with pub, the listed key (for Ed25519, the public half
//     stored in the private key, which the signing hashes into every signature: a corrupted copy
//     would yield signatures from which, with a correct one of the same message, the secret scalar
//     could be solved for);
//  2. signing a second time and comparing the two signatures byte for byte. A deterministic scheme
//     gives the same bytes twice; a transient fault (a bit flipped in a register or in memory
//     during one computation, the fault attacks on deterministic signatures that leak the key
//     from one faulty and one correct signature) makes them differ. Ed25519's two computations
//     share one inversion, whose result the second checks (ed25519Checked).
//
// What it does not catch, verification would only turn into a refusal without more safety: a
// secret corrupted in memory before both computations signs, consistently, for another key; the
// baker's node refuses such a signature, it is never a second signature for the listed key, and it
// reveals nothing of the listed key. ML-DSA-44 (its hedged signing draws fresh randomness, so two
// signatures differ) is not checked here: the signer verifies it.
func (k *SoftwareKey) SignChecked(ctx context.Context, message []byte, digest *[32]byte, opts SignOptions, pub crypt.PublicKey) (crypt.Signature, bool, error) {
	switch p := k.Priv.(type) {
	case crypt.Ed25519PrivateKey:
		want, ok := pub.(crypt.Ed25519PublicKey)
		if !ok || len(p) != ed25519.PrivateKeySize || !bytes.Equal(ed25519.PrivateKey(p)[32:], want) {
			return nil, false, fmt.Errorf("%w: the key's public half is not the listed public key", ErrFault)
		}
		// Two computations compared, as signTwice does, sharing one checked inversion.
		if err := k.usable(ctx); err != nil {
			return nil, false, err
		}
		sig, err := ed25519Checked(ed25519.PrivateKey(p), digest[:])
		if err != nil {
			return nil, false, err
		}
		return crypt.Ed25519Signature(sig), true, nil
	case *crypt.BLSPrivateKey:
		want, ok := pub.(*crypt.BLSPublicKey)
		if !ok || !k.blsPublicIs(want) {
			return nil, false, fmt.Errorf("%w: the key's public key is not the listed public key", ErrFault)
		}
	case *crypt.ECDSAPrivateKey:
		want, ok := pub.(*crypt.ECDSAPublicKey)
		if !ok || want.Curve != p.Curve || want.X.Cmp(p.X) != 0 || want.Y.Cmp(p.Y) != 0 {
			return nil, false, fmt.Errorf("%w: the key's public key is not the listed public key", ErrFault)
		}
	default: // ML-DSA-44: randomized (hedged), so verified by the signer
		sig, err := k.Sign(ctx, message, digest, opts)
		return sig, false, err
	}
	sig, err := signTwice(func() (crypt.Signature, error) { return k.Sign(ctx, message, digest, opts) })
	return sig, err == nil, err
}

// signTwice runs sign twice and returns the signature when both runs give the same bytes.
func signTwice(sign func() (crypt.Signature, error)) (crypt.Signature, error) {
	first, err := sign()
	if err != nil {
		return nil, err
	}
	second, err := sign()
	if err != nil {
		return nil, err
	}
	a, b := signatureBytes(first), signatureBytes(second)
	if a == nil || !bytes.Equal(a, b) {
		return nil, fmt.Errorf("%w: two computations of one deterministic signature differ", ErrFault)
	}
	return first, nil
}

// blsPublicIs reports whether the key's public key (derived from its secret once, by PublicKey: a
// scalar multiplication) is want.
func (k *SoftwareKey) blsPublicIs(want *crypt.BLSPublicKey) bool {
	k.blsOnce.Do(func() { k.blsPub = (*minpk.PublicKey)(k.PublicKey().(*crypt.BLSPublicKey)).Bytes() })
	return bytes.Equal(k.blsPub, (*minpk.PublicKey)(want).Bytes())
}

func signatureBytes(sig crypt.Signature) []byte {
	switch s := sig.(type) {
	case crypt.Ed25519Signature:
		return s
	case *crypt.BLSSignature:
		return (*minpk.Signature)(s).Bytes()
	case *crypt.ECDSASignature:
		if s.R == nil || s.S == nil {
			return nil
		}
		var b [64]byte
		s.R.FillBytes(b[:32])
		s.S.FillBytes(b[32:])
		return b[:]
	}
	return nil
}

// ProvePossession implements PossessionProver for BLS keys.
func (k *SoftwareKey) ProvePossession(ctx context.Context) (crypt.Signature, error) {
	p, ok := k.Priv.(*crypt.BLSPrivateKey)
	if !ok {
		return nil, ErrPossessionUnsupported
	}
	return p.ProvePossession(), nil
}

// ProvePossessionOver implements PossessionOverProver for BLS keys.
func (k *SoftwareKey) ProvePossessionOver(ctx context.Context, over *crypt.BLSPublicKey) (crypt.Signature, error) {
	if k.Life != nil {
		if err := k.Life.Usable(ctx); err != nil {
			return nil, err
		}
	}
	p, ok := k.Priv.(*crypt.BLSPrivateKey)
	if !ok {
		return nil, ErrPossessionUnsupported
	}
	return tezos.ProvePossessionOver(p, over), nil
}

// ErrPossessionUnsupported is returned by keys that cannot prove possession.
var ErrPossessionUnsupported = errors.New("proof of possession is not supported")

// Env gives vault constructors what they need beyond their own config section.
type Env = backend.Env

// Constructor is the shape of every vault driver's New.
type Constructor = backend.Constructor[Vault]

// Password reads a password from the environment variable or the file named, in that order;
// ok is false when neither is configured. The file's trailing newline is dropped.
func Password(envName, file string) (pw []byte, ok bool, err error) {
	if envName != "" {
		if v, set := os.LookupEnv(envName); set {
			return []byte(v), true, nil
		}
		if file == "" {
			return nil, false, fmt.Errorf("password environment variable %s is not set", envName)
		}
	}
	if file != "" {
		b, err := os.ReadFile(os.ExpandEnv(file))
		if err != nil {
			return nil, false, fmt.Errorf("cannot read password file: %w", err)
		}
		return bytes.TrimRight(b, "\r\n"), true, nil
	}
	return nil, false, nil
}

// Secret returns a credential given in a vault's config: inline, through an environment variable
// the config names, or in a file (at most one of these three), else from fallbackEnv. name is the
// config key ("pin", "password") used in error messages, which never contain the secret.
func Secret(name, inline, envName, file, fallbackEnv string) (string, error) {
	n := 0
	for _, v := range []string{inline, envName, file} {
		if v != "" {
			n++
		}
	}
	if n > 1 {
		return "", fmt.Errorf("give only one of %s, %s_env and %s_file", name, name, name)
	}
	if inline != "" {
		return inline, nil
	}
	pw, ok, err := Password(envName, file)
	if err != nil {
		return "", fmt.Errorf("%s: %w", name, err)
	}
	if ok {
		return string(pw), nil
	}
	if v, set := os.LookupEnv(fallbackEnv); set {
		return v, nil
	}
	return "", fmt.Errorf("%w: set %s, %s_env or %s_file, or %s", ErrNoSecret(name), name, name, name, fallbackEnv)
}

// ErrNoSecret is the error Secret wraps when no credential is configured anywhere.
type ErrNoSecret string

func (e ErrNoSecret) Error() string { return "no " + string(e) }

// ErrClosed is returned by the keys of a vault that has been closed.
var ErrClosed = errors.New("vault is closed")

// Lifecycle is what every driver embeds to keep the vault contract's two rules about when a key
// may sign: never after its vault is closed, and never for a request whose context is already
// done (its deadline passed while it waited: the baker has given up on the answer).
type Lifecycle struct{ closed atomic.Bool }

// MarkClosed records that the vault is closed; it reports whether this call closed it (so Close
// releases the backend once).
func (l *Lifecycle) MarkClosed() (first bool) { return !l.closed.Swap(true) }

// Closed reports whether the vault is closed.
func (l *Lifecycle) Closed() bool { return l.closed.Load() }

// Usable returns ErrClosed after Close, else ctx's error when ctx is done, else nil. Keys call it
// first in Sign.
func (l *Lifecycle) Usable(ctx context.Context) error {
	if l.closed.Load() {
		return ErrClosed
	}
	return context.Cause(ctx)
}
