package daemon

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/signatory-go/signatory/internal/request/requesttest"
	"github.com/signatory-go/signatory/internal/testdaemon"
)

// reloadWait bounds the wait for one reload's log line: a bound against a hang, not a measure.
const reloadWait = 2 * time.Minute

// reloadConfig rewrites d's config: the server lines extra, the daemon's file vault and store,
// and tezos.
func reloadConfig(t *testing.T, d *testdaemon.Daemon, extra, tz string) {
	t.Helper()
	keyFile := filepath.Join(d.Dir, "secret_keys.json")
	if err := os.WriteFile(d.Config, []byte(d.Header()+extra+testdaemon.FileVault(keyFile)+"watermark:\n  driver: file\ntezos:\n"+tz), 0o600); err != nil {
		t.Fatal(err)
	}
}

// hup sends SIGHUP and waits for the n-th reload's result in the log.
func hup(t *testing.T, d *testdaemon.Daemon, n int) {
	t.Helper()
	d.Signal(syscall.SIGHUP)
	if !d.WaitLogCount("SIGHUP received", n, reloadWait) ||
		!d.WaitLogCount("config reload", n, reloadWait) { // "config reloaded" or "config reload refused"
		t.Fatalf("reload %d: no result in the log:\n%s", n, d.Logs())
	}
}

func transfer(counter uint64, dest string, mutez uint64) string {
	return requesttest.Operation(requesttest.Op{Kind: "transaction", Counter: counter, Amount: mutez, Dest: dest})
}

// TestReloadUnderLoad reloads a running signer ten times with SIGHUP, alternating two configs,
// while a baker's attestations (two racing clients per level), 64 generic clients and a client of
// a key the second config removes are running. No request fails other than by the config it ran
// under: every generic transfer is signed (or refused for capacity, 503), exactly one attestation per level is signed and the
// other refused by the watermark, the toggled key is signed or refused as unknown. Then: a
// tightened limit refuses, a broken config changes nothing, and the process holds no more
// goroutines or open files than before the reloads.
func TestReloadUnderLoad(t *testing.T) {
	ks, js, _ := keys(t, 3)
	baker, payer, toggled := ks[0].pkh, ks[1].pkh, ks[2].pkh
	pol := func(pkh, rest string) string {
		return fmt.Sprintf("  %s:\n    allow:\n      attestation:\n      generic: [transaction]\n%s", pkh, rest)
	}
	configA := pol(baker, "") + pol(payer, "") + pol(toggled, "")
	configB := pol(baker, "") + pol(payer, "")
	d := newDaemon(t, js, configA)
	d.StartTimeout = time.Minute
	d.Serve()

	client := &http.Client{Timeout: 2 * time.Minute, Transport: &http.Transport{MaxIdleConnsPerHost: 80}}
	sign := func(pkh, payload string) (int, string) {
		resp, err := client.Post("http://"+d.Addr+"/keys/"+pkh, "application/json", strings.NewReader(`"`+payload+`"`))
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	var counter atomic.Uint64
	// Warm up every path the load takes, then the baseline.
	if st, msg := sign(baker, attestation(chainA, 1, 0, 0)); st != 200 {
		t.Fatalf("warm-up attestation: %d %s", st, msg)
	}
	for _, k := range []string{payer, toggled} {
		if st, msg := sign(k, transfer(counter.Add(1), baker, 1e6)); st != 200 {
			t.Fatalf("warm-up transfer: %d %s", st, msg)
		}
	}
	client.CloseIdleConnections()
	before := stats(t, d)

	var (
		stop       atomic.Bool
		wg         sync.WaitGroup
		mu         sync.Mutex
		failures   []string
		signed     atomic.Int64
		overloaded atomic.Int64
		levels     atomic.Int64
	)
	fail := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		if len(failures) < 20 {
			failures = append(failures, fmt.Sprintf(format, args...))
		}
	}
	// The baker: two clients race at each level with different bytes; the watermark must let
	// exactly one through, whatever config each ran under.
	wg.Go(func() {
		for level := int32(2); !stop.Load(); level++ {
			var st [2]int
			var msg [2]string
			var race sync.WaitGroup
			for v := range 2 {
				race.Go(func() { st[v], msg[v] = sign(baker, attestation(chainA, level, 0, byte(v))) })
			}
			race.Wait()
			ok := 0
			for v := range 2 {
				switch st[v] {
				case 200:
					ok++
				case 409:
				default:
					fail("attestation level %d variant %d: %d %s", level, v, st[v], msg[v])
				}
			}
			if ok != 1 {
				fail("attestation level %d: %d signed (want exactly 1): %v %v", level, ok, st, msg)
			}
			levels.Add(1)
		}
	})
	for range 64 {
		wg.Go(func() {
			for !stop.Load() {
				switch st, msg := sign(payer, transfer(counter.Add(1), baker, 1e6)); {
				case st == 200:
					signed.Add(1)
				case st == 503 && strings.Contains(msg, "overloaded"):
					// 65 generic clients against a queue of 64: refused for capacity, as without reloads.
					overloaded.Add(1)
				default:
					fail("transfer: %d %s", st, msg)
				}
			}
		})
	}
	wg.Go(func() {
		for !stop.Load() {
			// Signed under A; under B the key is in the vault and not listed: 403, as the reference.
			if st, msg := sign(toggled, transfer(counter.Add(1), baker, 1e6)); st != 200 && st != 403 &&
				(st != 503 || !strings.Contains(msg, "overloaded")) {
				fail("toggled key: %d %s", st, msg)
			}
		}
	})
	for i := 1; i <= 10; i++ {
		if i%2 == 1 {
			reloadConfig(t, d, "", configB)
		} else {
			reloadConfig(t, d, "", configA)
		}
		hup(t, d, i)
		st, msg := sign(toggled, transfer(counter.Add(1), baker, 1e6))
		for tries := 0; st == 503 && tries < 1000; tries++ { // overloaded: its turn comes
			st, msg = sign(toggled, transfer(counter.Add(1), baker, 1e6))
		}
		if i%2 == 1 && st == 200 || i%2 == 0 && st != 200 {
			t.Errorf("reload %d: the toggled key answered %d %s", i, st, msg)
		}
	}
	stop.Store(true)
	wg.Wait()
	for _, f := range failures {
		t.Error(f)
	}
	if n := strings.Count(d.Logs(), "config reloaded"); n != 10 {
		t.Fatalf("%d reloads applied, want 10:\n%s", n, d.Logs())
	}
	t.Logf("%d attestation levels and %d transfers signed across 10 reloads (%d refused as overload)", levels.Load(), signed.Load(), overloaded.Load())
	if levels.Load() == 0 || signed.Load() == 0 {
		t.Fatal("the load signed nothing")
	}

	// A tightened limit refuses; a broken config changes nothing.
	reloadConfig(t, d, "", configB+"    limits:\n      max_amount: 0.5\n")
	hup(t, d, 11)
	if st, msg := sign(payer, transfer(counter.Add(1), baker, 1e6)); st != 403 {
		t.Fatalf("1 tez under max_amount 0.5: %d %s (want 403)", st, msg)
	}
	reloadConfig(t, d, "  address: [\n", configA)
	hup(t, d, 12)
	if !d.WaitLog("config reload refused") {
		t.Fatalf("a broken config was not refused:\n%s", d.Logs())
	}
	if st, msg := sign(payer, transfer(counter.Add(1), baker, 1e6)); st != 403 {
		t.Fatalf("after a broken config, the limit in force: %d %s (want 403)", st, msg)
	}
	if st, _ := sign(toggled, transfer(counter.Add(1), baker, 1e6)); st == 200 {
		t.Fatal("after a broken config, a key it lists was signed for")
	}
	status, metrics := d.GetUtility("/metrics")
	if status != 200 || !strings.Contains(metrics, `config_reloads_total{result="applied"} 11`) ||
		!strings.Contains(metrics, `config_reloads_total{result="refused"} 1`) {
		t.Fatalf("config_reloads_total:\n%s", grepLines(metrics, "config_reloads"))
	}

	// Nothing left behind: the replaced configs' vaults and goroutines are gone.
	client.CloseIdleConnections()
	var after processStats
	testdaemon.Eventually(t, time.Minute, "goroutines and open files back to where they were", func() error {
		after = stats(t, d)
		if after.goroutines > before.goroutines+4 || after.fds > before.fds+2 {
			return fmt.Errorf("goroutines %v → %v, open files %v → %v", before.goroutines, after.goroutines, before.fds, after.fds)
		}
		return nil
	})
	d.CheckAlive()
}

func grepLines(text, s string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, s) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestReloadRotatesCertificate: a reload with a new certificate in the same files serves it to
// new connections, while a connection opened before keeps working.
func TestReloadRotatesCertificate(t *testing.T) {
	ca := makeCert(t, "test CA", nil, false)
	first := makeCert(t, "signatory-1", ca, true)
	second := makeCert(t, "signatory-2", ca, true)
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "srv.crt"), filepath.Join(dir, "srv.key")
	install := func(c *certPair) {
		if err := os.WriteFile(certFile, c.pem, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(keyFile, c.kpem, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	install(first)
	extra := "  tls:\n    cert_file: " + certFile + "\n    key_file: " + keyFile + "\n"
	ks, js, tz := keys(t, 1)
	d := newDaemonWith(t, js, tz, extra)
	d.Serve()
	roots := x509.NewCertPool()
	roots.AddCert(ca.cert)
	newClient := func() *http.Client {
		return &http.Client{Timeout: time.Minute, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}, MaxIdleConnsPerHost: 1}}
	}
	level := int32(0)
	// served signs one attestation through c and returns the name on the certificate it saw, and
	// whether the connection was one opened before.
	served := func(c *http.Client) string {
		level++
		resp, err := c.Post("https://"+d.Addr+"/keys/"+ks[0].pkh, "application/json", strings.NewReader(`"`+attestation(chainA, level, 0, 0)+`"`))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		_, _ = io.Copy(io.Discard, resp.Body)
		if resp.StatusCode != 200 {
			t.Fatalf("attestation over TLS: %d", resp.StatusCode)
		}
		return resp.TLS.PeerCertificates[0].Subject.CommonName
	}
	before := newClient()
	if cn := served(before); cn != "signatory-1" {
		t.Fatalf("first certificate: %s", cn)
	}
	install(second)
	hup(t, d, 1)
	if !strings.Contains(d.Logs(), "config reloaded") {
		t.Fatalf("the reload was refused:\n%s", d.Logs())
	}
	if cn := served(before); cn != "signatory-1" {
		t.Fatalf("the connection opened before the reload: %s (want it kept, with its certificate)", cn)
	}
	if cn := served(newClient()); cn != "signatory-2" {
		t.Fatalf("a new connection after the reload: %s (want the new certificate)", cn)
	}
	// A certificate that does not load is refused; the one in force keeps serving.
	if err := os.WriteFile(certFile, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	hup(t, d, 2)
	if !d.WaitLog("config reload refused") {
		t.Fatalf("a broken certificate was not refused:\n%s", d.Logs())
	}
	if cn := served(newClient()); cn != "signatory-2" {
		t.Fatalf("after a refused certificate: %s", cn)
	}
}

// TestReloadEndpoint: POST /reload on the utility port is off (404) without
// server.reload_token_file; with it, a request without the token is refused (401) and changes
// nothing, one with it applies the new config (200), and a config refused answers 400 with why.
func TestReloadEndpoint(t *testing.T) {
	ks, js, _ := keys(t, 2)
	one := testdaemon.Policy(ks[0].pkh)
	both := testdaemon.Policy(ks[0].pkh, ks[1].pkh)
	d := newDaemon(t, js, one)
	d.Serve()
	post := func(token string) (int, string) {
		req, _ := http.NewRequest("POST", "http://"+d.UtilityAddr+"/reload", nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if st, body := post("anything"); st != 404 {
		t.Fatalf("POST /reload without a token file: %d %s (want 404)", st, body)
	}
	token := "reload-token-0123456789abcdef"
	tokenFile := filepath.Join(d.Dir, "reload.token")
	if err := os.WriteFile(tokenFile, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	withToken := "  reload_token_file: " + tokenFile + "\n"
	reloadConfig(t, d, withToken, one)
	hup(t, d, 1) // the token file itself arrives by a reload
	reloadConfig(t, d, withToken, both)
	for _, bad := range []string{"", "wrong-token-0123456789abcdef", token + "x"} {
		if st, body := post(bad); st != 401 {
			t.Fatalf("POST /reload with token %q: %d %s (want 401)", bad, st, body)
		}
	}
	if st, _ := d.Sign(ks[1].pkh, attestation(chainA, 1, 0, 0)); st == 200 {
		t.Fatal("a refused POST /reload applied the config")
	}
	if st, body := post(token); st != 200 {
		t.Fatalf("POST /reload with the token: %d %s", st, body)
	}
	if st, msg := d.Sign(ks[1].pkh, attestation(chainA, 1, 0, 0)); st != 200 {
		t.Fatalf("the key the reload added: %d %s", st, msg)
	}
	reloadConfig(t, d, withToken+"  max_body_bytes: 1000\n", both)
	if st, body := post(token); st != 400 || !strings.Contains(body, "server.max_body_bytes") {
		t.Fatalf("POST /reload of a config that changes max_body_bytes: %d %s (want 400 naming it)", st, body)
	}
}
