// Package remotetest holds what the in-process fakes of the key services share (cloudkmstest,
// azuretest, hashicorptest): real keys (Go crypto/ecdsa P-256, decred secp256k1,
// crypto/ed25519) whose ECDSA signatures alternate between low-S and high-S, so that the signer's
// low-S normalisation is exercised; a self-signed TLS certificate; and the Faults a test injects
// (throttling, delays, failing lists). Each fake follows its service's documented wire protocol
// and checks request shapes and credentials strictly; they are test tools, not emulators: only
// the calls the vaults make are implemented.
package remotetest

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"time"

	"github.com/decred/dcrd/dcrec/secp256k1/v4"
	secpecdsa "github.com/decred/dcrd/dcrec/secp256k1/v4/ecdsa"
	"github.com/ecadlabs/gotez/v2/crypt"

	"github.com/signatory-go/signatory/internal/tezos"
)

// Key is a real key held by a fake.
type Key struct {
	Curve tezos.Curve
	ec    *ecdsa.PrivateKey // P-256
	k1    *secp256k1.PrivateKey
	ed    ed25519.PrivateKey
	mu    sync.Mutex
	n     int // signatures made, for alternating high-S
	highS int
}

// NewKey generates a key on curve (ed25519, secp256k1 or p256).
func NewKey(c tezos.Curve) *Key {
	k := &Key{Curve: c}
	var err error
	switch c {
	case tezos.P256:
		k.ec, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case tezos.Secp256k1:
		k.k1, err = secp256k1.GeneratePrivateKey()
	case tezos.Ed25519:
		_, k.ed, err = ed25519.GenerateKey(rand.Reader)
	default:
		panic("remotetest: unsupported curve " + string(c))
	}
	if err != nil {
		panic(err)
	}
	return k
}

// Public returns the key's public key in the signer's form.
func (k *Key) Public() crypt.PublicKey {
	switch k.Curve {
	case tezos.P256:
		return (*crypt.ECDSAPublicKey)(&k.ec.PublicKey)
	case tezos.Secp256k1:
		return &crypt.ECDSAPublicKey{Curve: crypt.S256(), X: k.k1.PubKey().X(), Y: k.k1.PubKey().Y()}
	}
	return crypt.Ed25519PublicKey(k.ed.Public().(ed25519.PublicKey))
}

// ecdsaPublic returns the ECDSA public key (nil for Ed25519).
func (k *Key) ECDSAPublic() *ecdsa.PublicKey {
	if k.Curve == tezos.Ed25519 {
		return nil
	}
	return (*ecdsa.PublicKey)(k.Public().(*crypt.ECDSAPublicKey))
}

// HighS reports how many high-S signatures the key has returned.
func (k *Key) HighS() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.highS
}

// SignECDSA signs a 32-byte digest, returning low-S and high-S signatures in turn.
func (k *Key) SignECDSA(digest []byte) (r, s *big.Int) {
	switch k.Curve {
	case tezos.P256:
		var err error
		r, s, err = ecdsa.Sign(rand.Reader, k.ec, digest)
		if err != nil {
			panic(err)
		}
	case tezos.Secp256k1:
		sig := secpecdsa.Sign(k.k1, digest) // RFC 6979, low-S
		rv, sv := sig.R(), sig.S()
		rb, sb := rv.Bytes(), sv.Bytes()
		r, s = new(big.Int).SetBytes(rb[:]), new(big.Int).SetBytes(sb[:])
	default:
		panic("remotetest: not an ECDSA key")
	}
	n := k.ECDSAPublic().Curve.Params().N
	half := new(big.Int).Rsh(n, 1)
	if s.Cmp(half) > 0 {
		s = new(big.Int).Sub(n, s) // low-S first
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	k.n++
	if k.n%2 == 0 {
		s = new(big.Int).Sub(n, s)
		k.highS++
	}
	return r, s
}

// signRaw signs digest and returns r ‖ s (64 bytes) for ECDSA or the Ed25519 signature.
func (k *Key) SignRaw(digest []byte) []byte {
	if k.Curve == tezos.Ed25519 {
		return ed25519.Sign(k.ed, digest)
	}
	r, s := k.SignECDSA(digest)
	out := make([]byte, 64)
	r.FillBytes(out[:32])
	s.FillBytes(out[32:])
	return out
}

// Cert is a self-signed loopback TLS certificate (127.0.0.1, ::1, localhost) that is its own CA.
type Cert struct {
	TLS tls.Certificate
	PEM []byte // the certificate, to trust as a CA
}

// NewCert makes a loopback certificate valid for a day.
func NewCert() *Cert {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "remotetest"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		DNSNames:              []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &priv.PublicKey, priv)
	if err != nil {
		panic(err)
	}
	return &Cert{
		TLS: tls.Certificate{Certificate: [][]byte{der}, PrivateKey: priv},
		PEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
	}
}

// ServeTLS serves h over HTTPS on a loopback port with a fresh certificate. The caller closes the
// server; cert.PEM is the CA a client must trust.
func ServeTLS(h http.Handler) (srv *httptest.Server, cert *Cert) {
	cert = NewCert()
	srv = httptest.NewUnstartedServer(h)
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert.TLS}}
	srv.StartTLS()
	return srv, cert
}

// Faults holds the failures a test asks a fake to inject into its sign calls.
type Faults struct {
	mu       sync.Mutex
	throttle int           // the next n sign calls answer "throttled"
	delay    time.Duration // sign calls wait this long first (or until the caller gives up)
	failList bool          // list calls answer "throttled"
	calls    map[string]int
}

// FailList makes every list call fail as a throttled service does (true), or work again (false).
// Only the Azure fake honours it.
func (f *Faults) FailList(fail bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failList = fail
}

// ListFails reports whether list calls must fail (see FailList).
func (f *Faults) ListFails() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.failList
}

// Throttle makes the next n sign calls fail as the service does when a quota is exceeded.
func (f *Faults) Throttle(n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.throttle = n
}

// Delay makes sign calls wait d before answering (0 to stop).
func (f *Faults) Delay(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.delay = d
}

// Calls returns how many requests of kind op (e.g. "sign") the fake has received.
func (f *Faults) Calls(op string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[op]
}

// Record counts one request of kind op.
func (f *Faults) Record(op string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.calls == nil {
		f.calls = map[string]int{}
	}
	f.calls[op]++
}

// SignFault counts a sign call and reports whether it must be throttled, after any delay;
// done is the request's cancellation.
func (f *Faults) SignFault(done <-chan struct{}) (throttled bool) {
	f.mu.Lock()
	if f.calls == nil {
		f.calls = map[string]int{}
	}
	f.calls["sign"]++
	d := f.delay
	if f.throttle > 0 {
		f.throttle--
		throttled = true
	}
	f.mu.Unlock()
	if d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
		case <-done:
		}
	}
	return throttled
}

// Ed25519Public returns the public key of an Ed25519 key.
func (k *Key) Ed25519Public() ed25519.PublicKey { return k.ed.Public().(ed25519.PublicKey) }
