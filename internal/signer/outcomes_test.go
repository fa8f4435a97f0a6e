package signer

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/rand"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ecadlabs/gotez/v2/crypt"

	"github.com/signatory-go/signatory/internal/audit"
	"github.com/signatory-go/signatory/internal/fault"
	"github.com/signatory-go/signatory/internal/policy"
	"github.com/signatory-go/signatory/internal/policyhook"
	"github.com/signatory-go/signatory/internal/request"
	"github.com/signatory-go/signatory/internal/spending"
	"github.com/signatory-go/signatory/internal/tezos"
	"github.com/signatory-go/signatory/internal/vault"
	"github.com/signatory-go/signatory/internal/watermark"
	wmmem "github.com/signatory-go/signatory/internal/watermark/mem"
)

// recorder is an Observer that writes each call down as one line.
type recorder struct {
	mu    sync.Mutex
	calls []string
}

func (o *recorder) add(s ...string) {
	o.mu.Lock()
	o.calls = append(o.calls, strings.Join(s, " "))
	o.mu.Unlock()
}

func (o *recorder) PolicyViolation(rule, pkh string)      { o.add("violation", rule) }
func (o *recorder) SignFailed(v string, st int, _ string) { o.add("failed", v, http.StatusText(st)) }
func (o *recorder) Signed(v, _, kind, _ string, _ time.Duration, _ map[string]int, _ bool, _ int32) {
	o.add("signed", v, kind)
}
func (o *recorder) WatermarkPassed(backend, kind string) { o.add("passed", backend, kind) }
func (o *recorder) WatermarkStep(backend, kind, result string, _ time.Duration) {
	o.add("step", backend, kind, result)
}
func (o *recorder) WatermarkRejected(_, kind, _, reason string)    { o.add("rejected", kind, reason) }
func (o *recorder) VaultAnswered(v, curve string, _ time.Duration) { o.add("vault", v, curve) }
func (o *recorder) AuthFailed(int, string)                         {}

// take returns the calls so far and forgets them.
func (o *recorder) take() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	out := o.calls
	o.calls = nil
	return out
}

// TestObserverSeesEachStep: the observer (the daemon's metrics) is told of every step of a
// request in order: a generic request passes the watermark step; a consensus request's step
// succeeds, is rejected or fails with the store; a request refused by the policy hook is a
// violation of "policy_hook"; a vault failure is a failed signing.
func TestObserverSeesEachStep(t *testing.T) {
	t.Parallel()
	obs := &recorder{}
	var hookSaysNo atomic.Bool
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if hookSaysNo.Load() {
			w.WriteHeader(http.StatusForbidden)
		}
	}))
	t.Cleanup(hook.Close)
	f := newFixture(t, tezos.Ed25519, "", func(c *Config) {
		c.Observer = obs
		c.Hook = &policyhook.Hook{Address: hook.URL, Timeout: time.Minute, Client: hook.Client()}
	})
	ctx := t.Context()
	steps := []struct {
		name string
		do   func() error
		want []string
	}{
		{"generic", func() error { _, err := f.sign(ctx, batch(t, tx(1, 1, payee))); return err },
			[]string{"passed mem generic", "vault fake ed25519", "signed fake generic"}},
		{"attestation", func() error { _, err := f.sign(ctx, attestationAt(5)); return err },
			[]string{"vault fake ed25519", "step mem attestation success", "signed fake attestation"}},
		{"the same bytes again", func() error { _, err := f.sign(ctx, attestationAt(5)); return err },
			[]string{"step mem attestation success", "signed fake attestation"}},
		{"below the mark", func() error {
			if _, err := f.sign(ctx, attestationAt(4)); fault.KindOf(err) != fault.Conflict {
				return errors.New("not refused")
			}
			return nil
		}, []string{"step mem attestation rejected", "rejected attestation watermark validation failed", "failed fake Conflict"}},
		{"store fails", func() error {
			f.store.loadErr = errors.New("disk gone")
			defer func() { f.store.loadErr = nil }()
			if _, err := f.sign(ctx, attestationAt(6)); fault.KindOf(err) != fault.Internal {
				return errors.New("not a store failure")
			}
			return nil
		}, []string{"step mem attestation error", "failed fake Internal Server Error"}},
		{"hook refuses", func() error {
			hookSaysNo.Store(true)
			defer hookSaysNo.Store(false)
			if _, err := f.sign(ctx, attestationAt(6)); fault.Status(err) != 403 {
				return errors.New("not refused")
			}
			return nil
		}, []string{"violation policy_hook"}},
		{"vault fails", func() error {
			f.key.mode = "error"
			defer func() { f.key.mode = "" }()
			if _, err := f.sign(ctx, attestationAt(6)); fault.Status(err) != 500 {
				return errors.New("not a vault failure")
			}
			return nil
		}, []string{"vault fake ed25519", "failed fake Internal Server Error"}},
	}
	for _, s := range steps {
		if err := s.do(); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if got := obs.take(); !slices.Equal(got, s.want) {
			t.Fatalf("%s: the observer was told\n%q\nwant\n%q", s.name, got, s.want)
		}
	}
}

// TestNewDefaults: a Config without a logger, an observer or a clock gets the defaults, and a
// request that logs, counts and reads the clock is answered.
func TestNewDefaults(t *testing.T) {
	t.Parallel()
	priv, _ := tezos.GenerateKey(tezos.Ed25519)
	pkh := priv.Public().Hash().String()
	pol := parsePolicy(t, pkh, "allow: {generic: [transaction], attestation: []}\nlimits: {max_operations: {count: 5, period: 1h}}\n")
	s, err := New(t.Context(), Config{Vaults: []vault.Vault{&fakeVault{keys: []vault.Key{&vault.SoftwareKey{Priv: priv, Ref: "k"}}}},
		Store: wmmem.NewStore(), Policies: map[string]*policy.Policy{pkh: pol}})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		msg    []byte
		status int
	}{{batch(t, tx(1, 1, payee)), 200}, {attestationAt(5), 200}, {attestationAt(4), 409}} {
		_, err := s.Sign(t.Context(), &SignRequest{PKH: pkh, Message: c.msg, Version: 2})
		if fault.Status(err) != c.status && !(err == nil && c.status == 200) {
			t.Fatalf("%x: %v, want %d", c.msg[:1], err, c.status)
		}
	}
}

// TestAuditEntries: the audit journal's entry names the authenticated client beside its address,
// the chain, level and round of a consensus request, and a refusal's status and reason.
func TestAuditEntries(t *testing.T) {
	t.Parallel()
	client, _ := tezos.GenerateKey(tezos.Ed25519)
	path := filepath.Join(t.TempDir(), "audit.log")
	j, err := audit.Open(path, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { j.Close() })
	f := newFixture(t, tezos.Ed25519, "", func(c *Config) {
		c.Audit = j
		c.AuthorizedKeys = []crypt.PublicKey{client.Public()}
	})
	pkh, _ := tezos.ParsePublicKeyHash(f.pkh)
	sign := func(msg []byte) error {
		auth, err := client.Sign(tezos.AuthenticatedBytes(pkh, msg))
		if err != nil {
			t.Fatal(err)
		}
		_, err = f.s.Sign(t.Context(), &SignRequest{PKH: f.pkh, Message: msg, Version: 2, Authentication: auth.String(), ClientIP: "192.0.2.7"})
		return err
	}
	if err := sign(attestationAt(7)); err != nil {
		t.Fatal(err)
	}
	if err := sign(attestationAt(6)); fault.Status(err) != 409 {
		t.Fatalf("below the mark: %v", err)
	}
	_, m, chain := mark(t, attestationAt(7))
	var got []audit.Entry
	file, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	for sc := bufio.NewScanner(file); sc.Scan(); {
		var e audit.Entry
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatal(err)
		}
		got = append(got, e)
	}
	if len(got) != 2 {
		t.Fatalf("%d entries, want 2", len(got))
	}
	wantClient := "192.0.2.7 " + client.Public().Hash().String()
	for i, level := range []int32{7, 6} {
		e := got[i]
		if e.Client != wantClient || e.Chain != chain || e.Level == nil || *e.Level != level || e.Round == nil || *e.Round != m.Round || e.Kind != "attestation" {
			t.Fatalf("entry %d: %+v (client %q, chain %s, level %d)", i, e, wantClient, chain, level)
		}
	}
	if got[0].Outcome != "signed" || got[0].Status != 200 || got[0].Reason != "" {
		t.Fatalf("the signature's entry: %+v", got[0])
	}
	if got[1].Outcome != "refused" || got[1].Status != 409 || !strings.Contains(got[1].Reason, "watermark") {
		t.Fatalf("the refusal's entry: %+v", got[1])
	}
	// The journal is the signer's: its health is reported, and Close closes it.
	if h := f.s.Health(t.Context()); len(h) != 3 || h["audit"] != nil {
		t.Fatalf("Health = %v, want the store, the vault and the journal, all well", h)
	}
	if err := f.s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := j.Record(t.Context(), audit.Entry{}); err == nil {
		t.Fatal("the journal still records after the signer's Close")
	}
}

// TestSignResult: Sign names the decoded request and the vault even when it refuses (the server
// logs and counts by them), and a key hash that does not parse is 400.
func TestSignResult(t *testing.T) {
	t.Parallel()
	f := newFixture(t, tezos.Ed25519, "", nil)
	f.sign(t.Context(), attestationAt(5))
	res, err := f.s.Sign(t.Context(), &SignRequest{PKH: f.pkh, Message: attestationAt(4), Version: 2})
	if fault.Status(err) != 409 || res.Request == nil || res.Request.Level != 4 || res.Vault != "fake" || res.Signature != nil {
		t.Fatalf("a refusal: %+v, %v", res, err)
	}
	if _, err := f.s.Sign(t.Context(), &SignRequest{PKH: "tz1NotAKeyHash", Message: attestationAt(6), Version: 2}); fault.Status(err) != 400 {
		t.Fatalf("a key hash that does not parse: %v (want 400)", err)
	}
}

// TestSlotWaitGivesUp: a request waiting for its slot (another request of the same level and
// round is at the vault) gives up with 503 when its client leaves, and leaves no slot behind; the
// slot is one lock for all its requests.
func TestSlotWaitGivesUp(t *testing.T) {
	t.Parallel()
	f := newFixture(t, tezos.Ed25519, "", nil)
	req, err := request.Decode(attestationAt(5), 2)
	if err != nil {
		t.Fatal(err)
	}
	wk, m := slotOf(f.pkh, req)
	slot := slotKey{wk, m.Level, m.Round}
	unlock, err := f.s.slots.lock(t.Context(), slot)
	if err != nil {
		t.Fatal(err)
	}
	if n := f.s.slots.held(); n != 1 {
		t.Fatalf("%d slots held, want 1", n)
	}
	gone, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := f.sign(gone, attestationAt(5)); fault.Status(err) != 503 {
		t.Fatalf("a request whose client left while its slot was held: %v (want 503)", err)
	}
	if f.key.calls.Load() != 0 {
		t.Fatal("the vault was asked")
	}
	if n := f.s.slots.held(); n != 1 {
		t.Fatalf("%d slots held after the waiter left, want 1", n)
	}
	unlock()
	if n := f.s.slots.held(); n != 0 {
		t.Fatalf("%d slots held after the holder left, want 0", n)
	}
	if _, err := f.sign(t.Context(), attestationAt(5)); err != nil {
		t.Fatal(err)
	}
}

// TestRacingCommitOfOtherSignature: when another process commits the same bytes first with
// another signature (an HSM's ECDSA signatures differ each time), its signature is the one
// released: two different signatures never leave for one payload.
func TestRacingCommitOfOtherSignature(t *testing.T) {
	t.Parallel()
	f := newFixture(t, tezos.P256, "", nil)
	priv := (*ecdsa.PrivateKey)(f.key.soft.Priv.(*crypt.ECDSAPrivateKey))
	var theirs string
	f.store.race = func(m *wmmem.Store, k watermark.Key, req watermark.Mark) {
		r, s, err := ecdsa.Sign(rand.Reader, priv, req.Digest[:]) // a random nonce: another signature
		if err != nil {
			t.Error(err)
		}
		theirs = tezos.LowS(&crypt.ECDSASignature{R: r, S: s, Curve: priv.Curve}).String()
		req.Signature = theirs
		m.Advance(t.Context(), k, req)
	}
	sig, err := f.sign(t.Context(), attestationAt(5))
	if err != nil || sig.String() != theirs {
		t.Fatalf("Sign = %v, %v; want the racing process's %s", sig, err, theirs)
	}
}

// classFailStore fails every Load of a class other than ok's.
type classFailStore struct {
	*wmmem.Store
	ok watermark.Class
}

func (s *classFailStore) Load(ctx context.Context, k watermark.Key) (watermark.Mark, bool, error) {
	if k.Class != s.ok {
		return watermark.Mark{}, false, errors.New("disk gone")
	}
	return s.Store.Load(ctx, k)
}

// TestShareHistoryStoreError: a threshold share whose history cannot be read (the store fails
// on the other classes) is a store failure, 500, not a refusal by the mark.
func TestShareHistoryStoreError(t *testing.T) {
	t.Parallel()
	f := newFixture(t, tezos.BLS, "", func(c *Config) {
		c.Store = &classFailStore{Store: wmmem.NewStore(), ok: watermark.Attestation}
		for _, p := range c.Policies {
			p.ShareOf = "BLpkGroup"
		}
	})
	if _, err := f.sign(t.Context(), attestationAt(5)); fault.Status(err) != 500 {
		t.Fatalf("a share whose history cannot be read: %v (want 500)", err)
	}
	if f.key.calls.Load() != 0 {
		t.Fatal("the vault was asked")
	}
}

// TestRefusalLogSaysWhy: a watermark refusal is logged with what blocked it: the stored level,
// round and reason, or that another signer committed the slot first.
func TestRefusalLogSaysWhy(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	var mu sync.Mutex
	f := newFixture(t, tezos.Ed25519, "", func(c *Config) {
		c.Logger = slog.New(slog.NewJSONHandler(&lockedWriter{w: &buf, mu: &mu}, nil))
	})
	if _, err := f.sign(t.Context(), attestationAt(9)); err != nil {
		t.Fatal(err)
	}
	if _, err := f.sign(t.Context(), attestationAt(8)); fault.Status(err) != 409 {
		t.Fatal(err)
	}
	f.store.advanceErr = watermark.ErrConflict
	if _, err := f.sign(t.Context(), attestationAt(10)); fault.Status(err) != 409 {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	var refusals []map[string]any
	for line := range strings.SplitSeq(strings.TrimSpace(buf.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatal(err)
		}
		if m["msg"] == "watermark refused the request" {
			refusals = append(refusals, m)
		}
	}
	if len(refusals) != 2 {
		t.Fatalf("%d refusals logged, want 2: %s", len(refusals), buf.String())
	}
	_, m, _ := mark(t, attestationAt(9))
	if r := refusals[0]; r["stored_level"] != float64(9) || r["stored_round"] != float64(m.Round) || r["reason"] != "the request's level is lower" || r["level"] != float64(8) {
		t.Fatalf("a refusal by the stored mark: %v", r)
	}
	if r := refusals[1]; r["reason"] != "another signer committed this slot first" {
		t.Fatalf("a refusal by another signer's commit: %v", r)
	}
}

type lockedWriter struct {
	w  *bytes.Buffer
	mu *sync.Mutex
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// TestVaultErrorKinds: a vault's own kind of failure reaches the client (503 for an HSM that is
// busy), and a failure that says what the client may see keeps its words; any other is 500,
// naming the vault in the log's error only.
func TestVaultErrorKinds(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name   string
		err    error
		status int
		client string
	}{
		{"unavailable", fault.New(fault.Unavailable, "HSM busy"), 503, ""},
		{"safe", fault.Safe(fault.Internal, "the HSM refused the key", errors.New("CKR_KEY_HANDLE_INVALID 0x60")), 500, "the HSM refused the key"},
		{"plain", errors.New("HSM on fire"), 500, ""},
	} {
		f := newFixture(t, tezos.Ed25519, "", nil)
		f.vault.keys = []vault.Key{errKey{f.key.soft, c.err}}
		f.s.reload(t.Context(), 0)
		_, err := f.sign(t.Context(), attestationAt(5))
		if fault.Status(err) != c.status {
			t.Fatalf("%s: %v (status %d, want %d)", c.name, err, fault.Status(err), c.status)
		}
		if msg, _ := fault.ClientMsg(err); msg != c.client {
			t.Fatalf("%s: the client is told %q, want %q", c.name, msg, c.client)
		}
		if c.name == "plain" && !strings.HasPrefix(err.Error(), "(fake): ") {
			t.Fatalf("%s: %q does not name the vault", c.name, err)
		}
	}
}

// countingSpends counts the calls of a spending store, and can fail them.
type countingSpends struct {
	spending.Store
	mu      sync.Mutex
	updates int
	err     error
}

func (c *countingSpends) UpdateSpends(ctx context.Context, pkh string, f func([]spending.Spend) ([]spending.Spend, error)) error {
	c.mu.Lock()
	c.updates++
	err := c.err
	c.mu.Unlock()
	if err != nil {
		return err
	}
	return c.Store.UpdateSpends(ctx, pkh, f)
}

// TestSpendingOnlyWithWindows: a key whose limits have no window (max_amount alone) never
// touches the spending store, neither to record nor to refund; one with a window whose store
// fails is answered 503 and signs nothing.
func TestSpendingOnlyWithWindows(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		src     string
		mode    string
		failing error
		status  int
		updates int
	}{
		{"allow: {generic: [transaction]}\nlimits: {max_amount: 5}\n", "", nil, 200, 0},
		{"allow: {generic: [transaction]}\nlimits: {max_amount: 5}\n", "error", nil, 500, 0},
		{"allow: {generic: [transaction]}\nlimits: {max_operations: {count: 5, period: 1h}}\n", "", nil, 200, 1},
		{"allow: {generic: [transaction]}\nlimits: {max_operations: {count: 5, period: 1h}}\n", "error", nil, 500, 2},
		{"allow: {generic: [transaction]}\nlimits: {max_operations: {count: 5, period: 1h}}\n", "", errors.New("disk gone"), 503, 1},
	} {
		lf := newLimitsFixture(t, c.src, c.mode)
		spends := &countingSpends{Store: lf.store.Store, err: c.failing}
		lf.s.cfg.Spending = spends
		_, err := lf.sign(t.Context(), batch(t, tx(1, 1, payee)))
		if fault.Status(err) != c.status && !(err == nil && c.status == 200) {
			t.Fatalf("%q, vault %q: %v, want %d", c.src, c.mode, err, c.status)
		}
		if spends.updates != c.updates {
			t.Fatalf("%q, vault %q: %d spending updates, want %d", c.src, c.mode, spends.updates, c.updates)
		}
		if c.status != 200 && lf.key.calls.Load() > 1 {
			t.Fatal("signed twice")
		}
	}
}

// TestWithheldSignatureSpendsNothing: a signature withheld because the audit journal failed is
// refunded: the next request of a one-request window signs.
func TestWithheldSignatureSpendsNothing(t *testing.T) {
	t.Parallel()
	lf := newLimitsFixture(t, "allow: {generic: [transaction]}\nlimits: {max_operations: {count: 1, period: 1h}}\n", "")
	j, err := audit.Open(filepath.Join(t.TempDir(), "audit.log"), 0)
	if err != nil {
		t.Fatal(err)
	}
	j.Close() // every Record fails
	lf.s.cfg.Audit = j
	if _, err := lf.sign(t.Context(), batch(t, tx(1, 1, payee))); fault.Status(err) != 500 {
		t.Fatalf("with the journal failing: %v", err)
	}
	lf.s.cfg.Audit = nil
	if _, err := lf.sign(t.Context(), batch(t, tx(2, 1, payee))); err != nil {
		t.Fatalf("the window's one request, after a withheld one: %v", err)
	}
	if _, err := lf.sign(t.Context(), batch(t, tx(3, 1, payee))); fault.Status(err) != 403 {
		t.Fatalf("a second request in a window of one: %v", err)
	}
}

// TestShareMarksStatement: a threshold member's statement holds, in each class, the highest
// mark over the group's shares this signer holds, signed by the asked share over the nonce; a
// key not listed is 403, a share in no vault 404, and a store or vault failure 500 with no
// statement.
func TestShareMarksStatement(t *testing.T) {
	t.Parallel()
	other, _ := tezos.GenerateKey(tezos.BLS)
	otherPKH := other.Public().Hash().String()
	f := newFixture(t, tezos.BLS, "", func(c *Config) {
		for _, p := range c.Policies {
			p.ShareOf = "BLpkGroup"
		}
		c.Policies[otherPKH] = &policy.Policy{PKH: otherPKH, ShareOf: "BLpkGroup"}
	})
	_, _, chain := mark(t, attestationAt(1))
	ctx := t.Context()
	put := func(pkh string, class watermark.Class, level int32) {
		if _, err := f.store.Store.Advance(ctx, watermark.Key{Chain: chain, PKH: pkh, Class: class}, watermark.Mark{Level: level}); err != nil {
			t.Fatal(err)
		}
	}
	put(f.pkh, watermark.Attestation, 10)
	put(otherPKH, watermark.Attestation, 12) // the old share of a resharing: the higher counts
	put(f.pkh, watermark.Block, 9)
	nonce := strings.Repeat("ab", 32)
	m, err := f.s.ShareMarks(ctx, f.pkh, chain, nonce)
	if err != nil {
		t.Fatal(err)
	}
	if a, b := m.Marks["attestation"], m.Marks["block"]; a == nil || a.Level != 12 || b == nil || b.Level != 9 || m.Marks["preattestation"] != nil {
		t.Fatalf("marks: %+v", m.Marks)
	}
	sig, err := tezos.ParseSignature(m.Signature)
	if err != nil || !tezos.Verify(f.key.soft.PublicKey(), sig, m.Statement(), tezos.VersionLatest) || m.Nonce != nonce {
		t.Fatalf("the statement's signature does not verify: %v", err)
	}
	stranger, _ := tezos.GenerateKey(tezos.Ed25519)
	if _, err := f.s.ShareMarks(ctx, stranger.Public().Hash().String(), chain, nonce); fault.Status(err) != 403 {
		t.Fatalf("a key not listed: %v", err)
	}
	if _, err := f.s.ShareMarks(ctx, otherPKH, chain, nonce); fault.Status(err) != 404 {
		t.Fatalf("a share in no vault: %v", err)
	}
	f.store.loadErr = errors.New("disk gone")
	if m, err := f.s.ShareMarks(ctx, f.pkh, chain, nonce); fault.Status(err) != 500 || m != nil {
		t.Fatalf("the store fails: %v %v", m, err)
	}
	f.store.loadErr = nil
	f.key.mode = "error"
	if m, err := f.s.ShareMarks(ctx, f.pkh, chain, nonce); fault.Status(err) != 500 || m != nil {
		t.Fatalf("the vault fails: %v %v", m, err)
	}
}

// nonceKey is a software key whose nonce derivation fails.
type nonceKey struct{ *vault.SoftwareKey }

func (nonceKey) DeterministicNonce(context.Context, []byte) ([32]byte, error) {
	return [32]byte{1}, fault.New(fault.Unavailable, "keystore locked")
}

// TestDeterministicNonceVaultError: a vault that cannot derive the nonce is the answer's error;
// no nonce is given.
func TestDeterministicNonceVaultError(t *testing.T) {
	t.Parallel()
	priv, _ := tezos.GenerateKey(tezos.Ed25519)
	pkh := priv.Public().Hash().String()
	s, err := New(t.Context(), Config{Vaults: []vault.Vault{&fakeVault{keys: []vault.Key{nonceKey{&vault.SoftwareKey{Priv: priv, Ref: "k"}}}}},
		Store: wmmem.NewStore(), Policies: map[string]*policy.Policy{pkh: {PKH: pkh, AllowDeterministicNonce: true}}})
	if err != nil {
		t.Fatal(err)
	}
	if out, err := s.DeterministicNonce(t.Context(), &NonceRequest{PKH: pkh, Data: []byte("x")}); fault.Status(err) != 503 || out != [32]byte{} {
		t.Fatalf("DeterministicNonce = %x, %v; want no nonce and 503", out, err)
	}
}

// possKey is a BLS software key whose proofs of possession fail or are wrong.
type possKey struct {
	*vault.SoftwareKey
	err   error
	wrong bool
}

func (k possKey) ProvePossession(ctx context.Context) (crypt.Signature, error) {
	if k.err != nil {
		return nil, k.err
	}
	if k.wrong {
		return k.SoftwareKey.Priv.Sign([]byte("not a proof"))
	}
	return k.SoftwareKey.ProvePossession(ctx)
}

// TestPossessionFailures: a proof of possession is asked only for a well-formed key hash of a
// key in a vault; the vault's kind of failure reaches the client; a proof that does not verify
// is never returned.
func TestPossessionFailures(t *testing.T) {
	t.Parallel()
	priv, _ := tezos.GenerateKey(tezos.BLS)
	pkh := priv.Public().Hash().String()
	gone, _ := tezos.GenerateKey(tezos.BLS)
	gonePKH := gone.Public().Hash().String()
	soft := &vault.SoftwareKey{Priv: priv, Ref: "k"}
	for _, c := range []struct {
		name   string
		key    possKey
		pkh    string
		status int
	}{
		{"well", possKey{SoftwareKey: soft}, pkh, 200},
		{"key hash", possKey{SoftwareKey: soft}, "tz4NotAKeyHash", 400},
		{"in no vault", possKey{SoftwareKey: soft}, gonePKH, 404},
		{"vault busy", possKey{SoftwareKey: soft, err: fault.New(fault.Unavailable, "HSM busy")}, pkh, 503},
		{"vault fails", possKey{SoftwareKey: soft, err: errors.New("HSM on fire")}, pkh, 500},
		{"wrong proof", possKey{SoftwareKey: soft, wrong: true}, pkh, 500},
	} {
		s, err := New(t.Context(), Config{Vaults: []vault.Vault{&fakeVault{keys: []vault.Key{c.key}}}, Store: wmmem.NewStore(),
			Policies: map[string]*policy.Policy{pkh: {PKH: pkh, AllowPoP: true}, gonePKH: {PKH: gonePKH, AllowPoP: true}}})
		if err != nil {
			t.Fatal(err)
		}
		proof, err := s.ProvePossession(t.Context(), &PossessionRequest{PKH: c.pkh})
		if c.status == 200 {
			if err != nil || !tezos.VerifyPossessionOver(priv.Public(), priv.Public(), proof) {
				t.Fatalf("%s: %v %v", c.name, proof, err)
			}
			continue
		}
		if fault.Status(err) != c.status || proof != nil {
			t.Fatalf("%s: %v, %v (want no proof and %d)", c.name, proof, err, c.status)
		}
		if c.name == "vault fails" && !strings.Contains(err.Error(), "(fake)") {
			t.Fatalf("%s: %v does not name the vault", c.name, err)
		}
	}
	// A bls_pk that is no BLpk is refused as such before it is decoded (an mdpk is long to
	// decode): a damaged one is "not BLS", not a decoding error.
	s, err := New(t.Context(), Config{Vaults: []vault.Vault{&fakeVault{keys: []vault.Key{soft}}}, Store: wmmem.NewStore(),
		Policies: map[string]*policy.Policy{pkh: {PKH: pkh, AllowPoP: true}}})
	if err != nil {
		t.Fatal(err)
	}
	for _, over := range []string{"mdpk" + strings.Repeat("1", 1800), "edpkNotAKey"} {
		if _, err := s.ProvePossession(t.Context(), &PossessionRequest{PKH: pkh, BLSPK: over}); fault.Status(err) != 400 || !errors.Is(err, tezos.ErrNotBLS) {
			t.Fatalf("bls_pk %.12s…: %v (want 400, not BLS)", over, err)
		}
	}
	if _, err := s.ProvePossession(t.Context(), &PossessionRequest{PKH: pkh, BLSPK: "BLpkNotAKey"}); fault.Status(err) != 400 || !strings.Contains(err.Error(), "bls_pk") {
		t.Fatalf("a bls_pk that does not decode: %v (want 400)", err)
	}
	// A key that is not BLS makes no proof, whatever its vault offers: 400.
	ed, _ := tezos.GenerateKey(tezos.Ed25519)
	edPKH := ed.Public().Hash().String()
	s, err = New(t.Context(), Config{Vaults: []vault.Vault{&fakeVault{keys: []vault.Key{&vault.SoftwareKey{Priv: ed, Ref: "e"}}}}, Store: wmmem.NewStore(),
		Policies: map[string]*policy.Policy{edPKH: {PKH: edPKH, AllowPoP: true}}})
	if err != nil {
		t.Fatal(err)
	}
	if proof, err := s.ProvePossession(t.Context(), &PossessionRequest{PKH: edPKH}); fault.Status(err) != 400 || proof != nil {
		t.Fatalf("a tz1 key: %v, %v (want 400)", proof, err)
	}
}

// listingVault tells when a List has begun, and whether it was closed while one ran.
type listingVault struct {
	*fakeVault
	entered         chan struct{}
	running         atomic.Int32
	closedInListing atomic.Bool
}

func (v *listingVault) List(ctx context.Context) ([]vault.Key, error) {
	v.running.Add(1)
	defer v.running.Add(-1)
	select {
	case v.entered <- struct{}{}:
	default:
	}
	return v.fakeVault.List(ctx)
}

func (v *listingVault) Close() error {
	if v.running.Load() != 0 {
		v.closedInListing.Store(true)
	}
	return nil
}

// TestCloseVaultsWaitsForListing: a vault is never closed under a key listing in flight (a
// lookup's miss relists in the background); CloseVaults waits for it.
func TestCloseVaultsWaitsForListing(t *testing.T) {
	t.Parallel()
	v := &listingVault{fakeVault: &fakeVault{}, entered: make(chan struct{}, 1)}
	s, err := New(t.Context(), Config{Vaults: []vault.Vault{v}, Store: wmmem.NewStore()})
	if err != nil {
		t.Fatal(err)
	}
	<-v.entered // New's own listing
	gate := make(chan struct{})
	v.mu.Lock()
	v.gate = gate
	v.mu.Unlock()
	stranger, _ := tezos.GenerateKey(tezos.Ed25519)
	ctx, cancel := context.WithCancel(t.Context())
	missed := make(chan error, 1)
	go func() {
		_, err := s.lookup(ctx, stranger.Public().Hash().String())
		missed <- err
	}()
	<-v.entered // the miss's listing waits at the gate
	cancel()    // the request leaves; its listing goes on
	if err := <-missed; fault.Status(err) != 503 {
		t.Fatalf("lookup = %v", err)
	}
	closed := make(chan error, 1)
	go func() { closed <- s.CloseVaults() }()
	select {
	case <-closed:
		t.Fatal("CloseVaults returned while a listing was in flight")
	case <-time.After(50 * time.Millisecond): // only a wrong CloseVaults can return here; a right one never fails this
	}
	close(gate)
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	if v.closedInListing.Load() {
		t.Fatal("the vault was closed while it listed its keys")
	}
}
