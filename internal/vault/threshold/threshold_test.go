package threshold_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	blst "github.com/ecadlabs/goblst"
	"github.com/ecadlabs/goblst/minpk"
	"github.com/ecadlabs/gotez/v2/crypt"
	"github.com/prometheus/client_golang/prometheus"
	"gopkg.in/yaml.v3"

	"github.com/signatory-go/signatory/internal/blsthreshold"
	"github.com/signatory-go/signatory/internal/fault"
	"github.com/signatory-go/signatory/internal/metrics"
	"github.com/signatory-go/signatory/internal/policy"
	"github.com/signatory-go/signatory/internal/request"
	"github.com/signatory-go/signatory/internal/request/requesttest"
	"github.com/signatory-go/signatory/internal/server"
	"github.com/signatory-go/signatory/internal/signer"
	"github.com/signatory-go/signatory/internal/tezos"
	"github.com/signatory-go/signatory/internal/vault"
	vaultmem "github.com/signatory-go/signatory/internal/vault/mem"
	"github.com/signatory-go/signatory/internal/vault/threshold"
	"github.com/signatory-go/signatory/internal/vault/vaulttest"
	wmmem "github.com/signatory-go/signatory/internal/watermark/mem"
)

// member is a real member signer in this process: the signer and HTTP server packages over a mem
// vault holding one share and its own mem watermark store.
type member struct {
	index int
	pkh   string
	srv   *httptest.Server
	proxy *vaulttest.Proxy
}

// startMember runs a member for share of the group key group, which its policy lets it prove
// possession over.
func startMember(t *testing.T, share blsthreshold.Share, group crypt.PublicKey, authorized ...crypt.PublicKey) *member {
	t.Helper()
	pkh := share.Key.Public().Hash().String()
	s, err := signer.New(t.Context(), signer.Config{
		AuthorizedKeys: authorized,
		Vaults:         []vault.Vault{vaultmem.NewFromKeys(fmt.Sprintf("member-%d", share.Index), share.Key)},
		Store:          wmmem.NewStore(),
		Observer:       metrics.New("t"),
		Logger:         slog.New(slog.NewTextHandler(io.Discard, nil)),
		Policies: map[string]*policy.Policy{pkh: {PKH: pkh, Requests: []request.Kind{request.Preattestation, request.Attestation, request.Block, request.Generic},
			Ops: []string{"transaction"}, AllowPoP: true, AllowPoPFor: []string{group.String()}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(server.New(server.Config{}, s, metrics.New("t"), slog.New(slog.NewTextHandler(io.Discard, nil))).Handler())
	t.Cleanup(srv.Close)
	return &member{index: share.Index, pkh: pkh, srv: srv, proxy: vaulttest.NewProxy(t, srv.URL)}
}

// group is a split key and its members.
type group struct {
	secret  *crypt.BLSPrivateKey
	members []*member
}

func newGroup(t *testing.T, th, n int) *group {
	t.Helper()
	priv, err := tezos.GenerateKey(tezos.BLS)
	if err != nil {
		t.Fatal(err)
	}
	g := &group{secret: priv.(*crypt.BLSPrivateKey)}
	shares, err := blsthreshold.Split(g.secret, th, n, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range shares {
		g.members = append(g.members, startMember(t, s, g.secret.Public()))
	}
	return g
}

// config is the vault's YAML for the group's members (through their proxies).
func (g *group) config(th int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "public_key: %s\nthreshold: %d\ntimeout: 30s\nmembers:\n", g.secret.Public(), th)
	for _, m := range g.members {
		fmt.Fprintf(&b, "  - {index: %d, url: %s, key: %s}\n", m.index, m.proxy.URL, m.pkh)
	}
	return b.String()
}

func openVault(t *testing.T, src string) (vault.Vault, error) {
	t.Helper()
	var node yaml.Node
	if err := yaml.Unmarshal([]byte(src), &node); err != nil {
		t.Fatal(err)
	}
	return threshold.New(t.Context(), "coordinator", node.Content[0], vault.Env{})
}

func mustOpen(t *testing.T, src string) vault.Vault {
	t.Helper()
	v, err := openVault(t, src)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { v.Close() })
	return v
}

func groupKey(t *testing.T, v vault.Vault) vault.Key {
	t.Helper()
	keys, err := v.List(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 1 {
		t.Fatalf("%d keys", len(keys))
	}
	return keys[0]
}

func payload(t *testing.T, hexMsg string) ([]byte, *[32]byte) {
	msg, err := hex.DecodeString(hexMsg)
	if err != nil {
		t.Fatal(err)
	}
	d := [32]byte(crypt.DigestFunc(msg))
	return msg, &d
}

// TestConformance runs the vault suite over three real members (threshold 2); stalling all the
// members' proxies stalls the vault.
func TestConformance(t *testing.T) {
	t.Parallel()
	g := newGroup(t, 2, 3)
	vaulttest.Run(t, vaulttest.Fixture{
		Driver: threshold.Driver,
		Open: func(t *testing.T) vault.Vault {
			v, err := openVault(t, g.config(2))
			if err != nil {
				t.Fatal(err)
			}
			return v
		},
		Curves:      []tezos.Curve{tezos.BLS},
		BLSVersions: []int{2, 3},
		Stall: func(t *testing.T) func() {
			var releases []func()
			for _, m := range g.members {
				releases = append(releases, m.proxy.Stall(t))
			}
			return func() {
				for _, r := range releases {
					r()
				}
			}
		},
	})
}

// TestCombinedIsTheKeysSignature: an attestation signed through the members is byte for byte the
// unsplit key's signature; with one member down it still signs; with two down it answers
// Unavailable naming the members.
func TestCombinedIsTheKeysSignature(t *testing.T) {
	t.Parallel()
	g := newGroup(t, 2, 3)
	k := groupKey(t, mustOpen(t, g.config(2)))
	if k.PublicKey().Hash().String() != g.secret.Public().Hash().String() {
		t.Fatal("the vault lists another key than the group's")
	}
	sign := func(level int32) (crypt.Signature, error) {
		msg, d := payload(t, requesttest.Attestation("b3d79f99", level, 0, 1))
		return k.Sign(t.Context(), msg, d, vault.SignOptions{Version: 2})
	}
	msg, _ := payload(t, requesttest.Attestation("b3d79f99", 10, 0, 1))
	want := (*minpk.Signature)(minpk.Sign((*minpk.PrivateKey)(g.secret), msg, blst.ProofOfPossession)).Bytes()
	sig, err := sign(10)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal((*minpk.Signature)(sig.(*crypt.BLSSignature)).Bytes(), want) {
		t.Fatal("the combined signature is not the unsplit key's")
	}
	// The group key's proof of possession, from the members' proofs over it, is the unsplit key's.
	proof, err := k.(vault.PossessionProver).ProvePossession(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal((*minpk.Signature)(proof.(*crypt.BLSSignature)).Bytes(), (*minpk.Signature)(g.secret.ProvePossession()).Bytes()) ||
		!tezos.VerifyPossession(g.secret.Public(), proof) {
		t.Fatal("the combined proof of possession is not the unsplit key's")
	}
	g.members[0].srv.Close()
	if sig, err := sign(11); err != nil || !tezos.Verify(g.secret.Public(), sig, mustMsg(t, 11), 2) {
		t.Fatalf("one member down: %v %v", sig, err)
	}
	g.members[2].srv.Close()
	_, err = sign(12)
	// Decided once members 1 and 3 failed, whether member 2's partial was in by then or not.
	if fault.KindOf(err) != fault.Unavailable || !strings.Contains(err.Error(), "of 2 needed") ||
		!strings.Contains(err.Error(), "member 1 refused") || !strings.Contains(err.Error(), "member 3 refused") {
		t.Fatalf("two members down: %v", err)
	}
}

func mustMsg(t *testing.T, level int32) []byte {
	msg, _ := payload(t, requesttest.Attestation("b3d79f99", level, 0, 1))
	return msg
}

// TestTwoCoordinatorsNeverDoubleSign: two coordinators over the same three members (threshold 2)
// race conflicting attestations at every level. The members' own watermarks let at most one
// payload per level gather two partials: never do both coordinators get a signature for one level,
// and the losers hear 409.
func TestTwoCoordinatorsNeverDoubleSign(t *testing.T) {
	t.Parallel()
	g := newGroup(t, 2, 3)
	a := groupKey(t, mustOpen(t, g.config(2)))
	b := groupKey(t, mustOpen(t, g.config(2)))
	signed, conflicts := 0, 0
	for level := int32(1); level <= 40; level++ {
		var wg sync.WaitGroup
		var sigs [2]crypt.Signature
		var errs [2]error
		for i, k := range []vault.Key{a, b} {
			wg.Go(func() {
				msg, d := payload(t, requesttest.Attestation("b3d79f99", level, 0, byte(i+1)))
				sigs[i], errs[i] = k.Sign(t.Context(), msg, d, vault.SignOptions{Version: 2})
			})
		}
		wg.Wait()
		if errs[0] == nil && errs[1] == nil {
			t.Fatalf("level %d: both conflicting attestations were signed", level)
		}
		for i := range 2 {
			if errs[i] == nil {
				signed++
				if !tezos.Verify(g.secret.Public(), sigs[i], mustVariant(t, level, byte(i+1)), 2) {
					t.Fatalf("level %d: the signature does not verify", level)
				}
			} else if fault.KindOf(errs[i]) == fault.Conflict {
				conflicts++
			} else {
				t.Fatalf("level %d: %v", level, errs[i])
			}
		}
	}
	t.Logf("40 levels: %d signed, %d refused as conflicts, never both", signed, conflicts)
	if signed == 0 {
		t.Fatal("nothing was signed")
	}
}

func mustVariant(t *testing.T, level int32, variant byte) []byte {
	msg, _ := payload(t, requesttest.Attestation("b3d79f99", level, 0, variant))
	return msg
}

// TestWrongMember: a member that serves a share of another key is named at List; a member whose
// partial does not verify is ignored when the others are enough.
func TestWrongMember(t *testing.T) {
	t.Parallel()
	g := newGroup(t, 2, 3)
	other := newGroup(t, 2, 3)
	wrong := *g
	wrong.members = []*member{g.members[0], g.members[1], other.members[2]}
	v := mustOpen(t, wrong.config(2))
	if _, err := v.List(t.Context()); err == nil || !strings.Contains(err.Error(), "member 3") ||
		!strings.Contains(err.Error(), "does not interpolate") {
		t.Fatalf("List with a foreign share: %v", err)
	}
	// A member that answers with a signature by another key (here: a forged partial).
	forger := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet {
			fmt.Fprintf(w, `{"public_key":%q}`, publicKeyOf(t, g.members[2]))
			return
		}
		body, _ := io.ReadAll(r.Body)
		_ = body
		fmt.Fprintf(w, `{"signature":%q}`, tezos.SignatureString((*crypt.BLSSignature)(minpk.Sign((*minpk.PrivateKey)(other.secret), []byte("x"), blst.ProofOfPossession))))
	}))
	defer forger.Close()
	src := strings.Replace(g.config(2), g.members[2].proxy.URL, forger.URL, 1)
	k := groupKey(t, mustOpen(t, src))
	msg, d := payload(t, requesttest.Attestation("b3d79f99", 5, 0, 1))
	sig, err := k.Sign(t.Context(), msg, d, vault.SignOptions{Version: 2})
	if err != nil || !tezos.Verify(g.secret.Public(), sig, msg, 2) {
		t.Fatalf("two good members and a forger: %v %v", sig, err)
	}
	g.members[1].srv.Close()
	msg, d = payload(t, requesttest.Attestation("b3d79f99", 6, 0, 1))
	if _, err := k.Sign(t.Context(), msg, d, vault.SignOptions{Version: 2}); err == nil ||
		!strings.Contains(err.Error(), "member 3: its partial signature does not verify") {
		t.Fatalf("one good member and a forger: %v", err)
	}
}

// TestAuthenticationKey: members that require authentication sign for a coordinator whose
// authentication_key signs ?authentication= (here through env.SignWith, as the daemon's other
// vaults would), and refuse one without it, or with another key.
func TestAuthenticationKey(t *testing.T) {
	t.Parallel()
	auth, err := tezos.GenerateKey(tezos.Ed25519)
	if err != nil {
		t.Fatal(err)
	}
	other, err := tezos.GenerateKey(tezos.P256)
	if err != nil {
		t.Fatal(err)
	}
	priv, err := tezos.GenerateKey(tezos.BLS)
	if err != nil {
		t.Fatal(err)
	}
	secret := priv.(*crypt.BLSPrivateKey)
	shares, err := blsthreshold.Split(secret, 2, 3, nil)
	if err != nil {
		t.Fatal(err)
	}
	g := &group{secret: secret}
	for _, s := range shares {
		g.members = append(g.members, startMember(t, s, secret.Public(), auth.Public()))
	}
	var asked []string
	var mu sync.Mutex
	signWith := func(key crypt.PrivateKey) func(context.Context, string, []byte) (string, error) {
		return func(_ context.Context, pkh string, message []byte) (string, error) {
			mu.Lock()
			asked = append(asked, pkh)
			mu.Unlock()
			sig, err := key.Sign(message)
			if err != nil {
				return "", err
			}
			return tezos.SignatureString(tezos.LowS(sig)), nil
		}
	}
	open := func(key crypt.PrivateKey) vault.Key {
		var node yaml.Node
		src := g.config(2) + "authentication_key: " + auth.Public().Hash().String() + "\n"
		if err := yaml.Unmarshal([]byte(src), &node); err != nil {
			t.Fatal(err)
		}
		v, err := threshold.New(t.Context(), "coordinator", node.Content[0], vault.Env{SignWith: signWith(key)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { v.Close() })
		return groupKey(t, v)
	}
	msg, d := payload(t, requesttest.Attestation("b3d79f99", 7, 0, 1))
	sig, err := open(auth).Sign(t.Context(), msg, d, vault.SignOptions{Version: 2})
	if err != nil {
		t.Fatal(err)
	}
	if !tezos.Verify(secret.Public(), sig, msg, 2) {
		t.Fatal("the combined signature does not verify")
	}
	proof, err := open(auth).(vault.PossessionProver).ProvePossession(t.Context())
	if err != nil || !tezos.VerifyPossession(secret.Public(), proof) {
		t.Fatalf("proof of possession through authenticated members: %v", err)
	}
	mu.Lock()
	n := len(asked)
	for _, a := range asked {
		if a != auth.Public().Hash().String() {
			t.Fatalf("SignWith was asked for %s", a)
		}
	}
	mu.Unlock()
	if n < 4 {
		t.Fatalf("SignWith was asked %d times for two requests to at least two members each", n)
	}
	// A coordinator signing with a key the members do not know is refused by all of them.
	msg, d = payload(t, requesttest.Attestation("b3d79f99", 8, 0, 1))
	_, err = open(other).Sign(t.Context(), msg, d, vault.SignOptions{Version: 2})
	if fault.KindOf(err) != fault.Unavailable || !strings.Contains(err.Error(), "refused (403)") {
		t.Fatalf("authentication by an unknown key: %v", err)
	}
	// Without authentication_key, the members answer 401.
	_, err = groupKey(t, mustOpen(t, g.config(2))).Sign(t.Context(), msg, d, vault.SignOptions{Version: 2})
	if !strings.Contains(fmt.Sprint(err), "refused (401)") {
		t.Fatalf("no authentication: %v", err)
	}
}

func publicKeyOf(t *testing.T, m *member) string {
	resp, err := http.Get(m.srv.URL + "/keys/" + m.pkh)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	s := string(b)
	i := strings.Index(s, "BLpk")
	return s[i : i+strings.IndexByte(s[i:], '"')]
}

// TestConfigErrors: mistakes in the config stop start-up with the setting named.
func TestConfigErrors(t *testing.T) {
	t.Parallel()
	g := newGroup(t, 2, 3)
	good := g.config(2)
	for _, c := range []struct{ src, want string }{
		{strings.Replace(good, "threshold: 2", "threshold: 1", 1), "more than half"},
		{strings.Replace(good, "threshold: 2", "threshold: 4", 1), "more than half"},
		{strings.Replace(good, "index: 2", "index: 1", 1), "distinct"},
		{strings.Replace(good, g.members[0].pkh, "tz1WGcYos3hL7GXYXjKrMnSFdkT7FyXnFBvf", 1), "not a tz4 address"},
		{strings.Replace(good, "public_key: ", "public_key: x", 1), "public_key"},
		{good + "authentication_key: tz1WGcYos3hL7GXYXjKrMnSFdkT7FyX\n", "not a key address"},
		{good + "authentication_key: tz1WGcYos3hL7GXYXjKrMnSFdkT7FyXnFBvf\n", "needs the signer's other vaults"},
		{good + "treshold: 2\n", `unknown config key "treshold"`},
		{strings.Replace(good, "url: http", "url: ftp", 1), "not an http(s) URL"},
	} {
		_, err := openVault(t, c.src)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: %v", c.want, err)
		}
	}
}

// BenchmarkAttestation: an attestation signed through the coordinator vault over three local
// member signers (threshold 2: two member round trips in parallel, two partial verifications,
// the combination), against the same attestation signed by one in-process tz4 key.
func BenchmarkAttestation(b *testing.B) {
	priv, err := tezos.GenerateKey(tezos.BLS)
	if err != nil {
		b.Fatal(err)
	}
	shares, err := blsthreshold.Split(priv.(*crypt.BLSPrivateKey), 2, 3, nil)
	if err != nil {
		b.Fatal(err)
	}
	var src strings.Builder
	fmt.Fprintf(&src, "public_key: %s\nthreshold: 2\ntimeout: 30s\nmembers:\n", priv.Public())
	for _, s := range shares {
		m := startBenchMember(b, s)
		fmt.Fprintf(&src, "  - {index: %d, url: %s, key: %s}\n", s.Index, m, s.Key.Public().Hash())
	}
	var node yaml.Node
	if err := yaml.Unmarshal([]byte(src.String()), &node); err != nil {
		b.Fatal(err)
	}
	v, err := threshold.New(context.Background(), "coordinator", node.Content[0], vault.Env{})
	if err != nil {
		b.Fatal(err)
	}
	defer v.Close()
	keys, err := v.List(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	single := &vault.SoftwareKey{Priv: priv}
	for name, k := range map[string]vault.Key{"threshold-2-of-3": keys[0], "single-key": single} {
		level := int32(0) // across runs of the sub-benchmark (-count): the members' watermarks stay
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				level++
				msg, _ := hex.DecodeString(requesttest.Attestation("b3d79f99", level, 0, 1))
				d := [32]byte(crypt.DigestFunc(msg))
				if _, err := k.Sign(context.Background(), msg, &d, vault.SignOptions{Version: 2}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// startBenchMember is startMember for a benchmark: a member signer behind an httptest server.
func startBenchMember(b *testing.B, share blsthreshold.Share) string {
	pkh := share.Key.Public().Hash().String()
	s, err := signer.New(context.Background(), signer.Config{
		Vaults:   []vault.Vault{vaultmem.NewFromKeys(fmt.Sprintf("member-%d", share.Index), share.Key)},
		Store:    wmmem.NewStore(),
		Observer: metrics.New("t"),
		Logger:   slog.New(slog.NewTextHandler(io.Discard, nil)),
		Policies: map[string]*policy.Policy{pkh: {PKH: pkh, Requests: []request.Kind{request.Preattestation, request.Attestation}}},
	})
	if err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewServer(server.New(server.Config{}, s, metrics.New("t"), slog.New(slog.NewTextHandler(io.Discard, nil))).Handler())
	b.Cleanup(srv.Close)
	return srv.URL
}

// TestMemberMetrics: every member's answers are counted by result, with their latency.
func TestMemberMetrics(t *testing.T) {
	t.Parallel()
	g := newGroup(t, 2, 3)
	var node yaml.Node
	if err := yaml.Unmarshal([]byte(g.config(2)), &node); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	v, err := threshold.New(t.Context(), "coordinator", node.Content[0], vault.Env{Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	k := groupKey(t, v)
	g.members[0].srv.Close()
	for level := int32(1); level <= 3; level++ {
		msg, d := payload(t, requesttest.Attestation("b3d79f99", level, 0, 1))
		if _, err := k.Sign(t.Context(), msg, d, vault.SignOptions{Version: 2}); err != nil {
			t.Fatal(err)
		}
	}
	// The same level again with other bytes: members 2 and 3 refuse on their watermarks.
	msg, d := payload(t, requesttest.Attestation("b3d79f99", 3, 0, 2))
	if _, err := k.Sign(t.Context(), msg, d, vault.SignOptions{Version: 2}); fault.KindOf(err) != fault.Conflict {
		t.Fatalf("conflict: %v", err)
	}
	count := func(member, result string) float64 {
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			if mf.GetName() != "signatory_threshold_member_results_total" {
				continue
			}
			for _, m := range mf.GetMetric() {
				labels := map[string]string{}
				for _, l := range m.GetLabel() {
					labels[l.GetName()] = l.GetValue()
				}
				if labels["vault"] == "coordinator" && labels["member"] == member && labels["result"] == result {
					return m.GetCounter().GetValue()
				}
			}
		}
		return 0
	}
	// Member 1 is down throughout; the coordinator stops waiting for a member once it has two
	// partials, or once two have failed (t can no longer be reached), so only what must have been
	// counted is asserted: one of members 2 and 3 refused the conflict, and the other refused it
	// too or was not waited for. Close waits for the requests still in flight, so every answer
	// is counted by then.
	v.Close()
	refused := count("2", "refused") + count("3", "refused")
	if refused < 1 || refused+count("2", "not_waited")+count("3", "not_waited") < 2 {
		t.Errorf("members 2 and 3: %v refused, %v not waited for", refused, count("2", "not_waited")+count("3", "not_waited"))
	}
	if got := count("2", "signed") + count("3", "signed"); got < 6 {
		t.Errorf("members 2 and 3 signed %v times, want 6", got)
	}
	if got := count("1", "signed"); got != 0 {
		t.Errorf("member 1 (down) signed %v times", got)
	}
}

// TestDecidedEarly: the coordinator answers as soon as the outcome is decided. Members 1 and 2
// already signed other bytes at the level and refuse (409); member 3 is frozen (it never
// answers a signing request until the test ends) and the vault's timeout is 10 minutes: the
// conflict is answered at once, naming member 3 as not answered yet, instead of after the
// timeout.
func TestDecidedEarly(t *testing.T) {
	t.Parallel()
	g := newGroup(t, 2, 3)
	release := make(chan struct{})
	frozen := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet {
			fmt.Fprintf(w, `{"public_key":%q}`, publicKeyOf(t, g.members[2]))
			return
		}
		select {
		case <-release:
		case <-r.Context().Done():
		}
		http.Error(w, "thawed", http.StatusServiceUnavailable)
	}))
	t.Cleanup(func() { close(release); frozen.Close() })
	for _, m := range g.members[:2] {
		body := fmt.Sprintf("%q", requesttest.Attestation("b3d79f99", 20, 0, 1))
		resp, err := http.Post(m.srv.URL+"/keys/"+m.pkh+"?version=2", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("member %d: %d", m.index, resp.StatusCode)
		}
	}
	src := strings.Replace(strings.Replace(g.config(2), "timeout: 30s", "timeout: 10m", 1), g.members[2].proxy.URL, frozen.URL, 1)
	k := groupKey(t, mustOpen(t, src))
	msg, d := payload(t, requesttest.Attestation("b3d79f99", 20, 0, 2))
	done := make(chan error, 1)
	go func() {
		_, err := k.Sign(context.Background(), msg, d, vault.SignOptions{Version: 2})
		done <- err
	}()
	select {
	case err := <-done:
		if fault.KindOf(err) != fault.Conflict || !strings.Contains(err.Error(), "member 3 not answered yet") {
			t.Fatalf("decided: %v", err)
		}
	case <-time.After(time.Minute): // a bound against a hang: the answer needs no member 3
		t.Fatal("the coordinator waited for the frozen member although t could not be reached")
	}
}
