package daemon

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ecadlabs/gotez/v2/crypt"

	"github.com/signatory-go/signatory/internal/request/requesttest"
	"github.com/signatory-go/signatory/internal/testdaemon"
	"github.com/signatory-go/signatory/internal/tezos"
)

const chainA = "b3d79f99" // NetXo5iVw1vBoxM
const chainB = "ed9d217c" // NetXxkAx4woPLyu

// attestation builds a tag-21 attestation; variant changes the branch, so two variants at one
// level and round are different payloads.
var attestation = requesttest.Attestation

type testKey struct {
	priv crypt.PrivateKey
	pkh  string
}

func keys(t testing.TB, n int) ([]testKey, string, string) {
	var ks []testKey
	var entries []map[string]string
	var tz strings.Builder
	for i := 0; i < n; i++ {
		priv, err := tezos.GenerateKey(tezos.Ed25519)
		if err != nil {
			t.Fatal(err)
		}
		k := testKey{priv: priv, pkh: priv.Public().Hash().String()}
		ks = append(ks, k)
		entries = append(entries, map[string]string{"name": fmt.Sprintf("k%d", i), "value": "unencrypted:" + string(priv.ToBase58())})
		fmt.Fprintf(&tz, "  %s:\n", k.pkh)
	}
	js, _ := json.Marshal(entries)
	return ks, string(js), tz.String()
}

func verify(t testing.TB, k testKey, payload, sig string) {
	t.Helper()
	s, err := tezos.ParseSignature(sig)
	if err != nil {
		t.Fatalf("bad signature %q: %v", sig, err)
	}
	msg, _ := hex.DecodeString(payload)
	if !tezos.Verify(k.priv.Public(), s, msg, 2) {
		t.Fatalf("signature does not verify")
	}
}

// TestKillNineKeepsWatermark signs rising levels and kills the daemon with SIGKILL right after a
// reply; after a restart no lower or equal level with other bytes is ever signed again.
func TestKillNineKeepsWatermark(t *testing.T) {
	ks, js, tz := keys(t, 1)
	k := ks[0]
	d := newDaemon(t, js, tz)
	level := int32(100)
	for round := 0; round < 5; round++ {
		d.Serve()
		last := level
		n := 1 + rand.IntN(20)
		for i := 0; i < n; i++ {
			level++
			p := attestation(chainA, level, 0, 0)
			status, sig := d.Sign(k.pkh, p)
			if status != 200 {
				t.Fatalf("level %d: %d %s", level, status, sig)
			}
			verify(t, k, p, sig)
			last = level
		}
		d.Kill() // SIGKILL right after the last reply
		d.Serve()
		// The same level with other bytes, and a lower level, must be refused; the identical payload is served.
		if status, msg := d.Sign(k.pkh, attestation(chainA, last, 0, 1)); status != 409 {
			t.Fatalf("after kill -9: same level, other bytes: %d %s", status, msg)
		}
		if status, msg := d.Sign(k.pkh, attestation(chainA, last-1, 5, 1)); status != 409 {
			t.Fatalf("after kill -9: lower level: %d %s", status, msg)
		}
		if status, msg := d.Sign(k.pkh, attestation(chainA, last, 0, 0)); status != 200 {
			t.Fatalf("after kill -9: identical re-sign: %d %s", status, msg)
		}
		d.Kill()
	}
}

// TestKillNineUnderLoad kills the daemon while many requests are in flight and checks that every
// signature any client received is at or below the watermark found after restart.
func TestKillNineUnderLoad(t *testing.T) {
	ks, js, tz := keys(t, 4)
	d := newDaemon(t, js, tz)
	d.Serve()
	var mu sync.Mutex
	highest := map[string]int32{}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	for _, k := range ks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for level := int32(1); level < 100000 && ctx.Err() == nil; level++ {
				status, _ := d.SignContext(ctx, k.pkh, attestation(chainA, level, 0, 0))
				if status != 200 {
					return
				}
				mu.Lock()
				highest[k.pkh] = level
				done := len(highest) == len(ks) && level >= 30
				mu.Unlock()
				if done && rand.IntN(10) == 0 {
					cancel()
				}
			}
		}()
	}
	wg.Wait()
	d.Kill()
	d.Serve()
	for _, k := range ks {
		mu.Lock()
		h := highest[k.pkh]
		mu.Unlock()
		if h == 0 {
			t.Fatalf("%s: nothing signed", k.pkh)
		}
		if status, msg := d.Sign(k.pkh, attestation(chainA, h, 0, 9)); status != 409 {
			t.Fatalf("%s: level %d acknowledged before kill, other bytes after restart: %d %s", k.pkh, h, status, msg)
		}
	}
}

// TestWatermarkShowWhileRunning: `signatory watermark show` reads the watermarks of a running
// signer without changing anything: after a kill -9 right after it, every mark the signer
// acknowledged (in its journal: the chain file is an hour behind here) still refuses other bytes.
func TestWatermarkShowWhileRunning(t *testing.T) {
	ks, js, tz := keys(t, 1)
	d := newDaemonStore(t, js, tz, "", "  driver: file\n  config: {chain_file_lag: 1h}\n")
	d.Serve()
	for level := int32(1); level <= 5; level++ {
		if status, msg := d.Sign(ks[0].pkh, attestation(chainA, level, 0, 0)); status != 200 {
			t.Fatalf("level %d: %d %s", level, status, msg)
		}
	}
	d.CLI("", "watermark", "show")
	d.CLI("", "limits", "show")
	d.Kill()
	d.Serve()
	if status, msg := d.Sign(ks[0].pkh, attestation(chainA, 5, 0, 1)); status != 409 {
		t.Fatalf("other bytes at level 5 after watermark show and kill -9: %d %s (want 409)", status, msg)
	}
}

// TestSIGHUPKeepsServing: SIGHUP (sent by service managers and log rotators) does not stop the
// signer: it reloads the same config and keeps signing.
func TestSIGHUPKeepsServing(t *testing.T) {
	ks, js, tz := keys(t, 1)
	d := newDaemon(t, js, tz)
	d.Serve()
	if status, msg := d.Sign(ks[0].pkh, attestation(chainA, 1, 0, 0)); status != 200 {
		t.Fatalf("before SIGHUP: %d %s", status, msg)
	}
	for range 3 {
		d.Signal(syscall.SIGHUP)
	}
	if !d.WaitLogWithin("SIGHUP received", time.Minute) {
		t.Fatalf("no log line for SIGHUP:\n%s", d.Logs())
	}
	d.CheckAlive()
	if status, msg := d.Sign(ks[0].pkh, attestation(chainA, 2, 0, 0)); status != 200 {
		t.Fatalf("after SIGHUP: %d %s", status, msg)
	}
	if err := d.Stop(); err != nil {
		t.Fatalf("exit after SIGTERM: %v\n%s", err, d.Logs())
	}
}

// TestGracefulShutdown sends SIGTERM during a burst: in-flight requests complete, the exit is
// clean and the watermark file holds the highest level any client saw signed.
func TestGracefulShutdown(t *testing.T) {
	ks, js, tz := keys(t, 2)
	d := newDaemon(t, js, tz)
	d.Serve()
	var wg sync.WaitGroup
	var mu sync.Mutex
	highest := map[string]int32{}
	started := make(chan struct{}, 100)
	for _, k := range ks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for level := int32(1); level < 5000; level++ {
				status, sig := d.Sign(k.pkh, attestation(chainA, level, 0, 0))
				if status != 200 {
					if status != 0 && status != 503 {
						t.Errorf("status %d during shutdown: %s", status, sig)
					}
					return
				}
				mu.Lock()
				highest[k.pkh] = level
				mu.Unlock()
				select {
				case started <- struct{}{}:
				default:
				}
			}
		}()
	}
	for i := 0; i < 20; i++ {
		<-started
	}
	if err := d.Stop(); err != nil {
		t.Fatalf("exit after SIGTERM: %v\n%s", err, d.Logs())
	}
	wg.Wait()
	files, _ := filepath.Glob(filepath.Join(d.Dir, "data", "watermark_v2", "*.json"))
	if len(files) != 1 {
		t.Fatalf("watermark files: %v", files)
	}
	raw, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	var wm map[string]map[string]struct{ Level int32 }
	if err := json.Unmarshal(raw, &wm); err != nil {
		t.Fatalf("watermark file does not parse after shutdown: %v\n%s", err, raw)
	}
	for _, k := range ks {
		if got := wm[k.pkh]["attestation"].Level; got < highest[k.pkh] {
			t.Fatalf("%s: file has level %d, a client saw %d signed", k.pkh, got, highest[k.pkh])
		}
	}
}

// breakWatermarkDir moves d's watermark directory to <dir>.moved and puts a file in its place; it
// returns the directory's path.
func breakWatermarkDir(t *testing.T, d *testdaemon.Daemon) string {
	t.Helper()
	wm := filepath.Join(d.Dir, "data", "watermark_v2")
	if err := os.Rename(wm, wm+".moved"); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(wm, []byte("not a directory"), 0o600); err != nil {
		t.Fatal(err)
	}
	return wm
}

// TestUnwritableWatermarkDir replaces the watermark directory with a file while the daemon runs,
// with the journal off: signing is refused with 500 and a clear log, nothing is signed, and it
// recovers once repaired.
func TestUnwritableWatermarkDir(t *testing.T) {
	ks, js, tz := keys(t, 1)
	k := ks[0]
	d := newDaemonStore(t, js, tz, "", "  driver: file\n  config: {journal: false}\n")
	d.Serve()
	if status, msg := d.Sign(k.pkh, attestation(chainA, 10, 0, 0)); status != 200 {
		t.Fatalf("%d %s", status, msg)
	}
	wm := breakWatermarkDir(t, d)
	status, msg := d.Sign(k.pkh, attestation(chainA, 11, 0, 0))
	if status != 500 || !strings.Contains(msg, "watermark") {
		t.Fatalf("unwritable store: %d %s", status, msg)
	}
	if !d.WaitLog("watermark store failed") {
		t.Fatalf("no clear log line:\n%s", d.Logs())
	}
	// Generic operations need no watermark and are still served.
	os.Remove(wm)
	if err := os.Rename(wm+".moved", wm); err != nil {
		t.Fatal(err)
	}
	if status, msg := d.Sign(k.pkh, attestation(chainA, 10, 0, 1)); status != 409 {
		t.Fatalf("after repair, old level other bytes: %d %s", status, msg)
	}
	if status, msg := d.Sign(k.pkh, attestation(chainA, 11, 0, 0)); status != 200 {
		t.Fatalf("after repair: %d %s", status, msg)
	}
}

// TestUnwritableWatermarkDirJournal is the same with the default journal. The journal is an open
// file, which moved with the directory, so commits still reach the disk; the background rewrite
// of the chain file cannot: /healthz and the log say so until the directory is back, and no mark
// is lost either way.
func TestUnwritableWatermarkDirJournal(t *testing.T) {
	ks, js, tz := keys(t, 1)
	k := ks[0]
	d := newDaemon(t, js, tz)
	d.Serve()
	for l := int32(10); l <= 11; l++ { // the first writes the chain file, the second the journal
		if status, msg := d.Sign(k.pkh, attestation(chainA, l, 0, 0)); status != 200 {
			t.Fatalf("%d %s", status, msg)
		}
	}
	wm := breakWatermarkDir(t, d)
	if status, msg := d.Sign(k.pkh, attestation(chainA, 12, 0, 0)); status != 200 {
		t.Fatalf("the journal, still open, takes the record: %d %s", status, msg)
	}
	if !d.WaitLogWithin("cannot bring the chain file up to date", time.Minute) {
		t.Fatalf("no log line for the failed rewrite:\n%s", d.Logs())
	}
	if hs, body := d.Health(); hs == 200 {
		t.Fatalf("/healthz while the chain file cannot be rewritten: %d %s", hs, body)
	}
	os.Remove(wm)
	if err := os.Rename(wm+".moved", wm); err != nil {
		t.Fatal(err)
	}
	testdaemon.Eventually(t, time.Minute, "healthy after the repair", func() error {
		if hs, body := d.Health(); hs != 200 {
			return fmt.Errorf("%d %s", hs, body)
		}
		return nil
	})
	if status, msg := d.Sign(k.pkh, attestation(chainA, 12, 0, 1)); status != 409 {
		t.Fatalf("after repair, the mark signed meanwhile: %d %s", status, msg)
	}
	d.Kill() // kill -9: the marks must come back from the files alone
	d.Serve()
	if status, msg := d.Sign(k.pkh, attestation(chainA, 12, 0, 1)); status != 409 {
		t.Fatalf("after kill -9, the mark signed meanwhile: %d %s", status, msg)
	}
	if status, msg := d.Sign(k.pkh, attestation(chainA, 13, 0, 0)); status != 200 {
		t.Fatalf("after kill -9: %d %s", status, msg)
	}
}

// TestCorruptWatermarkFile: a corrupt chain file stops signing on that chain only; it is never reset.
func TestCorruptWatermarkFile(t *testing.T) {
	ks, js, tz := keys(t, 1)
	k := ks[0]
	d := newDaemon(t, js, tz)
	dir := filepath.Join(d.Dir, "data", "watermark_v2")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	corrupt := filepath.Join(dir, "NetXo5iVw1vBoxM.json")
	garbage := []byte(`{"` + k.pkh + `": {"attestation": {"level": 5, "ro`)
	if err := os.WriteFile(corrupt, garbage, 0o600); err != nil {
		t.Fatal(err)
	}
	d.Serve()
	// /healthz (the utility port answers anyone) says which check failed and a stable reason,
	// never the path; the log has the detail under the id the body carries.
	hs, body := d.Health()
	var health struct {
		Ready  bool
		Checks map[string]string
		ID     string
	}
	if err := json.Unmarshal([]byte(body), &health); err != nil || hs != 503 || health.Ready ||
		health.Checks["watermark/file"] != "corrupt" || health.ID == "" || strings.Contains(body, d.Dir) {
		t.Fatalf("healthz with a corrupt watermark file: %d %s", hs, body)
	}
	if cause := d.ErrorCause("(request " + health.ID + ")"); !strings.Contains(cause, corrupt) {
		t.Fatalf("no log line with the path for health id %q: %q", health.ID, cause)
	}
	status, msg := d.Sign(k.pkh, attestation(chainA, 10, 0, 0))
	if status != 500 || !strings.Contains(msg, "watermark store error") {
		t.Fatalf("corrupt chain: %d %s", status, msg)
	}
	// The body says the kind of failure; the log, under the request id, says which file.
	if cause := d.ErrorCause(msg); !strings.Contains(cause, "corrupt") {
		t.Fatalf("no log line with the cause for %q: %q", msg, cause)
	}
	if status, msg := d.Sign(k.pkh, attestation(chainB, 10, 0, 0)); status != 200 {
		t.Fatalf("other chain: %d %s", status, msg)
	}
	after, _ := os.ReadFile(corrupt)
	if string(after) != string(garbage) {
		t.Fatal("corrupt watermark file was modified")
	}
	if ms, metrics := d.GetUtility("/metrics"); ms != 200 || strings.Contains(metrics, d.Dir) || strings.Contains(metrics, "corrupt") {
		t.Fatalf("/metrics %d carries a path or an error's text", ms)
	}
}

// TestManyKeysInParallel: keys do not serialize each other, and nothing is lost.
func TestManyKeysInParallel(t *testing.T) {
	ks, js, tz := keys(t, 16)
	d := newDaemon(t, js, tz)
	d.Serve()
	var wg sync.WaitGroup
	for _, k := range ks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for level := int32(1); level <= 40; level++ {
				p := attestation(chainA, level, 0, 0)
				status, sig := d.Sign(k.pkh, p)
				if status != 200 {
					t.Errorf("%s level %d: %d %s", k.pkh, level, status, sig)
					return
				}
				verify(t, k, p, sig)
			}
		}()
	}
	wg.Wait()
	d.Kill()
	d.Serve()
	for _, k := range ks {
		if status, _ := d.Sign(k.pkh, attestation(chainA, 40, 0, 1)); status != 409 {
			t.Fatalf("%s: level 40 not recorded", k.pkh)
		}
	}
}
