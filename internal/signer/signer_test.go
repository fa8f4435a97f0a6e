package signer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ecadlabs/gotez/v2/crypt"

	"github.com/signatory-go/signatory/internal/audit"
	"github.com/signatory-go/signatory/internal/fault"
	"github.com/signatory-go/signatory/internal/metrics"
	"github.com/signatory-go/signatory/internal/policy"
	"github.com/signatory-go/signatory/internal/policyhook"
	"github.com/signatory-go/signatory/internal/request"
	tv "github.com/signatory-go/signatory/internal/testvectors"
	"github.com/signatory-go/signatory/internal/tezos"
	"github.com/signatory-go/signatory/internal/vault"
	"github.com/signatory-go/signatory/internal/watermark"
	wmmem "github.com/signatory-go/signatory/internal/watermark/mem"
)

// fakeKey is a real software key whose behaviour a test can spoil. It is not a
// vault.CheckedSigner: its signatures take the verification path of HSM and KMS keys.
type fakeKey struct {
	soft    *vault.SoftwareKey
	mode    string            // "" ok, "error", "wrong", "highS", "slow"
	release chan struct{}     // for "slow": Sign waits for it or for ctx
	cancel  func()            // for "slow": called once Sign is entered (the client gives up)
	holdIf  func([]byte) bool // for "slow": only these messages wait (nil: all)
	calls   atomic.Int32
}

func (k *fakeKey) PublicKey() crypt.PublicKey { return k.soft.PublicKey() }
func (k *fakeKey) ID() string                 { return k.soft.ID() }

func (k *fakeKey) Sign(ctx context.Context, msg []byte, d *[32]byte, o vault.SignOptions) (crypt.Signature, error) {
	k.calls.Add(1)
	switch k.mode {
	case "error":
		return nil, errors.New("HSM on fire")
	case "wrong":
		var other [32]byte
		return k.soft.Sign(ctx, msg, &other, o)
	case "slow":
		if k.holdIf != nil && !k.holdIf(msg) {
			break
		}
		if k.cancel != nil {
			k.cancel()
		}
		select {
		case <-k.release:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	sig, err := k.soft.Sign(ctx, msg, d, o)
	if e, ok := sig.(*crypt.ECDSASignature); ok && k.mode == "highS" && err == nil {
		n := e.Curve.Params().N
		if e.S.Cmp(new(big.Int).Rsh(n, 1)) <= 0 {
			e.S = new(big.Int).Sub(n, e.S)
		}
	}
	return sig, err
}

type fakeVault struct {
	keys        []vault.Key
	listErr     atomic.Pointer[error]
	lists       atomic.Int32
	sawCanceled atomic.Bool  // a List ran with an ended context
	deadlines   atomic.Int32 // Lists that ran with a deadline
	mu          sync.Mutex
	gate        chan struct{} // when set, List waits for it
}

func (v *fakeVault) Name() string   { return "fake" }
func (v *fakeVault) Driver() string { return "fake" }
func (v *fakeVault) Close() error   { return nil }
func (v *fakeVault) List(ctx context.Context) ([]vault.Key, error) {
	v.lists.Add(1)
	if ctx.Err() != nil {
		v.sawCanceled.Store(true)
	}
	if _, ok := ctx.Deadline(); ok {
		v.deadlines.Add(1)
	}
	if e := v.listErr.Load(); e != nil {
		return nil, *e
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	v.mu.Lock()
	keys, gate := v.keys, v.gate
	v.mu.Unlock()
	if gate != nil {
		<-gate
	}
	return keys, nil
}

// fakeStore is the mem store with faults: Load or Advance failing, and a racing commit by
// "another process" just before this one's.
type fakeStore struct {
	*wmmem.Store
	loadErr, advanceErr error
	race                func(s *wmmem.Store, k watermark.Key, m watermark.Mark)
	advances            atomic.Int32
}

func (s *fakeStore) Load(ctx context.Context, k watermark.Key) (watermark.Mark, bool, error) {
	if s.loadErr != nil {
		return watermark.Mark{}, false, s.loadErr
	}
	return s.Store.Load(ctx, k)
}

func (s *fakeStore) Advance(ctx context.Context, k watermark.Key, m watermark.Mark) (watermark.Mark, error) {
	s.advances.Add(1)
	if s.advanceErr != nil {
		return watermark.Mark{}, s.advanceErr
	}
	if s.race != nil {
		s.race(s.Store, k, m)
	}
	return s.Store.Advance(ctx, k, m)
}

type fixture struct {
	s     *Signer
	key   *fakeKey
	vault *fakeVault
	store *fakeStore
	pkh   string
}

func newFixture(t *testing.T, curve tezos.Curve, mode string, cfg func(*Config)) *fixture {
	t.Helper()
	priv, err := tezos.GenerateKey(curve)
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{key: &fakeKey{soft: &vault.SoftwareKey{Priv: priv, Ref: "k"}, mode: mode, release: make(chan struct{})},
		store: &fakeStore{Store: wmmem.NewStore()}, pkh: priv.Public().Hash().String()}
	f.vault = &fakeVault{keys: []vault.Key{f.key}}
	c := Config{Vaults: []vault.Vault{f.vault}, Store: f.store, Observer: metrics.New("t"),
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Policies: map[string]*policy.Policy{f.pkh: {PKH: f.pkh,
			Requests: []request.Kind{request.Attestation, request.Preattestation, request.Generic}, Ops: []string{"transaction"}}}}
	if cfg != nil {
		cfg(&c)
	}
	f.s, err = New(t.Context(), c)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *fixture) sign(ctx context.Context, msg []byte) (crypt.Signature, error) {
	return f.signVersion(ctx, msg, 2)
}

func (f *fixture) signVersion(ctx context.Context, msg []byte, version int) (crypt.Signature, error) {
	res, err := f.s.Sign(ctx, &SignRequest{PKH: f.pkh, Message: msg, Version: version})
	if err == nil && res.SignatureString() != res.Signature.String() {
		// The answer's base58, made once with the record's, is the released signature's.
		return nil, fmt.Errorf("answer's base58 %s, released signature %s", res.SignatureString(), res.Signature)
	}
	return res.Signature, err
}

// stored returns the attestation record of the fixture's key for the vector's chain.
func (f *fixture) stored(t *testing.T) (watermark.Mark, bool) {
	t.Helper()
	req, err := request.Decode(attestationAt(5), 2)
	if err != nil {
		t.Fatal(err)
	}
	m, ok, err := f.store.Store.Load(t.Context(), watermark.Key{Chain: req.ChainID(), PKH: f.pkh, Class: watermark.Attestation})
	if err != nil {
		t.Fatal(err)
	}
	return m, ok
}

func mark(t *testing.T, msg []byte) (watermark.Key, watermark.Mark, string) {
	req, err := request.Decode(msg, 2)
	if err != nil {
		t.Fatal(err)
	}
	k, m := slotOf("", req)
	return k, m, req.ChainID()
}

// TestFaultPaths: every failing step leaves nothing behind that could let a second signature out,
// and releases no signature.
func TestFaultPaths(t *testing.T) {
	t.Parallel()
	preattestation := append([]byte{}, attestationAt(5)...)
	preattestation[0], preattestation[37] = 0x12, 20 // magic 0x12, tag 20: a preattestation
	unavailable := fault.New(fault.Unavailable, "store down")
	cases := []struct {
		name      string
		curve     tezos.Curve
		mode      string
		cfg       func(*Config)
		store     func(*fakeStore)
		ctx       func() (context.Context, context.CancelFunc)
		status    int
		vaultCall int32 // vault calls expected
		stored    bool  // a record expected afterwards
	}{
		{name: "policy refuses the class", curve: tezos.Ed25519, cfg: func(c *Config) {
			for _, p := range c.Policies {
				p.Requests = []request.Kind{request.Generic}
			}
		}, status: 403},
		{name: "hook refuses", curve: tezos.Ed25519, cfg: func(c *Config) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(403) }))
			t.Cleanup(srv.Close)
			c.Hook = &policyhook.Hook{Address: srv.URL, Timeout: time.Minute, Client: srv.Client()}
		}, status: 403},
		{name: "vault error", curve: tezos.Secp256k1, mode: "error", status: 500, vaultCall: 1},
		{name: "vault returns a wrong signature", curve: tezos.P256, mode: "wrong", status: 500, vaultCall: 1},
		{name: "vault slower than the request", curve: tezos.Secp256k1, mode: "slow", ctx: func() (context.Context, context.CancelFunc) {
			return context.WithCancel(t.Context()) // cancelled by the vault once it is asked
		}, status: 500, vaultCall: 1},
		{name: "store cannot read", curve: tezos.Ed25519, store: func(s *fakeStore) { s.loadErr = unavailable }, status: 500},
		{name: "store cannot commit", curve: tezos.P256, store: func(s *fakeStore) { s.advanceErr = unavailable }, status: 500, vaultCall: 1},
		{name: "another process commits other bytes first", curve: tezos.Secp256k1, store: func(s *fakeStore) {
			s.race = func(m *wmmem.Store, k watermark.Key, req watermark.Mark) {
				other := req
				other.Digest[0] ^= 1
				other.Signature = "other"
				m.Advance(t.Context(), k, other)
			}
		}, status: 409, vaultCall: 1, stored: true},
		{name: "audit journal fails", curve: tezos.Secp256k1, cfg: func(c *Config) {
			j, err := audit.Open(filepath.Join(t.TempDir(), "audit.log"), 0)
			if err != nil {
				t.Fatal(err)
			}
			j.Close() // every Record now fails
			c.Audit = j
		}, status: 500, vaultCall: 1, stored: true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, c.curve, c.mode, c.cfg)
			if c.store != nil {
				c.store(f.store)
			}
			ctx, cancel := t.Context(), context.CancelFunc(func() {})
			if c.ctx != nil {
				ctx, cancel = c.ctx()
				f.key.cancel = cancel
			}
			defer cancel()
			msg := attestationAt(5)
			if c.name == "policy refuses the class" {
				msg = preattestation
			}
			sig, err := f.sign(ctx, msg)
			if sig != nil || fault.Status(err) != c.status {
				t.Fatalf("Sign = %v, %v (status %d), want no signature and %d", sig, err, fault.Status(err), c.status)
			}
			if n := f.key.calls.Load(); n != c.vaultCall {
				t.Fatalf("vault asked %d times, want %d", n, c.vaultCall)
			}
			if _, ok := f.stored(t); ok != c.stored {
				t.Fatalf("record stored = %v, want %v", ok, c.stored)
			}
			if c.name == "audit journal fails" {
				// The record stays: a retry (here through a signer without the journal, on the same
				// store) gets the very signature that was withheld, never a second one.
				m, _ := f.stored(t)
				f2 := &fixture{key: f.key, store: f.store, pkh: f.pkh}
				f2.s, _ = New(t.Context(), Config{Vaults: []vault.Vault{f.vault}, Store: f.store,
					Policies: f.s.cfg.Policies, Logger: f.s.log, Observer: metrics.New("t2")})
				sig, err := f2.sign(t.Context(), msg)
				if err != nil || sig.String() != m.Signature || f.key.calls.Load() != 1 {
					t.Fatalf("retry = %v, %v; stored %s; vault calls %d", sig, err, m.Signature, f.key.calls.Load())
				}
			}
		})
	}
}

// TestSignatureStringUsesTheRecords: a fresh watermarked signature's answer is the base58 its
// record holds, not encoded again; with none (a generic or stored signature) it is encoded.
func TestSignatureStringUsesTheRecords(t *testing.T) {
	t.Parallel()
	f := newFixture(t, tezos.Ed25519, "", nil)
	res, err := f.s.Sign(t.Context(), &SignRequest{PKH: f.pkh, Message: attestationAt(5), Version: 2})
	if err != nil {
		t.Fatal(err)
	}
	if m, _ := f.stored(t); res.encoded == "" || res.encoded != m.Signature {
		t.Fatalf("fresh signature: encoded %q, record %q", res.encoded, m.Signature)
	}
	res.encoded = "recorded" // which one the answer takes
	if got := res.SignatureString(); got != "recorded" {
		t.Fatalf("answer %q: encoded again instead of the record's", got)
	}
	res.encoded = ""
	if got := res.SignatureString(); got != tezos.SignatureString(res.Signature) {
		t.Fatalf("answer %q without a record's, want %q", got, tezos.SignatureString(res.Signature))
	}
}

// TestStoredSignatureReturned: identical bytes get the first signature back, on every curve,
// without asking the vault again; the stored signature is low-S even when the vault was not.
func TestStoredSignatureReturned(t *testing.T) {
	t.Parallel()
	for _, c := range []tezos.Curve{tezos.Ed25519, tezos.Secp256k1, tezos.P256, tezos.BLS} {
		t.Run(string(c), func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, c, "highS", nil)
			first, err := f.sign(t.Context(), attestationAt(5))
			if err != nil {
				t.Fatal(err)
			}
			if e, ok := first.(*crypt.ECDSASignature); ok && e.S.Cmp(new(big.Int).Rsh(e.Curve.Params().N, 1)) > 0 {
				t.Fatal("high-S signature released")
			}
			// Asked again with version 3, then 2 again: for every key type (tz4 included, whose
			// versions 2 and 3 are one ciphersuite) the stored signature.
			for _, v := range []int{2, 3, 2} {
				again, err := f.signVersion(t.Context(), attestationAt(5), v)
				if err != nil || again.String() != first.String() {
					t.Fatalf("identical request (version %d) = %v, %v; first %v", v, again, err, first)
				}
			}
			if c == tezos.BLS {
				// Version 1 is another ciphersuite: a second signature over the same bytes.
				if sig, err := f.signVersion(t.Context(), attestationAt(5), 1); fault.Status(err) != 409 {
					t.Fatalf("version 1 after version 2: %v, %v", sig, err)
				}
			}
			if n := f.key.calls.Load(); n != 1 {
				t.Fatalf("vault asked %d times for one payload", n)
			}
			if m, _ := f.stored(t); m.Signature != first.String() {
				t.Fatalf("stored %q, released %q", m.Signature, first)
			}
			other := attestationAt(5)
			other[len(other)-1] ^= 1 // same level and round, other bytes
			if _, err := f.sign(t.Context(), other); fault.Status(err) != 409 {
				t.Fatalf("conflicting bytes: %v", err)
			}
		})
	}
}

// TestRacingCommitOfSameBytes: another process commits the same bytes (with its own ECDSA
// signature) between our vault call and our commit: we return its signature, not ours.
func TestRacingCommitOfSameBytes(t *testing.T) {
	t.Parallel()
	f := newFixture(t, tezos.Secp256k1, "", nil)
	var theirs string
	f.store.race = func(m *wmmem.Store, k watermark.Key, req watermark.Mark) {
		sig, err := f.key.soft.Sign(t.Context(), attestationAt(5), &req.Digest, vault.SignOptions{})
		if err != nil {
			t.Error(err)
		}
		theirs = tezos.LowS(sig).String()
		req.Signature = theirs
		m.Advance(t.Context(), k, req)
	}
	sig, err := f.sign(t.Context(), attestationAt(5))
	if err != nil || sig.String() != theirs {
		t.Fatalf("Sign = %v, %v; want the racing process's %s", sig, err, theirs)
	}
}

// TestUnusableStoredSignature: a stored signature that does not verify (or parse) is refused
// with a clear error and left as it is.
func TestUnusableStoredSignature(t *testing.T) {
	t.Parallel()
	for _, bad := range []string{"garbage", "spsig1"} {
		f := newFixture(t, tezos.Secp256k1, "", nil)
		k, m, _ := mark(t, attestationAt(5))
		k.PKH = f.pkh
		if bad == "spsig1" { // a valid signature of other bytes
			other, _ := f.key.soft.Sign(t.Context(), nil, &[32]byte{1}, vault.SignOptions{})
			bad = tezos.LowS(other).String()
		}
		m.Signature = bad
		if _, err := f.store.Store.Advance(t.Context(), k, m); err != nil {
			t.Fatal(err)
		}
		sig, err := f.sign(t.Context(), attestationAt(5))
		if sig != nil || fault.Status(err) != 500 || !strings.Contains(err.Error(), "stored signature") {
			t.Fatalf("Sign = %v, %v", sig, err)
		}
		if got, _ := f.stored(t); got.Signature != bad || f.key.calls.Load() != 0 {
			t.Fatalf("record changed to %+v or vault asked (%d)", got, f.key.calls.Load())
		}
	}
}

// TestImportedMarkWithoutSignature: an imported mark for the same bytes refuses an ECDSA key
// and a BLS key (whose signature depends on the signing version, which the mark does not
// record), and lets an Ed25519 key sign (and records that signature).
func TestImportedMarkWithoutSignature(t *testing.T) {
	t.Parallel()
	for c, want := range map[tezos.Curve]int{tezos.Secp256k1: 409, tezos.P256: 409, tezos.Ed25519: 200, tezos.BLS: 409} {
		f := newFixture(t, c, "", nil)
		k, m, _ := mark(t, attestationAt(5))
		k.PKH = f.pkh
		if _, err := f.store.Store.Advance(t.Context(), k, m); err != nil {
			t.Fatal(err)
		}
		sig, err := f.sign(t.Context(), attestationAt(5))
		if got := fault.Status(err); (err == nil && want != 200) || (err != nil && got != want) {
			t.Fatalf("%s: Sign = %v, %v; want %d", c, sig, err, want)
		}
		if stored, _ := f.stored(t); want == 200 && stored.Signature != sig.String() {
			t.Fatalf("%s: signature not recorded: %+v", c, stored)
		}
	}
}

// TestConcurrentIdentical: many identical ECDSA requests at once ask the vault once and all
// get one signature.
func TestConcurrentIdentical(t *testing.T) {
	t.Parallel()
	f := newFixture(t, tezos.P256, "", nil)
	const n = 16
	sigs := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			sig, err := f.sign(t.Context(), attestationAt(7))
			if err != nil {
				t.Error(err)
				return
			}
			sigs[i] = sig.String()
		})
	}
	wg.Wait()
	for i := range sigs {
		if sigs[i] != sigs[0] {
			t.Fatalf("two signatures for one payload: %s, %s", sigs[0], sigs[i])
		}
	}
	if c := f.key.calls.Load(); c != 1 {
		t.Fatalf("vault asked %d times", c)
	}
	if h := f.s.slots.held(); h != 0 {
		t.Fatalf("%d slot locks left", h)
	}
}

// TestKeysNeverForgotten: a failing List keeps the vault's keys, and a lookup miss by a client
// that has gone cannot cut the reload short.
func TestKeysNeverForgotten(t *testing.T) {
	t.Parallel()
	f := newFixture(t, tezos.Ed25519, "", nil)
	throttled := errors.New("ThrottlingException")
	f.vault.listErr.Store(&throttled)
	ctx, cancel := context.WithCancel(t.Context())
	cancel() // the client hung up
	if _, err := f.s.PublicKey(ctx, "tz1Ke2h7sDdakHJQh8WX4Z372du1KChsksyU"); err == nil {
		t.Fatal("unknown key found")
	}
	// The reload started by the miss runs to its end whatever the client did; wait for it.
	f.s.refresh.Lock()
	done := f.s.reloading
	f.s.refresh.Unlock()
	if done != nil {
		<-done
	}
	if f.vault.sawCanceled.Load() {
		t.Fatal("the reload listed with the hung-up client's context")
	}
	if _, err := f.s.PublicKey(t.Context(), f.pkh); err != nil {
		t.Fatalf("key forgotten after a failed List: %v", err)
	}
	if _, err := f.sign(t.Context(), attestationAt(5)); err != nil {
		t.Fatalf("cannot sign after a failed List: %v", err)
	}
	// Misses do not relist more than once per interval.
	before := f.vault.lists.Load()
	for range 20 {
		f.s.PublicKey(t.Context(), "tz1Ke2h7sDdakHJQh8WX4Z372du1KChsksyU")
	}
	if after := f.vault.lists.Load(); after-before > 1 {
		t.Fatalf("%d relists for 20 misses", after-before)
	}
}

// TestSoftwareKeyFaultReleasesNothing: an in-process key checks its own signature instead of the
// signer verifying it (vault.CheckedSigner); when that check fails (here the public half of an
// Ed25519 key is corrupted in memory after the key was listed), the request gets 500 and no
// signature leaves nor is recorded.
func TestSoftwareKeyFaultReleasesNothing(t *testing.T) {
	t.Parallel()
	priv, _ := tezos.GenerateKey(tezos.Ed25519)
	ed := priv.(crypt.Ed25519PrivateKey)
	key := &vault.SoftwareKey{Priv: ed, Ref: "k"}
	pkh := priv.Public().Hash().String()
	store := wmmem.NewStore()
	s, err := New(t.Context(), Config{Vaults: []vault.Vault{&fakeVault{keys: []vault.Key{key}}}, Store: store,
		Observer: metrics.New("t"), Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Policies: map[string]*policy.Policy{pkh: {PKH: pkh, Requests: []request.Kind{request.Attestation, request.Generic}, Ops: []string{"transaction"}}}})
	if err != nil {
		t.Fatal(err)
	}
	res, err := s.Sign(t.Context(), &SignRequest{PKH: pkh, Message: attestationAt(5), Version: 2})
	if err != nil || !tezos.Verify(priv.Public(), res.Signature, attestationAt(5), 2) {
		t.Fatalf("healthy key: %v, %v", res.Signature, err)
	}
	ed[40] ^= 1 // a bit of the public half, after the key was listed
	res, err = s.Sign(t.Context(), &SignRequest{PKH: pkh, Message: attestationAt(6), Version: 2})
	if res.Signature != nil || fault.Status(err) != 500 {
		t.Fatalf("corrupted key: %v, %v (status %d), want no signature and 500", res.Signature, err, fault.Status(err))
	}
	req, _ := request.Decode(attestationAt(6), 2)
	m, _, err := store.Load(t.Context(), watermark.Key{Chain: req.ChainID(), PKH: pkh, Class: watermark.Attestation})
	if err != nil || m.Level != 5 {
		t.Fatalf("the refused request moved the record: %+v, %v", m, err)
	}
}

// TestTz5Keys: a tz5 key signs generic operations with version 3 only (0, 1 and 2 are refused
// with 400 before the vault is asked), and its signature is verified before it leaves, whether
// the key is in process (vault.SoftwareKey, whose SignChecked leaves ML-DSA-44 to verification)
// or behind a backend: a wrong signature is never released.
func TestTz5Keys(t *testing.T) {
	t.Parallel()
	msg := tv.Hex(tv.LoadPolicyHex()["transaction ok"])
	for _, mode := range []string{"", "wrong", "software"} {
		f := newFixture(t, tezos.MLDSA44, mode, nil)
		if mode == "software" {
			// Through the vault.CheckedSigner path of file and mem keys.
			f.vault.keys = []vault.Key{f.key.soft}
			f.s, _ = New(t.Context(), Config{Vaults: []vault.Vault{f.vault}, Store: f.store, Policies: f.s.cfg.Policies,
				Logger: f.s.log, Observer: metrics.New("t2")})
		}
		for _, v := range []int{0, 1, 2} {
			sig, err := f.signVersion(t.Context(), msg, v)
			if sig != nil || fault.Status(err) != 400 || !errors.Is(err, tezos.ErrMLDSA44Version) {
				t.Fatalf("%q, version %d: %v, %v", mode, v, sig, err)
			}
		}
		if n := f.key.calls.Load(); n != 0 {
			t.Fatalf("%q: vault asked %d times for refused versions", mode, n)
		}
		sig, err := f.signVersion(t.Context(), msg, 3)
		switch mode {
		case "wrong":
			if sig != nil || fault.Status(err) != 500 || !strings.Contains(err.Error(), "invalid signature") {
				t.Fatalf("wrong signature: %v, %v", sig, err)
			}
		default:
			if err != nil || !tezos.Verify(f.key.soft.PublicKey(), sig, msg, 3) {
				t.Fatalf("%q: %v, %v", mode, sig, err)
			}
		}
	}
}

// TestPriority: only a body that starts like a block or consensus operation, is no longer than
// one, and is for a configured key allowed that kind skips the generic queue; the checks read no
// more than the first byte and the length.
func TestPriority(t *testing.T) {
	t.Parallel()
	f := newFixture(t, tezos.Ed25519, "", nil) // attestation, preattestation, generic
	att := attestationAt(5)
	for _, c := range []struct {
		name string
		pkh  string
		msg  []byte
		want bool
	}{
		{"attestation", f.pkh, att, true},
		{"preattestation", f.pkh, append([]byte{0x12}, att[1:]...), true},
		{"block, not allowed", f.pkh, append([]byte{0x11}, att[1:]...), false},
		{"generic", f.pkh, append([]byte{0x03}, att[1:]...), false},
		{"unknown key", "tz1Ke2h7sDdakHJQh8WX4Z372du1KChsksyU", att, false},
		{"longer than any consensus body", f.pkh, append(append([]byte{}, att...), make([]byte, MaxPriorityBytes)...), false},
		{"at the bound", f.pkh, append(append([]byte{}, att...), make([]byte, MaxPriorityBytes-len(att))...), true},
		{"one byte past it", f.pkh, append(append([]byte{}, att...), make([]byte, MaxPriorityBytes-len(att)+1)...), false},
		{"empty", f.pkh, nil, false},
	} {
		if got := f.s.Priority(c.pkh, c.msg); got != c.want {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
}
