package testdaemon

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/signatory-go/signatory/internal/request/requesttest"
)

// Outage is the scenario of a vault's backend (an HSM token, the connector of a device) going
// away under a running daemon and coming back, which every HSM suite passes (test/hsm,
// test/yubihsm). Run asserts:
//
//   - before: every key signs an attestation at level 10;
//   - throughout: clients keep signing a generic operation on every key, and get only 200 (with a
//     signature that verifies) or 500;
//   - with the backend gone: a new attestation at level 11 is refused with a clean 500 ("vault
//     error", the log naming the backend, no secret in the body or the log), and so are other
//     bytes at the same level and round, since nothing was recorded; the identical level-10
//     attestation gets the signature it got before (stored, not signed again); /healthz is 503
//     naming the vault; the daemon keeps running;
//   - with the backend back, without restarting the daemon: the level-11 attestation is signed and
//     verifies, the other bytes at that slot are now refused (409), level 12 signs; /healthz is
//     200; the log says what RecoveredLog lists.
type Outage struct {
	Daemon *Daemon
	// PKHs are the keys of the vault, which the policy allows to sign transactions and consensus
	// operations (see Policy), with nothing signed at levels 10 to 12 yet.
	PKHs    []string
	Chain   string // chain id, in hex, of the attestations signed
	Vault   string // the vault's name: /healthz names it "vault/<Vault>"
	Generic string // a generic operation (hex) that the policy allows: the background load

	Remove  func() error // takes the backend away
	Restore func() error // brings it back

	DownLog      []string // text the log must hold while the backend is away (naming the backend)
	Secrets      []string // text that no error body and nothing in the log may hold (passwords)
	RecoveredLog []string // text the log must hold once signing has resumed
	// RecoveryTimeout bounds the wait for signing to resume after Restore, against a hang; one
	// minute when zero.
	RecoveryTimeout time.Duration
}

// Run runs the scenario on the running daemon (see Outage). A failed test logs the daemon's log.
func (o Outage) Run(t *testing.T) {
	t.Helper()
	d := o.Daemon
	if d.FailureLogLines == 0 {
		d.FailureLogLines = -1
	}
	att := func(level int32, variant byte) string { return requesttest.Attestation(o.Chain, level, 0, variant) }
	hasSecret := func(s string) bool {
		for _, secret := range o.Secrets {
			if strings.Contains(s, secret) {
				return true
			}
		}
		return false
	}
	noSecret := func(what, s string) {
		t.Helper()
		if hasSecret(s) {
			t.Fatalf("%s holds a secret", what)
		}
	}

	before := map[string]string{}
	for _, pkh := range o.PKHs {
		status, sig := d.Sign(pkh, att(10, 0))
		if status != 200 {
			t.Fatalf("%s before: %d %s", pkh, status, sig)
		}
		before[pkh] = sig
	}

	// Background clients keep signing generic operations throughout.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	statuses := map[int]int{}
	for _, pkh := range o.PKHs {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				status, sig := d.Sign(pkh, o.Generic)
				if status == 200 {
					if err := d.Verify(pkh, o.Generic, sig); err != nil {
						t.Error(err)
					}
				} else if hasSecret(sig) {
					t.Errorf("the error body of a background request holds a secret")
				}
				mu.Lock()
				statuses[status]++
				mu.Unlock()
			}
		})
	}
	stopped := false
	stopLoad := func() {
		if !stopped {
			stopped = true
			close(stop)
			wg.Wait()
		}
	}
	defer stopLoad()

	if err := o.Remove(); err != nil {
		t.Fatal(err)
	}
	restored := false
	defer func() {
		if !restored {
			_ = o.Restore()
		}
	}()
	for _, pkh := range o.PKHs {
		status, msg := d.Sign(pkh, att(11, 0))
		if status != 500 {
			t.Fatalf("%s with the backend gone: %d %s", pkh, status, msg)
		}
		// The body says the kind of failure; the log says which backend (identical refusals are
		// logged a few times a minute, then counted: the background load makes many).
		if !strings.Contains(msg, "vault error") {
			t.Errorf("%s: unclear error: %s", pkh, msg)
		}
		for _, s := range o.DownLog {
			if !d.WaitLogWithin(s, time.Minute) {
				t.Errorf("%s: the log does not say %q with the backend gone", pkh, s)
			}
		}
		noSecret("the error body", msg)
		noSecret("the log", d.Logs())
		t.Logf("%s with the backend gone: %s", pkh, msg)
		// No signature left, so nothing was recorded: other bytes at level 11 reach the vault too
		// (and fail the same way); none of them is signed until it is back.
		if status, msg := d.Sign(pkh, att(11, 1)); status != 500 {
			t.Fatalf("%s: other payload after a failed sign: %d %s", pkh, status, msg)
		}
		// The identical bytes of level 10 get the signature recorded for them: nothing is signed
		// twice, and the vault is not needed for that.
		if status, sig := d.Sign(pkh, att(10, 0)); status != 200 || sig != before[pkh] {
			t.Fatalf("%s: identical level-10 request with the backend gone: %d %s, want 200 %s", pkh, status, sig, before[pkh])
		}
	}
	if status, body := d.Health(); status != 503 || !strings.Contains(body, "vault/"+o.Vault) {
		t.Errorf("healthz with the backend gone: %d %s", status, body)
	}
	d.CheckAlive()

	if err := o.Restore(); err != nil {
		t.Fatal(err)
	}
	restored = true
	timeout := o.RecoveryTimeout
	if timeout == 0 {
		timeout = time.Minute
	}
	for _, pkh := range o.PKHs {
		p := att(11, 0) // the identical payload may be signed now
		Eventually(t, timeout, pkh+" signing after the backend came back", func() error {
			status, sig := d.Sign(pkh, p)
			if status != 200 {
				return fmt.Errorf("%d %s", status, sig)
			}
			if err := d.Verify(pkh, p, sig); err != nil {
				t.Fatal(err)
			}
			return nil
		})
		// Now that it is signed, the other bytes at that slot are refused.
		if status, msg := d.Sign(pkh, att(11, 1)); status != 409 {
			t.Fatalf("%s: conflicting payload after recovery: %d %s", pkh, status, msg)
		}
		if status, sig := d.Sign(pkh, att(12, 0)); status != 200 {
			t.Fatalf("%s after recovery: %d %s", pkh, status, sig)
		}
	}
	if status, body := d.Health(); status != 200 {
		t.Errorf("healthz after recovery: %d %s", status, body)
	}
	d.CheckAlive()

	stopLoad()
	t.Logf("background generic requests by status: %v", statuses)
	for status := range statuses {
		if status != 200 && status != 500 {
			t.Errorf("background requests got status %d", status)
		}
	}
	for _, s := range o.RecoveredLog {
		if !d.WaitLog(s) {
			t.Errorf("the log does not say %q after the recovery", s)
		}
	}
	noSecret("the log", d.Logs())
}
