package signer

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ecadlabs/gotez/v2/crypt"
	"gopkg.in/yaml.v3"

	"github.com/signatory-go/signatory/internal/fault"
	"github.com/signatory-go/signatory/internal/metrics"
	"github.com/signatory-go/signatory/internal/policy"
	"github.com/signatory-go/signatory/internal/policyhook"
	"github.com/signatory-go/signatory/internal/request"
	"github.com/signatory-go/signatory/internal/tezos"
	"github.com/signatory-go/signatory/internal/vault"
	vaultmem "github.com/signatory-go/signatory/internal/vault/mem"
	"github.com/signatory-go/signatory/internal/watermark"
	wmmem "github.com/signatory-go/signatory/internal/watermark/mem"
)

// TestRefusedByStoredMarkNeverReachesVault: a request at or below the stored mark with other
// bytes is refused before the vault is asked.
func TestRefusedByStoredMarkNeverReachesVault(t *testing.T) {
	t.Parallel()
	f := newFixture(t, tezos.P256, "", nil)
	if _, err := f.sign(context.Background(), attestationAt(9)); err != nil {
		t.Fatal(err)
	}
	f.key.calls.Store(0)
	for _, level := range []int32{5, 9} {
		msg := attestationAt(level)
		msg[len(msg)-1] ^= 1 // other bytes
		if _, err := f.sign(context.Background(), msg); fault.Status(err) != 409 {
			t.Fatalf("level %d under the mark 9: %v", level, err)
		}
	}
	if n := f.key.calls.Load(); n != 0 {
		t.Fatalf("the vault was asked %d times for refused requests", n)
	}
}

// TestWindowsAlone: a key with only max_total, or only max_operations, is bound by it.
func TestWindowsAlone(t *testing.T) {
	t.Parallel()
	total := newLimitsFixture(t, "allow: {generic: [transaction]}\nlimits: {max_total: {amount: 50, period: 1h}}\n", "")
	if _, err := total.sign(context.Background(), batch(t, tx(1, 40, payee))); err != nil {
		t.Fatal(err)
	}
	if _, err := total.sign(context.Background(), batch(t, tx(2, 11, payee))); fault.Status(err) != 403 || !strings.Contains(err.Error(), "max_total") {
		t.Fatalf("51 tez of 50 with max_total alone: %v", err)
	}
	ops := newLimitsFixture(t, "allow: {generic: [transaction]}\nlimits: {max_operations: {count: 2, period: 1h}}\n", "")
	for i := range 2 {
		if _, err := ops.sign(context.Background(), batch(t, tx(uint64(i+1), 1, payee))); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := ops.sign(context.Background(), batch(t, tx(3, 1, payee))); fault.Status(err) != 403 || !strings.Contains(err.Error(), "max_operations") {
		t.Fatalf("a third request of 2 with max_operations alone: %v", err)
	}
}

// TestPossessionRules: a proof of possession obeys the key's jwt_users, its authorized_keys
// and the policy hook, as a signature does.
func TestPossessionRules(t *testing.T) {
	t.Parallel()
	blsKey, err := tezos.GenerateKey(tezos.BLS)
	if err != nil {
		t.Fatal(err)
	}
	var clients []crypt.PrivateKey
	for range 2 {
		c, err := tezos.GenerateKey(tezos.Ed25519)
		if err != nil {
			t.Fatal(err)
		}
		clients = append(clients, c)
	}
	pkh := blsKey.Public().Hash().String()
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusForbidden) }))
	t.Cleanup(hook.Close)
	newSigner := func(pol *policy.Policy, withHook bool, auth ...crypt.PublicKey) *Signer {
		c := Config{Vaults: []vault.Vault{vaultmem.NewFromKeys("m", blsKey)}, Store: wmmem.NewStore(), Observer: metrics.New("t"),
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Policies: map[string]*policy.Policy{pkh: pol}, AuthorizedKeys: auth}
		if withHook {
			c.Hook = &policyhook.Hook{Address: hook.URL, Timeout: time.Minute, Client: hook.Client()}
		}
		s, err := New(context.Background(), c)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	parsed, _ := tezos.ParsePublicKeyHash(pkh)
	authBy := func(c crypt.PrivateKey) string {
		sig, err := c.Sign(tezos.AuthenticatedBytes(parsed, nil))
		if err != nil {
			t.Fatal(err)
		}
		return sig.String()
	}
	base := func() *policy.Policy {
		return &policy.Policy{PKH: pkh, Requests: []request.Kind{request.Attestation}, AllowPoP: true}
	}
	ctx := context.Background()

	jwt := base()
	jwt.JWTUsers = []string{"alice"}
	s := newSigner(jwt, false)
	if _, err := s.ProvePossession(ctx, &PossessionRequest{PKH: pkh, JWTUser: "alice"}); err != nil {
		t.Fatalf("alice: %v", err)
	}
	if _, err := s.ProvePossession(ctx, &PossessionRequest{PKH: pkh, JWTUser: "bob"}); fault.Status(err) != 403 {
		t.Fatalf("bob, not in jwt_users: %v", err)
	}

	perKey := base()
	perKey.AuthorizedKeys = []string{clients[0].Public().Hash().String()}
	s = newSigner(perKey, false, clients[0].Public(), clients[1].Public())
	if _, err := s.ProvePossession(ctx, &PossessionRequest{PKH: pkh, Authentication: authBy(clients[0])}); err != nil {
		t.Fatalf("the key's client: %v", err)
	}
	if _, err := s.ProvePossession(ctx, &PossessionRequest{PKH: pkh, Authentication: authBy(clients[1])}); fault.Status(err) != 403 {
		t.Fatalf("a client the key does not list: %v", err)
	}

	s = newSigner(base(), true)
	if _, err := s.ProvePossession(ctx, &PossessionRequest{PKH: pkh}); fault.Status(err) != 403 {
		t.Fatalf("the hook refuses: %v", err)
	}
}

// TestNoHeadOfLineAcrossLevels: an attestation stuck at the vault (a slow HSM, a threshold member
// that does not answer) does not hold up the next level's: level 11 is signed while level 10 is
// still at the vault; when level 10's signature comes back, the mark is already past it, so it is
// refused and never leaves. Requests for one level still take turns: a second request for level
// 12's bytes while the first is at the vault gets the stored signature, and the vault is asked once.
func TestNoHeadOfLineAcrossLevels(t *testing.T) {
	t.Parallel()
	f := newFixture(t, tezos.P256, "slow", nil)
	stuck := attestationAt(10)
	entered := make(chan struct{})
	var once sync.Once
	f.key.holdIf = func(msg []byte) bool { return bytes.Equal(msg, stuck) }
	f.key.cancel = func() { once.Do(func() { close(entered) }) }
	first := make(chan error, 1)
	go func() {
		_, err := f.sign(context.Background(), stuck)
		first <- err
	}()
	<-entered
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute) // a bound against a hang
	defer cancel()
	if _, err := f.sign(ctx, attestationAt(11)); err != nil {
		t.Fatalf("level 11 while level 10 is at the vault: %v", err)
	}
	close(f.key.release)
	if err := <-first; fault.Status(err) != 409 {
		t.Fatalf("level 10, back from the vault after level 11 was signed: %v", err)
	}

	// One level: identical requests at once ask the vault once.
	f.key.calls.Store(0)
	var wg sync.WaitGroup
	sigs := make([]string, 4)
	for i := range sigs {
		wg.Go(func() {
			sig, err := f.sign(context.Background(), attestationAt(12))
			if err != nil {
				t.Error(err)
				return
			}
			sigs[i] = sig.String()
		})
	}
	wg.Wait()
	if n := f.key.calls.Load(); n != 1 || sigs[0] != sigs[1] || sigs[0] != sigs[3] {
		t.Fatalf("identical requests: %d vault calls, signatures %v", n, sigs)
	}
}

// TestShareWithoutHistory: a threshold share (share_of) with no watermark history on a chain
// signs no consensus operation there, whatever the level: its store is new or was lost, and the
// group may already have signed through other members. Once it has a mark on the chain (here an
// operator's floor at level 5 for the attestation class), it signs above it, in every class, and
// still refuses other bytes at or below it. A key that is not a share signs with an empty store.
func TestShareWithoutHistory(t *testing.T) {
	t.Parallel()
	group, err := tezos.GenerateKey(tezos.BLS)
	if err != nil {
		t.Fatal(err)
	}
	f := newFixture(t, tezos.BLS, "", func(c *Config) {
		for _, p := range c.Policies {
			p.ShareOf = group.Public().String()
		}
	})
	req, err := request.Decode(attestationAt(7), 2)
	if err != nil {
		t.Fatal(err)
	}
	for _, level := range []int32{7, 1_000_000} {
		if _, err := f.sign(context.Background(), attestationAt(level)); fault.Status(err) != 409 || !strings.Contains(err.Error(), "no watermark history") {
			t.Fatalf("level %d, no history: %v", level, err)
		}
	}
	if n := f.key.calls.Load(); n != 0 {
		t.Fatalf("the vault was asked %d times", n)
	}
	floor := watermark.Key{Chain: req.ChainID(), PKH: f.pkh, Class: watermark.Attestation}
	if _, err := f.store.Store.Advance(context.Background(), floor, watermark.Mark{Level: 5}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.sign(context.Background(), attestationAt(7)); err != nil {
		t.Fatalf("level 7 above the floor: %v", err)
	}
	pre := attestationAt(8)
	pre[0], pre[0x25] = 0x12, 20 // a preattestation: another class, with no mark of its own
	if _, err := f.sign(context.Background(), pre); err != nil {
		t.Fatalf("a preattestation once the share has a history: %v", err)
	}
	if _, err := f.sign(context.Background(), attestationAt(5)); fault.Status(err) != 409 {
		t.Fatalf("level 5, the floor: %v", err)
	}

	plain := newFixture(t, tezos.BLS, "", nil)
	if _, err := plain.sign(context.Background(), attestationAt(7)); err != nil {
		t.Fatalf("a key that is not a share, empty store: %v", err)
	}
}

// marksOnly is a watermark store that keeps no spending windows.
type marksOnly struct{ watermark.Store }

// TestSpendingStoreRequired: a key with spending windows needs a store of them; without one the
// signer does not start, naming the key; keys without windows need none.
func TestSpendingStoreRequired(t *testing.T) {
	t.Parallel()
	key, err := tezos.GenerateKey(tezos.Ed25519)
	if err != nil {
		t.Fatal(err)
	}
	pkh := key.Public().Hash().String()
	for _, c := range []struct {
		limits string
		fails  bool
	}{
		{"limits: {max_total: {amount: 50, period: 1h}}\n", true},
		{"limits: {max_operations: {count: 2, period: 1h}}\n", true},
		{"limits: {max_amount: 5}\n", false},
		{"", false},
	} {
		var node yaml.Node
		if err := yaml.Unmarshal([]byte("allow: {generic: [transaction]}\n"+c.limits), &node); err != nil {
			t.Fatal(err)
		}
		pol, _, err := policy.Parse(pkh, node.Content[0])
		if err != nil {
			t.Fatal(err)
		}
		_, err = New(t.Context(), Config{Vaults: []vault.Vault{vaultmem.NewFromKeys("m", key)}, Store: marksOnly{wmmem.NewStore()},
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Policies: map[string]*policy.Policy{pkh: pol}})
		if c.fails != (err != nil) || c.fails && !strings.Contains(err.Error(), pkh) {
			t.Errorf("%q: %v", c.limits, err)
		}
	}
}
