package daemon

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/signatory-go/signatory/internal/config"
	"github.com/signatory-go/signatory/internal/fault"
	"github.com/signatory-go/signatory/internal/metrics"
	"github.com/signatory-go/signatory/internal/request/requesttest"
	"github.com/signatory-go/signatory/internal/signer"
	tv "github.com/signatory-go/signatory/internal/testvectors"
	"github.com/signatory-go/signatory/internal/tezos"
)

const chain = "b3d79f99" // NetXo5iVw1vBoxM

// reloadEnv is a daemon over one file vault of two keys, whose config a test rewrites before
// each Reload.
type reloadEnv struct {
	t       *testing.T
	d       *Daemon
	base    string
	keyFile string
	pkhs    [2]string
	next    string // the config text Load returns
}

// consensus is a tezos section that allows pkhs blocks, attestations and transactions.
func consensus(pkhs ...string) string {
	var b strings.Builder
	for _, p := range pkhs {
		fmt.Fprintf(&b, "  %s:\n    allow:\n      block:\n      attestation:\n      generic: [transaction]\n", p)
	}
	return b.String()
}

func newReloadEnv(t *testing.T) *reloadEnv {
	t.Helper()
	e := &reloadEnv{t: t, base: t.TempDir()}
	e.keyFile = filepath.Join(e.base, "keys.json")
	var entries []map[string]string
	for i := range e.pkhs {
		priv, err := tezos.GenerateKey(tezos.Ed25519)
		if err != nil {
			t.Fatal(err)
		}
		e.pkhs[i] = priv.Public().Hash().String()
		entries = append(entries, map[string]string{"name": fmt.Sprintf("k%d", i), "value": "unencrypted:" + string(priv.ToBase58())})
	}
	js, _ := json.Marshal(entries)
	if err := os.WriteFile(e.keyFile, js, 0o600); err != nil {
		t.Fatal(err)
	}
	e.next = e.config("", consensus(e.pkhs[0]))
	cfg, err := e.load()
	if err != nil {
		t.Fatal(err)
	}
	d, err := Open(t.Context(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), metrics.New("test"))
	if err != nil {
		t.Fatal(err)
	}
	d.Load = e.load
	t.Cleanup(func() {
		if err := d.Close(); err != nil {
			t.Error(err)
		}
	})
	e.d = d
	return e
}

// config is a whole config: server lines (indented), the vault, a file store, and tezos.
func (e *reloadEnv) config(server, tz string) string {
	return "base_dir: " + e.base + "\nserver:\n  address: 127.0.0.1:0\n  utility_address: 127.0.0.1:0\n" + server +
		"vaults:\n  local:\n    driver: file\n    config:\n      file: " + e.keyFile + "\n" +
		"watermark:\n  driver: file\ntezos:\n" + tz
}

func (e *reloadEnv) load() (*config.Config, error) { return config.Parse([]byte(e.next), "") }

// reload makes text the config and reloads it.
func (e *reloadEnv) reload(text string) error {
	e.next = text
	return e.d.Reload(e.t.Context())
}

func (e *reloadEnv) sign(pkh, payload string) error {
	_, err := e.d.svc.Sign(e.t.Context(), &signer.SignRequest{PKH: pkh, Message: tv.Hex(payload), Version: tezos.VersionLatest})
	return err
}

func (e *reloadEnv) reloads(result string) float64 {
	return testutil.ToFloat64(e.d.Metrics.ConfigReloads.WithLabelValues(result))
}

// TestReloadKeepsMarks: a reload applies the new keys (a key added signs, a key removed from
// tezos: gets 403, one taken out of its vault 404) and keeps every watermark: other bytes at a level signed under an earlier
// config are refused, a key removed and added again included.
func TestReloadKeepsMarks(t *testing.T) {
	e := newReloadEnv(t)
	k0, k1 := e.pkhs[0], e.pkhs[1]
	if err := e.sign(k0, requesttest.Attestation(chain, 5, 0, 0)); err != nil {
		t.Fatal(err)
	}
	if err := e.sign(k1, requesttest.Attestation(chain, 5, 0, 0)); fault.KindOf(err) != fault.NotFound && fault.KindOf(err) != fault.Forbidden {
		t.Fatalf("a key the config does not list: %v", err)
	}
	both := e.config("", consensus(k0, k1))
	if err := e.reload(both); err != nil {
		t.Fatal(err)
	}
	if err := e.sign(k1, requesttest.Attestation(chain, 7, 0, 0)); err != nil {
		t.Fatalf("the key added: %v", err)
	}
	if err := e.sign(k0, requesttest.Attestation(chain, 5, 0, 1)); fault.KindOf(err) != fault.Conflict {
		t.Fatalf("other bytes at a level signed before the reload: %v (want a conflict)", err)
	}
	if err := e.reload(e.config("", consensus(k0))); err != nil {
		t.Fatal(err)
	}
	if e.d.Signer().Known(k1) {
		t.Fatal("the key removed is still known")
	}
	if err := e.sign(k1, requesttest.Attestation(chain, 8, 0, 0)); fault.KindOf(err) != fault.Forbidden {
		t.Fatalf("the key removed from tezos: %v (want 403: not listed)", err)
	}
	if err := e.reload(both); err != nil {
		t.Fatal(err)
	}
	if err := e.sign(k1, requesttest.Attestation(chain, 7, 0, 1)); fault.KindOf(err) != fault.Conflict {
		t.Fatalf("a key removed and added again, other bytes at its last level: %v (want a conflict)", err)
	}
	if err := e.sign(k1, requesttest.Attestation(chain, 9, 0, 0)); err != nil {
		t.Fatal(err)
	}
	// The vault is opened again: a key taken out of the key file is gone (404).
	data, err := os.ReadFile(e.keyFile)
	if err != nil {
		t.Fatal(err)
	}
	var entries []map[string]string
	if err := json.Unmarshal(data, &entries); err != nil {
		t.Fatal(err)
	}
	data, _ = json.Marshal(entries[:1])
	if err := os.WriteFile(e.keyFile, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := e.reload(both); err != nil {
		t.Fatal(err)
	}
	if err := e.sign(k1, requesttest.Attestation(chain, 10, 0, 0)); fault.KindOf(err) != fault.NotFound {
		t.Fatalf("a key taken out of its vault: %v (want 404)", err)
	}
	if err := e.sign(k0, requesttest.Attestation(chain, 10, 0, 0)); err != nil {
		t.Fatal(err)
	}
	if got := e.reloads("applied"); got != 4 {
		t.Fatalf("config_reloads_total{result=applied} = %v, want 4", got)
	}
}

// TestReloadRefusesUnchangeable: a change to a setting that cannot change while running refuses
// the whole new config, naming the setting, and the config in force keeps serving (a key the
// refused config would add stays unknown).
func TestReloadRefusesUnchangeable(t *testing.T) {
	e := newReloadEnv(t)
	k0, k1 := e.pkhs[0], e.pkhs[1]
	both := consensus(k0, k1)
	for _, c := range []struct{ name, text string }{
		{"server.address", strings.Replace(e.config("", both), "address: 127.0.0.1:0", "address: 127.0.0.1:1", 1)},
		{"server.utility_address", strings.Replace(e.config("", both), "utility_address: 127.0.0.1:0", "utility_address: 127.0.0.1:1", 1)},
		{"server.socket_address", e.config("  socket_address: 127.0.0.1:0\n", both)},
		{"server.unix_socket", e.config("  unix_socket: "+filepath.Join(e.base, "s")+"\n", both)},
		{"server.max_body_bytes", e.config("  max_body_bytes: 1000\n", both)},
		{"server.max_generic_in_flight", e.config("  max_generic_in_flight: 1\n", both)},
		{"server.read_timeout", e.config("  read_timeout: 1s\n", both)},
		{"server.write_timeout", e.config("  write_timeout: 1s\n", both)},
		{"server.idle_timeout", e.config("  idle_timeout: 1s\n", both)},
		{"server.tls", e.config("  tls: {cert_file: c.pem, key_file: k.pem}\n", both)},
		{"base_dir", strings.Replace(e.config("", both), "base_dir: "+e.base, "base_dir: "+filepath.Join(e.base, "other"), 1)},
		{"watermark", strings.Replace(e.config("", both), "driver: file\ntezos", "driver: mem\ntezos", 1)},
		{"audit", "audit: {file: " + filepath.Join(e.base, "audit.log") + "}\n" + e.config("", both)},
	} {
		err := e.reload(c.text)
		if err == nil || !strings.Contains(err.Error(), c.name) || !strings.Contains(err.Error(), "restart") {
			t.Errorf("%s changed: %v", c.name, err)
		}
		if e.d.Signer().Known(k1) {
			t.Fatalf("%s changed: the refused config was applied", c.name)
		}
	}
	if got := e.reloads("refused"); got != 13 {
		t.Fatalf("config_reloads_total{result=refused} = %v, want 13", got)
	}
	if err := e.sign(k0, requesttest.Attestation(chain, 1, 0, 0)); err != nil {
		t.Fatal(err)
	}
}

// TestReloadRefusesBrokenConfig: a config that does not parse, a key in authorized_keys that is
// not one, a reload token file that does not hold a token, and a vault serving now that does
// not open again each refuse the reload; the config in force keeps serving.
func TestReloadRefusesBrokenConfig(t *testing.T) {
	e := newReloadEnv(t)
	k0, k1 := e.pkhs[0], e.pkhs[1]
	both := consensus(k0, k1)
	short := filepath.Join(e.base, "short-token")
	if err := os.WriteFile(short, []byte("abc\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ name, text, want string }{
		{"yaml", e.config("", both) + "  : [\n", "yaml"},
		{"unknown field", e.config("  adress: x\n", both), "adress"},
		{"authorized_keys", e.config("  authorized_keys: [edpkNotAKey]\n", both), "edpkNotAKey"},
		{"token", e.config("  reload_token_file: "+short+"\n", both), "reload_token_file"},
		{"vault", strings.Replace(e.config("", both), e.keyFile, e.keyFile+".gone", 1), "vaults.local"},
	} {
		err := e.reload(c.text)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v (want an error naming %q)", c.name, err, c.want)
		}
		if e.d.Signer().Known(k1) {
			t.Fatalf("%s: the refused config was applied", c.name)
		}
	}
	if err := e.sign(k0, requesttest.Attestation(chain, 1, 0, 0)); err != nil {
		t.Fatal(err)
	}
	if err := e.reload(e.config("", both)); err != nil {
		t.Fatalf("the good config after refused ones: %v", err)
	}
}

// TestReloadClosesOldVaults: the vaults of the config replaced are closed only after the last
// request that started under it ends.
func TestReloadClosesOldVaults(t *testing.T) {
	e := newReloadEnv(t)
	old := e.d.svc.acquire() // a request in flight under the first config
	if err := e.reload(e.config("", consensus(e.pkhs[0], e.pkhs[1]))); err != nil {
		t.Fatal(err)
	}
	if _, err := old.vaults[0].List(t.Context()); err != nil {
		t.Fatalf("the old config's vault closed under a request in flight: %v", err)
	}
	select {
	case <-old.idle:
		t.Fatal("the old config retired while a request used it")
	default:
	}
	old.release()
	e.d.retiring.Wait()
	if _, err := old.vaults[0].List(t.Context()); err == nil {
		t.Fatal("the old config's vault is still open after its last request")
	}
	if _, err := e.d.Vaults()[0].List(t.Context()); err != nil {
		t.Fatalf("the new config's vault: %v", err)
	}
}

// TestNoReloadAfterClose: a reload that arrives while the daemon closes (a POST /reload past the
// servers' shutdown) is refused and opens nothing.
func TestNoReloadAfterClose(t *testing.T) {
	e := newReloadEnv(t)
	if err := e.d.Close(); err != nil {
		t.Fatal(err)
	}
	if err := e.reload(e.config("", consensus(e.pkhs[0], e.pkhs[1]))); err == nil || !strings.Contains(err.Error(), "shutting down") {
		t.Fatalf("a reload after Close: %v", err)
	}
	if e.d.Signer().Known(e.pkhs[1]) {
		t.Fatal("a reload after Close was applied")
	}
}

// TestGenerationsUnderRace: requests take the generation in force while reloads replace it; no
// request ever holds a generation after its retirement ended.
func TestGenerationsUnderRace(t *testing.T) {
	var l liveService
	l.cur.Store(newGeneration(nil, nil))
	var stop atomic.Bool
	var bad atomic.Int64
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for !stop.Load() {
				g := l.acquire()
				select {
				case <-g.idle:
					bad.Add(1) // a retired and idle generation in use
				default:
				}
				g.release()
			}
		})
	}
	for range 2000 {
		old := l.cur.Load()
		l.cur.Store(newGeneration(nil, nil))
		old.retire()
	}
	stop.Store(true)
	wg.Wait()
	if n := bad.Load(); n != 0 {
		t.Fatalf("%d requests used a retired generation", n)
	}
}

// TestReadToken: the reload token file must hold one word of at least MinReloadToken
// characters, and be readable by its owner only.
func TestReadToken(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := strings.Repeat("x", MinReloadToken)
	if tok, err := readToken(write("ok", good+"\n", 0o600)); err != nil || tok != good {
		t.Fatalf("a good token: %q %v", tok, err)
	}
	if tok, err := readToken(""); err != nil || tok != "" {
		t.Fatalf("no file: %q %v", tok, err)
	}
	for name, c := range map[string]struct {
		path, want string
	}{
		"missing":  {filepath.Join(dir, "none"), "no such file"},
		"short":    {write("short", good[1:], 0o600), "at least"},
		"two":      {write("two", good+" "+good, 0o600), "one word"},
		"readable": {write("readable", good, 0o640), "chmod 600"},
	} {
		if _, err := readToken(c.path); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v (want %q)", name, err, c.want)
		}
	}
}
