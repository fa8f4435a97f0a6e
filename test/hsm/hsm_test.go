package hsm

import (
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/signatory-go/signatory/internal/testdaemon"
	tv "github.com/signatory-go/signatory/internal/testvectors"
	"github.com/signatory-go/signatory/internal/tezos"
)

// started makes the token, lists its keys with the CLI, allows them in the config and starts
// the daemon. It returns the key hashes of k1, k2, k3.
func started(t *testing.T) (*hsm, []string) {
	h := newHSM(t)
	byLabel := h.KeysByReference()
	var pkhs []string
	for _, label := range []string{"k1", "k2", "k3"} {
		if byLabel[label] == "" {
			t.Fatalf("key %s not listed: %v", label, byLabel)
		}
		pkhs = append(pkhs, byLabel[label])
	}
	h.writeConfig(pkhs)
	h.Serve()
	return h, pkhs
}

var transaction = tv.LoadPolicyHex()["transaction ok"]

// TestSignEveryCurveOverHTTP signs generic and consensus payloads with tz3, tz2 and tz1 keys on
// the token, verifies every signature with the key from GET /keys, and checks watermark refusals.
func TestSignEveryCurveOverHTTP(t *testing.T) {
	t.Parallel()
	h, pkhs := started(t)
	for i, prefix := range []string{"tz3", "tz2", "tz1"} {
		pkh := pkhs[i]
		if !strings.HasPrefix(pkh, prefix) {
			t.Fatalf("key %d is %s, want %s", i, pkh, prefix)
		}
		for round := range 20 { // many signatures: ECDSA high-S must be normalised every time
			for _, payload := range []string{transaction, attestation(100, int32(round), 0)} {
				status, sig := h.Sign(pkh, payload)
				if status != 200 {
					t.Fatalf("%s: sign: %d %s", pkh, status, sig)
				}
				if err := h.Verify(pkh, payload, sig); err != nil {
					t.Fatal(err)
				}
			}
		}
		// Watermarks: the same payload again is fine, another one at the same level and round is not.
		if status, msg := h.Sign(pkh, attestation(100, 19, 0)); status != 200 {
			t.Fatalf("%s: identical re-sign: %d %s", pkh, status, msg)
		}
		if status, msg := h.Sign(pkh, attestation(100, 19, 1)); status != 409 {
			t.Fatalf("%s: double attestation: %d %s", pkh, status, msg)
		}
		if status, msg := h.Sign(pkh, attestation(99, 0, 0)); status != 409 {
			t.Fatalf("%s: lower level: %d %s", pkh, status, msg)
		}
	}
	if status, body := h.Health(); status != 200 || !strings.Contains(body, `"vault/hsm":"ok"`) {
		t.Fatalf("healthz: %d %s", status, body)
	}
}

// TestConcurrentLoad signs from many clients at once: rising consensus levels per key and
// generic operations, all through the daemon's session pool.
func TestConcurrentLoad(t *testing.T) {
	t.Parallel()
	h, pkhs := started(t)
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	const n = 60
	for _, pkh := range pkhs {
		wg.Add(1)
		go func() { // consensus, one level after the other
			defer wg.Done()
			for level := int32(1); level <= n; level++ {
				p := attestation(level, 0, 0)
				status, sig := h.Sign(pkh, p)
				if status != 200 {
					errs <- fmt.Errorf("%s level %d: %d %s", pkh, level, status, sig)
					return
				}
				if err := h.Verify(pkh, p, sig); err != nil {
					errs <- err
					return
				}
			}
		}()
		for range 3 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range n {
					status, sig := h.Sign(pkh, transaction)
					if status != 200 {
						errs <- fmt.Errorf("%s generic: %d %s", pkh, status, sig)
						return
					}
					if err := h.Verify(pkh, transaction, sig); err != nil {
						errs <- err
						return
					}
				}
			}()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	h.CheckAlive()
}

// TestTokenRemovedMidRun moves the token directory away while the daemon runs under load:
// signing answers a clear 500 (the watermark is still taken first, so nothing can be signed
// twice), /healthz reports the vault, and once the token is back signing recovers, the module
// re-initialised without a restart of the daemon: testdaemon.Outage, shared with test/yubihsm.
func TestTokenRemovedMidRun(t *testing.T) {
	t.Parallel()
	h, pkhs := started(t)
	testdaemon.Outage{
		Daemon:       h.Daemon,
		PKHs:         pkhs,
		Chain:        chain,
		Vault:        "hsm",
		Generic:      transaction,
		Remove:       h.store.Unplug,
		Restore:      h.store.Plug,
		DownLog:      []string{"PKCS#11 module"},
		RecoveredLog: []string{"re-initialised"},
	}.Run(t)
}

// TestGenerateAndImportWithTheCLI runs `signatory generate --vault hsm -t tz3` and `signatory
// import --vault hsm`, then signs with both keys through the daemon.
func TestGenerateAndImportWithTheCLI(t *testing.T) {
	t.Parallel()
	h := newHSM(t)
	gen := h.CLI("", "generate", "--vault", "hsm", "-t", "tz3")
	if len(gen) != 1 || !strings.HasPrefix(gen[0].PKH, "tz3") || gen[0].Reference != gen[0].PKH {
		t.Fatalf("generate: %+v", gen)
	}
	named := h.CLI("", "generate", "--vault", "hsm", "-t", "tz1", "--name", "baker")
	if len(named) != 1 || named[0].Reference != "baker" || !strings.HasPrefix(named[0].PKH, "tz1") {
		t.Fatalf("generate --name: %+v", named)
	}
	priv, _ := tezos.GenerateKey(tezos.Secp256k1)
	imp := h.CLI(string(priv.ToBase58())+"\n", "import", "--vault", "hsm")
	if len(imp) != 1 || imp[0].PKH != priv.Public().Hash().String() {
		t.Fatalf("import: %+v", imp)
	}
	listed := h.KeysByReference()
	pkhs := []string{gen[0].PKH, named[0].PKH, imp[0].PKH}
	for _, pkh := range pkhs {
		if listed[pkh] != pkh && listed["baker"] != pkh {
			t.Fatalf("%s not listed: %v", pkh, listed)
		}
	}
	h.writeConfig(pkhs)
	h.Serve()
	for _, pkh := range pkhs {
		p := attestation(5, 0, 0)
		status, sig := h.Sign(pkh, p)
		if status != 200 {
			t.Fatalf("%s: %d %s", pkh, status, sig)
		}
		if err := h.Verify(pkh, p, sig); err != nil {
			t.Fatal(err)
		}
	}
}

// TestReloadKeepsTheToken reloads the config (SIGHUP) three times while a client signs with a
// token key: the vault is opened again beside the old one, which is closed after its last
// request. Closing the old vault's sessions must not log the new one out (a PKCS#11 login
// belongs to the process, not the session), so every request signs; a key the new config drops
// is refused (403), and added again it signs.
func TestReloadKeepsTheToken(t *testing.T) {
	t.Parallel()
	h, pkhs := started(t)
	var stop atomic.Bool
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	wg.Go(func() {
		for !stop.Load() {
			if status, sig := h.Sign(pkhs[0], transaction); status != 200 {
				errs <- fmt.Errorf("transaction during the reloads: %d %s", status, sig)
				return
			}
		}
	})
	for i := 1; i <= 3; i++ {
		keep := pkhs
		if i%2 == 1 {
			keep = pkhs[:2]
		}
		h.rewriteConfig(keep)
		h.Signal(syscall.SIGHUP)
		if !h.WaitLogCount("config reloaded", i, 2*time.Minute) {
			t.Fatalf("reload %d:\n%s", i, h.Logs())
		}
		p := attestation(int32(i), 0, 0)
		status, sig := h.Sign(pkhs[1], p)
		if status != 200 {
			t.Fatalf("reload %d: %d %s", i, status, sig)
		}
		if err := h.Verify(pkhs[1], p, sig); err != nil {
			t.Fatal(err)
		}
		if status, msg := h.Sign(pkhs[2], transaction); i%2 == 1 && status != 403 || i%2 == 0 && status != 200 {
			t.Fatalf("reload %d: the key dropped and added again: %d %s", i, status, msg)
		}
	}
	stop.Store(true)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	h.CheckAlive()
}
