package signer

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ecadlabs/gotez/v2/crypt"

	"github.com/signatory-go/signatory/internal/fault"
	"github.com/signatory-go/signatory/internal/policy"
	"github.com/signatory-go/signatory/internal/tezos"
	"github.com/signatory-go/signatory/internal/vault"
	wmmem "github.com/signatory-go/signatory/internal/watermark/mem"
)

// authObserver records the statuses of failed authentications.
type authObserver struct {
	Nop
	failed []int
}

func (o *authObserver) AuthFailed(status int, _ string) { o.failed = append(o.failed, status) }

// TestAuthenticateRefusals: with server.authorized_keys set, a request without a signature gets
// 401, one too long for any authorized key 400 before it is decoded, one that does not decode
// 400, one by another key 403, and each failure is told to the observer; a signature by an
// authorized key signs. Without authorized keys, none is asked for and none is listed.
func TestAuthenticateRefusals(t *testing.T) {
	t.Parallel()
	client, _ := tezos.GenerateKey(tezos.Ed25519)
	stranger, _ := tezos.GenerateKey(tezos.Ed25519)
	obs := &authObserver{}
	f := newFixture(t, tezos.Ed25519, "", func(c *Config) {
		c.AuthorizedKeys = []crypt.PublicKey{client.Public()}
		c.Observer = obs
	})
	pkh, err := tezos.ParsePublicKeyHash(f.pkh)
	if err != nil {
		t.Fatal(err)
	}
	level := int32(0)
	sign := func(auth string) error {
		level++
		_, err := f.s.Sign(t.Context(), &SignRequest{PKH: f.pkh, Message: attestationAt(level), Version: 2, Authentication: auth})
		return err
	}
	by := func(k crypt.PrivateKey) string {
		sig, err := k.Sign(tezos.AuthenticatedBytes(pkh, attestationAt(level+1)))
		if err != nil {
			t.Fatal(err)
		}
		return sig.String()
	}
	for _, c := range []struct {
		name, auth string
		kind       fault.Kind
		msg        string
	}{
		{"none", "", fault.Unauthorized, "missing authentication signature"},
		{"too long", strings.Repeat("1", tezos.MaxBase58Length+1), fault.BadRequest, "too long"},
		{"not base58", "edsigNotASignature", fault.BadRequest, ""},
		{"another key", by(stranger), fault.Forbidden, "invalid authentication signature"},
	} {
		if err := sign(c.auth); fault.KindOf(err) != c.kind || !strings.Contains(fmt.Sprint(err), c.msg) {
			t.Errorf("%s: %v (want %v %q)", c.name, err, c.kind, c.msg)
		}
	}
	if want := []int{401, 400, 400, 403}; fmt.Sprint(obs.failed) != fmt.Sprint(want) {
		t.Fatalf("failures told to the observer: %v, want %v", obs.failed, want)
	}
	if err := sign(by(client)); err != nil {
		t.Fatalf("an authorized client: %v", err)
	}
	if got := f.s.AuthorizedKeyHashes(); len(got) != 1 || got[0] != client.Public().Hash().String() {
		t.Fatalf("AuthorizedKeyHashes: %v", got)
	}
	if got := newFixture(t, tezos.Ed25519, "", nil).s.AuthorizedKeyHashes(); got != nil {
		t.Fatalf("AuthorizedKeyHashes without authorized keys: %#v, want nil", got)
	}
}

// errKey is a vault key whose Sign fails with err.
type errKey struct {
	vault.Key
	err error
}

func (k errKey) Sign(context.Context, []byte, *[32]byte, vault.SignOptions) (crypt.Signature, error) {
	return nil, k.err
}

// TestSignCheckedErrors: a vault's error keeps its kind (a 503 stays a 503, not "invalid
// signature"); a failed check is an Internal error whose client message says the vault returned
// an invalid signature.
func TestSignCheckedErrors(t *testing.T) {
	t.Parallel()
	priv, _ := tezos.GenerateKey(tezos.P256)
	soft := &vault.SoftwareKey{Priv: priv, Ref: "k"}
	msg := attestationAt(1)
	down := fault.New(fault.Unavailable, "KMS throttled")
	if _, _, err := SignChecked(t.Context(), errKey{soft, down}, priv.Public(), msg, nil, 2); !errors.Is(err, down) || fault.KindOf(err) != fault.Unavailable {
		t.Fatalf("a vault that is down: %v", err)
	}
	for _, e := range []error{vault.ErrFault, fmt.Errorf("kms: %w", vault.ErrInvalidSignature)} {
		_, _, err := SignChecked(t.Context(), errKey{soft, e}, priv.Public(), msg, nil, 2)
		if msg, ok := fault.ClientMsg(err); fault.KindOf(err) != fault.Internal || !ok || msg != "the vault returned an invalid signature" {
			t.Fatalf("%v: %v (client message %q)", e, err, msg)
		}
	}
}

// TestMissReloadBounded: the relisting a lookup miss starts bounds each vault's List
// (ReloadTimeout): a vault that never answers must not hold every later miss.
func TestMissReloadBounded(t *testing.T) {
	t.Parallel()
	f := newFixture(t, tezos.Ed25519, "", nil)
	if n := f.vault.deadlines.Load(); n != 0 {
		t.Fatalf("the start-up listing had a deadline (%d)", n)
	}
	if _, err := f.s.PublicKey(t.Context(), "tz1Ke2h7sDdakHJQh8WX4Z372du1KChsksyU"); err == nil {
		t.Fatal("unknown key found")
	}
	if n := f.vault.deadlines.Load(); n != 1 {
		t.Fatalf("the miss's relisting ran %d Lists with a deadline, want 1", n)
	}
}

// TestMissFindsNewKey: a key added to a vault while the signer runs is found by the relisting a
// miss starts; a miss while that relisting runs waits for it instead of answering 404; and a miss
// after ReloadInterval relists again.
func TestMissFindsNewKey(t *testing.T) {
	t.Parallel()
	f := newFixture(t, tezos.Ed25519, "", nil)
	priv, _ := tezos.GenerateKey(tezos.Ed25519)
	added := &vault.SoftwareKey{Priv: priv, Ref: "new"}
	newPKH := priv.Public().Hash().String()
	gate := make(chan struct{})
	f.vault.mu.Lock()
	f.vault.keys = append(f.vault.keys, added)
	f.vault.gate = gate
	f.vault.mu.Unlock()
	lists := f.vault.lists.Load()
	found := make(chan error, 1)
	go func() { _, err := f.s.PublicKey(t.Context(), newPKH); found <- err }()
	for f.vault.lists.Load() == lists { // the first miss's relisting is under way, held by the gate
		runtime.Gosched()
	}
	// A second miss meanwhile waits for that relisting (here until its own deadline, the gate
	// still closed) instead of answering 404 at once.
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	_, err := f.s.PublicKey(ctx, newPKH)
	cancel()
	if fault.KindOf(err) != fault.Unavailable {
		t.Fatalf("a miss during the relisting: %v (want it to wait, then give up with its context)", err)
	}
	close(gate)
	if err := <-found; err != nil {
		t.Fatalf("a key added to the vault: %v", err)
	}
	if _, err := f.s.PublicKey(t.Context(), newPKH); err != nil {
		t.Fatal(err)
	}
	if n := f.vault.lists.Load() - lists; n != 1 {
		t.Fatalf("misses during one relisting listed %d times, want 1", n)
	}
	// After ReloadInterval, a miss relists again.
	f.vault.mu.Lock()
	f.vault.gate = nil
	f.vault.mu.Unlock()
	f.s.refresh.Lock()
	f.s.lastRef = time.Now().Add(-ReloadInterval)
	f.s.refresh.Unlock()
	if _, err := f.s.PublicKey(t.Context(), "tz1Ke2h7sDdakHJQh8WX4Z372du1KChsksyU"); err == nil {
		t.Fatal("unknown key found")
	}
	if n := f.vault.lists.Load() - lists; n != 2 {
		t.Fatalf("a miss after the interval: %d lists in all, want 2", n)
	}
}

// TestShareMarksRefusals: a threshold member's statement is made only for a well-formed key hash,
// chain id and a 32-byte nonce (the requester's freshness): anything else is 400 before any
// policy or key is read.
func TestShareMarksRefusals(t *testing.T) {
	t.Parallel()
	f := newFixture(t, tezos.Ed25519, "", nil)
	nonce := strings.Repeat("00", 32)
	for _, c := range []struct{ name, pkh, chain, nonce string }{
		{"key hash", "tz1NotAKeyHash", "NetXdQprcVkpaWU", nonce},
		{"chain", f.pkh, "NetXnotachain", nonce},
		{"short nonce", f.pkh, "NetXdQprcVkpaWU", "00"},
		{"long nonce", f.pkh, "NetXdQprcVkpaWU", nonce + "00"},
		{"not hex", f.pkh, "NetXdQprcVkpaWU", strings.Repeat("zz", 32)},
	} {
		if _, err := f.s.ShareMarks(t.Context(), c.pkh, c.chain, c.nonce); fault.KindOf(err) != fault.BadRequest {
			t.Errorf("%s: %v (want 400)", c.name, err)
		}
	}
	if _, err := f.s.ShareMarks(t.Context(), f.pkh, "NetXdQprcVkpaWU", nonce); fault.KindOf(err) != fault.Forbidden {
		t.Fatalf("a key that is no share: %v (want 403)", err)
	}
}

// TestDeterministicNonceRefusals: a deterministic nonce (the baker's secret until it reveals it)
// is given only for a well-formed key hash, a key listed in the config whose policy allows it, to
// a client its authorized_keys name; Supports_deterministic_nonces says no for an unlisted key.
// The nonce, and its hash when asked, are the key's own.
func TestDeterministicNonceRefusals(t *testing.T) {
	t.Parallel()
	client, _ := tezos.GenerateKey(tezos.Ed25519)
	other, _ := tezos.GenerateKey(tezos.Ed25519)
	priv, _ := tezos.GenerateKey(tezos.Ed25519)
	soft := &vault.SoftwareKey{Priv: priv, Ref: "k"}
	pkh := priv.Public().Hash().String()
	unlisted, _ := tezos.GenerateKey(tezos.Ed25519)
	pol := &policy.Policy{PKH: pkh, AllowDeterministicNonce: true, AuthorizedKeys: []string{client.Public().Hash().String()}}
	s, err := New(t.Context(), Config{Vaults: []vault.Vault{&fakeVault{keys: []vault.Key{soft, &vault.SoftwareKey{Priv: unlisted, Ref: "u"}}}},
		Store: wmmem.NewStore(), Policies: map[string]*policy.Policy{pkh: pol},
		AuthorizedKeys: []crypt.PublicKey{client.Public(), other.Public()}})
	if err != nil {
		t.Fatal(err)
	}
	data := []byte("seed nonce data")
	by := func(k crypt.PrivateKey, pkh string) crypt.Signature {
		p, _ := tezos.ParsePublicKeyHash(pkh)
		sig, err := k.Sign(tezos.AuthenticatedBytes(p, data))
		if err != nil {
			t.Fatal(err)
		}
		return sig
	}
	ask := func(pkh string, auth crypt.Signature, hash bool) ([32]byte, error) {
		return s.DeterministicNonce(t.Context(), &NonceRequest{PKH: pkh, Data: data, AuthSignature: auth, Hash: hash})
	}
	want, _ := tezos.DeterministicNonce(priv, data)
	if got, err := ask(pkh, by(client, pkh), false); err != nil || got != want {
		t.Fatalf("the authorized client: %x %v", got, err)
	}
	if got, err := ask(pkh, by(client, pkh), true); err != nil || got != tezos.DeterministicNonceHash(want) {
		t.Fatalf("the nonce's hash: %x %v", got, err)
	}
	unlistedPKH := unlisted.Public().Hash().String()
	for _, c := range []struct {
		name, pkh string
		auth      crypt.Signature
		kind      fault.Kind
	}{
		{"key hash", "tz1NotAKeyHash", by(client, pkh), fault.BadRequest},
		{"no authentication", pkh, nil, fault.Unauthorized},
		{"a client the key does not name", pkh, by(other, pkh), fault.Forbidden},
		{"a key not listed", unlistedPKH, by(client, unlistedPKH), fault.Forbidden},
	} {
		if _, err := ask(c.pkh, c.auth, false); fault.KindOf(err) != c.kind {
			t.Errorf("%s: %v (want %v)", c.name, err, c.kind)
		}
	}
	// A key listed, and in no vault: 404.
	gone, _ := tezos.GenerateKey(tezos.Ed25519)
	gonePKH := gone.Public().Hash().String()
	s.cfg.Policies[gonePKH] = &policy.Policy{PKH: gonePKH, AllowDeterministicNonce: true}
	if _, err := ask(gonePKH, by(client, gonePKH), false); fault.KindOf(err) != fault.NotFound {
		t.Fatalf("a key in no vault: %v", err)
	}
	if _, err := s.SupportsDeterministicNonces(t.Context(), gonePKH); fault.KindOf(err) != fault.NotFound {
		t.Fatalf("Supports for a key in no vault: %v", err)
	}
	pol.AllowDeterministicNonce = false
	if _, err := ask(pkh, by(client, pkh), false); fault.KindOf(err) != fault.Forbidden {
		t.Fatalf("a policy without allow_deterministic_nonce: %v", err)
	}
	if ok, err := s.SupportsDeterministicNonces(t.Context(), pkh); err != nil || ok {
		t.Fatalf("Supports for a key not allowed: %v %v", ok, err)
	}
	if _, err := s.SupportsDeterministicNonces(t.Context(), unlistedPKH); fault.KindOf(err) != fault.Forbidden {
		t.Fatalf("Supports for a key not listed: %v", err)
	}
	if _, err := s.SupportsDeterministicNonces(t.Context(), "tz1NotAKeyHash"); fault.KindOf(err) != fault.BadRequest {
		t.Fatalf("Supports for a malformed key hash: %v", err)
	}
}

// TestTz5ClientAuthentication: a tz5 client in server.authorized_keys authenticates with its
// signature in base58 (exactly MLDSA44SignatureLength characters) or already decoded (the socket
// transports); without a tz5 key authorized, a tz5 signature is refused as too long either way.
func TestTz5ClientAuthentication(t *testing.T) {
	t.Parallel()
	client, err := tezos.GenerateKey(tezos.MLDSA44)
	if err != nil {
		t.Fatal(err)
	}
	other, _ := tezos.GenerateKey(tezos.Ed25519)
	for _, c := range []struct {
		name   string
		keys   []crypt.PublicKey
		status int
	}{
		{"tz5 authorized", []crypt.PublicKey{other.Public(), client.Public()}, 200},
		{"no tz5 authorized", []crypt.PublicKey{other.Public()}, 400},
	} {
		f := newFixture(t, tezos.Ed25519, "", func(cfg *Config) { cfg.AuthorizedKeys = c.keys })
		pkh, _ := tezos.ParsePublicKeyHash(f.pkh)
		for i, decoded := range []bool{false, true} {
			msg := attestationAt(int32(10 + i))
			sig, err := client.Sign(tezos.AuthenticatedBytes(pkh, msg))
			if err != nil {
				t.Fatal(err)
			}
			r := &SignRequest{PKH: f.pkh, Message: msg, Version: 2}
			if decoded {
				r.AuthSignature = sig
			} else {
				r.Authentication = sig.String()
				if len(r.Authentication) != tezos.MLDSA44SignatureLength {
					t.Fatalf("an mdsig of %d characters", len(r.Authentication))
				}
			}
			res, err := f.s.Sign(t.Context(), r)
			if c.status == 200 {
				if err != nil || res.Client != client.Public().Hash().String() {
					t.Fatalf("%s, decoded %v: %v (client %q)", c.name, decoded, err, res.Client)
				}
			} else if fault.Status(err) != c.status || !strings.Contains(err.Error(), "too long") {
				t.Fatalf("%s, decoded %v: %v, want %d", c.name, decoded, err, c.status)
			}
		}
	}
}

// TestCheckJWTUser: a key's jwt_users binds only requests that carry a JWT user; a key without
// the list takes any user.
func TestCheckJWTUser(t *testing.T) {
	t.Parallel()
	pol := &policy.Policy{PKH: "tz1x", JWTUsers: []string{"alice"}}
	for user, ok := range map[string]bool{"": true, "alice": true, "bob": false} {
		if err := checkJWTUser(pol, user); (err == nil) != ok {
			t.Errorf("user %q: %v", user, err)
		}
	}
	if err := checkJWTUser(&policy.Policy{PKH: "tz1x"}, "bob"); err != nil {
		t.Fatalf("a key without jwt_users: %v", err)
	}
}

// TestListingAcrossVaults: a vault that cannot list, or that holds a key another vault holds
// too, hides none of the other keys; Keys lists them sorted by key hash.
func TestListingAcrossVaults(t *testing.T) {
	t.Parallel()
	var soft []*vault.SoftwareKey
	for range 3 {
		k, _ := tezos.GenerateKey(tezos.Ed25519)
		soft = append(soft, &vault.SoftwareKey{Priv: k, Ref: "k"})
	}
	broken := &fakeVault{}
	e := errors.New("throttled")
	broken.listErr.Store(&e)
	a := &fakeVault{keys: []vault.Key{soft[0]}}
	b := &fakeVault{keys: []vault.Key{soft[0], soft[1], soft[2]}}
	s, err := New(t.Context(), Config{Vaults: []vault.Vault{broken, a, b}, Store: wmmem.NewStore()})
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, k := range soft {
		want = append(want, k.PublicKey().Hash().String())
	}
	slices.Sort(want)
	var got []string
	for _, k := range s.Keys() {
		got = append(got, k.PKH)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("Keys = %v, want %v", got, want)
	}
}
