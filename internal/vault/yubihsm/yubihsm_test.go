package yubihsm

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/signatory-go/signatory/internal/fault"
	"github.com/signatory-go/signatory/internal/tezos"
	"github.com/signatory-go/signatory/internal/vault"
	"github.com/signatory-go/signatory/internal/vault/vaulttest"
	"github.com/signatory-go/signatory/internal/vault/yubihsm/yubihsmfake"
)

// TestListAndSignEveryCurve lists the device's keys (the RSA key is skipped with a warning) and
// signs with each, the device returning high-S ECDSA signatures every time.
func TestListAndSignEveryCurve(t *testing.T) {
	t.Parallel()
	d := newDevice(t)
	v, logs := d.open(t, nil)
	keys, err := v.List(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	got := byID(t, keys)
	if len(keys) != 3 {
		t.Fatalf("listed %d keys: %v", len(keys), got)
	}
	for id, prefix := range map[string]string{"0101": "tz3", "0102": "tz2", "0103": "tz1"} {
		k := got[id]
		if k == nil || !strings.HasPrefix(k.PublicKey().Hash().String(), prefix) {
			t.Fatalf("key %s: %v", id, k)
		}
		want := d.priv[uint16(0x0100+int(id[3]-'0'))].Public().Hash().String()
		if k.PublicKey().Hash().String() != want {
			t.Fatalf("key %s has the wrong public key", id)
		}
	}
	if !strings.Contains(logs.String(), "rsa2048") {
		t.Errorf("the RSA key was skipped silently:\n%s", logs)
	}
	d.dev.SetHighS(yubihsmfake.HighSAlways)
	for _, k := range keys {
		for range 10 {
			signAndVerify(t, k)
		}
	}
	if st := d.dev.Stats(); st.HighSSignatures != 20 || st.Signatures != 30 {
		t.Fatalf("device stats: %+v", st)
	}
	if err := v.Ready(t.Context()); err != nil {
		t.Fatal(err)
	}
}

func TestConfiguredKeys(t *testing.T) {
	t.Parallel()
	d := newDevice(t)
	id := uint16(0x0103)
	v, _ := d.open(t, func(c *Config) { c.Keys = []KeyConfig{{ID: &id}, {Label: "k1"}} })
	keys, err := v.List(t.Context())
	if err != nil || len(keys) != 2 || keys[0].ID() != "0103" || keys[1].ID() != "0101" {
		t.Fatalf("configured keys: %v %v", keys, err)
	}
	for _, c := range []struct {
		keys []KeyConfig
		want string
	}{
		{[]KeyConfig{{Label: "nope"}}, `key not found: no asymmetric key with label "nope"`},
		{[]KeyConfig{{ID: &id, Label: "k1"}}, "key not found"},
		{[]KeyConfig{{Label: "k9"}}, "rsa2048"},
	} {
		cfg := d.config()
		cfg.Keys = c.keys
		_, err := Open(t.Context(), "yubi", cfg, vault.Env{})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("keys %v: %v, want %q", c.keys, err, c.want)
		}
	}
	twin, _ := tezos.GenerateKey(tezos.P256)
	if err := d.dev.PutKey(0x0106, "k2", 1, 0, twin); err != nil {
		t.Fatal(err)
	}
	cfg := d.config()
	cfg.Keys = []KeyConfig{{Label: "k2"}}
	if _, err := Open(t.Context(), "yubi", cfg, vault.Env{}); err == nil || !strings.Contains(err.Error(), `more than one asymmetric key has label "k2"`) {
		t.Errorf("ambiguous label: %v", err)
	}
}

func TestImport(t *testing.T) {
	t.Parallel()
	d := newDevice(t)
	v, _ := d.open(t, func(c *Config) { c.KeyImportDomains = 3 })
	before := map[uint16]bool{}
	for _, ki := range d.dev.Keys() {
		before[ki.ID] = true
	}
	for i, c := range []tezos.Curve{tezos.Ed25519, tezos.Secp256k1, tezos.P256} {
		priv, _ := tezos.GenerateKey(c)
		name := ""
		if i == 0 {
			name = "imported"
		}
		k, err := v.Import(t.Context(), priv, name)
		if err != nil {
			t.Fatal(err)
		}
		if k.PublicKey().Hash().String() != priv.Public().Hash().String() {
			t.Fatal("imported key has another public key")
		}
		signAndVerify(t, k)
		if _, err := v.Import(t.Context(), priv, ""); err == nil || !strings.Contains(err.Error(), "already on the device") {
			t.Fatalf("second import: %v", err)
		}
	}
	var labels []string
	for _, ki := range d.dev.Keys() {
		if !before[ki.ID] { // the vault picks a random free ID, possibly below the preset ones
			labels = append(labels, ki.Label)
			if ki.Domains != 3 || (ki.Caps != yubihsmfake.CapSignECDSA && ki.Caps != yubihsmfake.CapSignEdDSA) {
				t.Errorf("key %04x: domains %x caps %x", ki.ID, ki.Domains, ki.Caps)
			}
		}
	}
	if len(labels) != 3 || !strings.Contains(strings.Join(labels, ","), "imported") ||
		!strings.Contains(strings.Join(labels, ","), "signatory-secp256k1-") {
		t.Fatalf("labels: %v", labels)
	}
	priv, _ := tezos.GenerateKey(tezos.P256)
	if _, err := v.Import(t.Context(), priv, "k1"); err == nil || !strings.Contains(err.Error(), `labelled "k1"`) {
		t.Fatalf("label in use: %v", err)
	}
	bls, _ := tezos.GenerateKey(tezos.BLS)
	if _, err := v.Import(t.Context(), bls, ""); err == nil || !strings.Contains(err.Error(), "not bls") {
		t.Fatalf("BLS import: %v", err)
	}
	keys, _ := v.List(t.Context())
	if len(keys) != 6 {
		t.Fatalf("listed %d keys after import", len(keys))
	}
}

func TestGenerate(t *testing.T) {
	t.Parallel()
	d := newDevice(t)
	v, _ := d.open(t, nil)
	for _, c := range []tezos.Curve{tezos.Ed25519, tezos.Secp256k1, tezos.P256} {
		k, err := v.Generate(t.Context(), c, "gen-"+string(c))
		if err != nil {
			t.Fatal(err)
		}
		if tezos.CurveOf(k.PublicKey()) != c {
			t.Fatalf("generated %s, want %s", tezos.CurveOf(k.PublicKey()), c)
		}
		signAndVerify(t, k)
	}
	if _, err := v.Generate(t.Context(), tezos.P256, "gen-p256"); err == nil || !strings.Contains(err.Error(), "already on the device") {
		t.Fatalf("label in use: %v", err)
	}
	if _, err := v.Generate(t.Context(), tezos.BLS, ""); err == nil {
		t.Fatal("generated a BLS key")
	}
	keys, _ := v.List(t.Context())
	if len(keys) != 6 {
		t.Fatalf("listed %d keys after generate", len(keys))
	}
}

// TestAuthenticationErrors: a wrong password or an unknown authentication key fails at start,
// clearly and without the password in the message.
func TestAuthenticationErrors(t *testing.T) {
	t.Parallel()
	d := newDevice(t)
	for _, c := range []struct {
		edit func(*Config)
		want string
	}{
		{func(c *Config) { c.Password = password + "!" }, "authentication key 0x0001: wrong password"},
		{func(c *Config) { c.AuthKeyID = 7 }, "authentication key 0x0007 is not on the device"},
	} {
		cfg := d.config()
		c.edit(&cfg)
		_, err := Open(t.Context(), "yubi", cfg, vault.Env{})
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "YubiHSM/"+d.conn.Addr()) {
			t.Errorf("got %v, want %q", err, c.want)
		}
		noPassword(t, err)
	}
	if st := d.dev.Stats(); st.SessionsAuthenticated != 0 {
		t.Fatalf("a session was authenticated: %+v", st)
	}
}

func TestConnectorUnreachable(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	_, err = Open(t.Context(), "yubi", Config{Address: addr, Password: password, AuthKeyID: 1}, vault.Env{})
	if err == nil || !strings.Contains(err.Error(), "yubihsm-connector") || !strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("unreachable connector: %v", err)
	}
	noPassword(t, err)
}

// TestConnectorDownAndBack: with the connector gone, signing and the readiness check fail with a
// clear error; once it is back, the next request authenticates a new session and signs.
func TestConnectorDownAndBack(t *testing.T) {
	t.Parallel()
	d := newDevice(t)
	v, logs := d.open(t, nil)
	keys, err := v.List(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	signAndVerify(t, keys[0])
	d.conn.Stop()
	for _, k := range keys {
		digest := [32]byte{1}
		_, err := k.Sign(t.Context(), nil, &digest, vault.SignOptions{})
		if err == nil || !strings.Contains(err.Error(), "yubihsm-connector") || fault.KindOf(err) != fault.Internal {
			t.Fatalf("signing with the connector down: %v", err)
		}
		noPassword(t, err)
	}
	if err := v.Ready(t.Context()); err == nil {
		t.Fatal("ready with the connector down")
	}
	if err := d.conn.Restart(); err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		signAndVerify(t, k)
	}
	if err := v.Ready(t.Context()); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), "session lost") {
		t.Errorf("the lost session was not logged:\n%s", logs)
	}
}

// TestSessionExpiredOnDevice: the device forgets the sessions (30 s of inactivity, or a power
// cycle); the next request re-authenticates transparently.
func TestSessionExpiredOnDevice(t *testing.T) {
	t.Parallel()
	d := newDevice(t)
	v, _ := d.open(t, nil)
	keys, _ := v.List(t.Context())
	signAndVerify(t, keys[1])
	before := d.dev.Stats().SessionsAuthenticated
	d.dev.ExpireSessions()
	signAndVerify(t, keys[1])
	if after := d.dev.Stats().SessionsAuthenticated; after != before+1 {
		t.Fatalf("sessions authenticated: %d then %d", before, after)
	}
}

// TestKeyDeletedMidRun: a key removed from the device gives a clear 500.
func TestKeyDeletedMidRun(t *testing.T) {
	t.Parallel()
	d := newDevice(t)
	v, _ := d.open(t, nil)
	keys, _ := v.List(t.Context())
	k := byID(t, keys)["0102"]
	d.dev.DeleteKey(0x0102)
	digest := [32]byte{2}
	_, err := k.Sign(t.Context(), nil, &digest, vault.SignOptions{})
	if err == nil || !strings.Contains(err.Error(), "no longer on the device") || fault.KindOf(err) != fault.Internal {
		t.Fatalf("deleted key: %v", err)
	}
	signAndVerify(t, byID(t, keys)["0101"]) // the session survived the device error
	if n := d.dev.Stats().SessionsAuthenticated; n != 1 {
		t.Fatalf("%d sessions authenticated", n)
	}
}

// TestConcurrentSigning signs from many goroutines through a pool of two sessions: every
// signature verifies and the device never sees more than two sessions.
func TestConcurrentSigning(t *testing.T) {
	t.Parallel()
	d := newDevice(t)
	v, _ := d.open(t, func(c *Config) { c.Sessions = 2 })
	keys, _ := v.List(t.Context())
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for g := range 12 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 15 {
				if _, err := trySign(keys[g%len(keys)]); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if st := d.dev.Stats(); st.SessionsAuthenticated > 2 || d.dev.OpenSessions() > 2 || st.MACFailures != 0 {
		t.Fatalf("device: %+v, %d open", st, d.dev.OpenSessions())
	}
}

func TestCloseEndsSessions(t *testing.T) {
	t.Parallel()
	d := newDevice(t)
	v, _ := d.open(t, nil)
	keys, _ := v.List(t.Context())
	signAndVerify(t, keys[0])
	if d.dev.OpenSessions() == 0 {
		t.Fatal("no session open")
	}
	v.Close()
	if n := d.dev.OpenSessions(); n != 0 {
		t.Fatalf("%d sessions left open after Close", n)
	}
	digest := [32]byte{}
	if _, err := keys[0].Sign(t.Context(), nil, &digest, vault.SignOptions{}); err == nil {
		t.Fatal("signed after Close")
	}
}

// TestPoolWaitsWithinDeadline: with every session busy, a request waits only as long as its
// context allows.
func TestPoolWaitsWithinDeadline(t *testing.T) {
	t.Parallel()
	d := newDevice(t)
	v, _ := d.open(t, func(c *Config) { c.Sessions = 1 })
	s, _, err := v.pool.get(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	if err := v.Ready(ctx); err == nil || !strings.Contains(err.Error(), "no free YubiHSM session") {
		t.Fatalf("busy pool: %v", err)
	}
	v.pool.put(s, true)
	if err := v.Ready(t.Context()); err != nil {
		t.Fatal(err)
	}
}

// TestMalformedReplies: a connector (or something posing as one) that answers garbage gives an
// error, never a panic.
func TestMalformedReplies(t *testing.T) {
	t.Parallel()
	for _, reply := range [][]byte{
		{},
		{0x83, 0x00, 0x05, 1, 2},       // create session reply, too short
		{0x85, 0x00, 0x02, 0x00, 0x00}, // session reply without blocks or MAC
		{0x7f, 0x00, 0x02, 0x03, 0x03}, // error reply of two bytes
		{0x83, 0x00, 0x09, 1, 2, 3},    // length beyond the body
		append([]byte{0x83, 0x00, 17}, make([]byte, 17)...), // a wrong card cryptogram
	} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write(reply) }))
		_, err := Open(t.Context(), "yubi", Config{Address: srv.URL, Password: password, AuthKeyID: 1}, vault.Env{})
		srv.Close()
		if err == nil {
			t.Fatalf("reply %x: opened", reply)
		}
		noPassword(t, err)
	}
}

// TestSessionRenewedBeforeMessageLimit: a session near yubihsm-go's 10,000-message limit is
// closed when given back, and the next request authenticates a new one.
func TestSessionRenewedBeforeMessageLimit(t *testing.T) {
	t.Parallel()
	d := newDevice(t)
	v, _ := d.open(t, func(c *Config) { c.Sessions = 1 })
	v.pool.limit = 3 // the counter is 1 after authentication, 3 after two echoes
	for range 2 {
		if err := v.Ready(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	if n := d.dev.OpenSessions(); n != 0 {
		t.Fatalf("%d sessions open after the limit", n)
	}
	if err := v.Ready(t.Context()); err != nil {
		t.Fatal(err)
	}
	if n := d.dev.Stats().SessionsAuthenticated; n != 2 {
		t.Fatalf("%d sessions authenticated", n)
	}
}

// TestConformance runs the vault suite on the emulated device, through a proxy in front of the
// connector that can stall it.
func TestConformance(t *testing.T) {
	t.Parallel()
	d := newDevice(t)
	proxy := vaulttest.NewProxy(t, d.conn.URL())
	three := []tezos.Curve{tezos.Ed25519, tezos.Secp256k1, tezos.P256}
	vaulttest.Run(t, vaulttest.Fixture{
		Driver: Driver,
		Open: func(t *testing.T) vault.Vault {
			cfg := d.config()
			cfg.Address = strings.TrimPrefix(proxy.URL, "http://")
			v, err := Open(t.Context(), "yubi", cfg, vault.Env{})
			if err != nil {
				t.Fatal(err)
			}
			return v
		},
		Curves:     three,
		Generate:   three,
		Import:     three,
		Persistent: true,
		Stall:      proxy.Stall,
	})
}
