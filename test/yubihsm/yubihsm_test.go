package yubihsm

import (
	"strings"
	"testing"

	"github.com/signatory-go/signatory/internal/testdaemon"
	tv "github.com/signatory-go/signatory/internal/testvectors"
	"github.com/signatory-go/signatory/internal/tezos"
	"github.com/signatory-go/signatory/internal/vault/yubihsm/yubihsmfake"
)

// started makes the device, lists its keys with the CLI, allows them in the config and starts the
// daemon. It returns the key hashes of 0101 (tz3), 0102 (tz2) and 0103 (tz1).
func started(t *testing.T) (*harness, []string) {
	h := newHarness(t)
	byRef := h.KeysByReference()
	var pkhs []string
	for _, ref := range []string{"0101", "0102", "0103"} {
		if byRef[ref] == "" {
			t.Fatalf("key %s not listed: %v", ref, byRef)
		}
		pkhs = append(pkhs, byRef[ref])
	}
	h.writeConfig(pkhs)
	h.Serve()
	return h, pkhs
}

var transaction = tv.LoadPolicyHex()["transaction ok"]

// TestSignEveryCurveOverHTTP signs generic and consensus payloads with the tz3, tz2 and tz1 keys
// on the device, which returns every ECDSA signature high-S; every signature must come out low-S
// and verify with the key from GET /keys. Watermark refusals are 409.
func TestSignEveryCurveOverHTTP(t *testing.T) {
	t.Parallel()
	h, pkhs := started(t)
	h.dev.SetHighS(yubihsmfake.HighSAlways)
	for i, prefix := range []string{"tz3", "tz2", "tz1"} {
		pkh := pkhs[i]
		if !strings.HasPrefix(pkh, prefix) {
			t.Fatalf("key %d is %s, want %s", i, pkh, prefix)
		}
		for round := range 10 {
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
		if status, msg := h.Sign(pkh, attestation(100, 9, 0)); status != 200 {
			t.Fatalf("%s: identical re-sign: %d %s", pkh, status, msg)
		}
		if status, msg := h.Sign(pkh, attestation(100, 9, 1)); status != 409 {
			t.Fatalf("%s: double attestation: %d %s", pkh, status, msg)
		}
		if status, msg := h.Sign(pkh, attestation(99, 0, 0)); status != 409 {
			t.Fatalf("%s: lower level: %d %s", pkh, status, msg)
		}
	}
	// 20 signatures per key: the identical re-sign is answered with the stored signature, without
	// asking the device.
	if st := h.dev.Stats(); st.HighSSignatures != 2*20 || st.Signatures != 3*20 {
		t.Fatalf("device stats: %+v", st)
	}
	if status, body := h.Health(); status != 200 || !strings.Contains(body, `"vault/yubi":"ok"`) {
		t.Fatalf("healthz: %d %s", status, body)
	}
	if n := h.dev.Stats().SessionsAuthenticated; n > 2 {
		t.Errorf("the daemon authenticated %d sessions for sequential requests", n)
	}
}

// TestConnectorStoppedMidRun stops the connector while clients sign: requests answer a clear 500
// (the watermark is still taken first, so a conflicting payload stays refused), /healthz reports
// the vault, neither an error nor the log holds the password, and once the connector is back
// signing recovers by itself: testdaemon.Outage, shared with test/hsm.
func TestConnectorStoppedMidRun(t *testing.T) {
	t.Parallel()
	h, pkhs := started(t)
	testdaemon.Outage{
		Daemon:  h.Daemon,
		PKHs:    pkhs,
		Chain:   chain,
		Vault:   "yubi",
		Generic: transaction,
		Remove: func() error {
			h.conn.Stop()
			return nil
		},
		Restore: h.conn.Restart,
		DownLog: []string{"yubihsm-connector", "YubiHSM/"},
		Secrets: []string{password},
	}.Run(t)
}

// TestDeviceForgetsSessions: the device drops every session (inactivity timeout, power cycle);
// the next requests authenticate new ones without an error reaching the client.
func TestDeviceForgetsSessions(t *testing.T) {
	t.Parallel()
	h, pkhs := started(t)
	for level := int32(1); level <= 3; level++ {
		h.dev.ExpireSessions()
		for _, pkh := range pkhs {
			p := attestation(level, 0, 0)
			status, sig := h.Sign(pkh, p)
			if status != 200 {
				t.Fatalf("%s level %d after the device forgot its sessions: %d %s", pkh, level, status, sig)
			}
			if err := h.Verify(pkh, p, sig); err != nil {
				t.Fatal(err)
			}
		}
	}
	if !strings.Contains(h.Logs(), "YubiHSM session lost") {
		t.Errorf("the log does not mention the lost sessions:\n%s", h.Logs())
	}
}

// TestGenerateAndImportWithTheCLI runs `signatory generate --vault yubi` and `signatory import
// --vault yubi`, then signs with the new keys through the daemon.
func TestGenerateAndImportWithTheCLI(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	gen := h.CLI("", "generate", "--vault", "yubi", "-t", "tz3")
	if len(gen) != 1 || !strings.HasPrefix(gen[0].PKH, "tz3") || len(gen[0].Reference) != 4 {
		t.Fatalf("generate: %+v", gen)
	}
	named := h.CLI("", "generate", "--vault", "yubi", "-t", "tz1", "--name", "baker")
	if len(named) != 1 || !strings.HasPrefix(named[0].PKH, "tz1") {
		t.Fatalf("generate --name: %+v", named)
	}
	priv, _ := tezos.GenerateKey(tezos.Secp256k1)
	imp := h.CLI(string(priv.ToBase58())+"\n", "import", "--vault", "yubi", "--name", "imported")
	if len(imp) != 1 || imp[0].PKH != priv.Public().Hash().String() {
		t.Fatalf("import: %+v", imp)
	}
	labels := map[string]bool{}
	for _, k := range h.dev.Keys() {
		labels[k.Label] = true
	}
	if !labels["baker"] || !labels["imported"] || len(h.dev.Keys()) != 6 {
		t.Fatalf("device keys: %+v", h.dev.Keys())
	}
	listed := h.KeysByReference()
	pkhs := []string{gen[0].PKH, named[0].PKH, imp[0].PKH}
	for i, pkh := range pkhs {
		ref := []string{gen[0].Reference, named[0].Reference, imp[0].Reference}[i]
		if listed[ref] != pkh {
			t.Fatalf("%s not listed as %s: %v", pkh, ref, listed)
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

// TestWrongPasswordAtStart: the vault is skipped with a clear log line that does not hold the
// password, and the daemon still runs.
func TestWrongPasswordAtStart(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	pkh := h.KeysByReference()["0101"]
	h.writeConfig([]string{pkh})
	wrong := "not the " + password
	h.Env = append(h.Env, "TEST_YUBIHSM_PASSWORD="+wrong)
	h.Serve()
	logs := h.Logs()
	if !strings.Contains(logs, "vault skipped") || !strings.Contains(logs, "wrong password") {
		t.Fatalf("no clear error in the log:\n%s", logs)
	}
	if strings.Contains(logs, wrong) {
		t.Fatalf("the log holds the password:\n%s", logs)
	}
	if status, msg := h.Sign(pkh, attestation(1, 0, 0)); status != 404 {
		t.Fatalf("signing with the vault skipped: %d %s", status, msg)
	}
	h.CheckAlive()
}
