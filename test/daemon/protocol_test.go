package daemon

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ecadlabs/gotez/v2/crypt"

	"github.com/signatory-go/signatory/internal/request/requesttest"
	"github.com/signatory-go/signatory/internal/testdaemon"
	"github.com/signatory-go/signatory/internal/tezos"
)

// TestNamedEntrypointsThroughBinary: a key allowed only transactions and reveals refuses a
// transaction from an account to itself whose entrypoint is written as the name "stake" (or
// any other reserved name of an operation of its own), as it refuses the short tag: the protocol
// reads the name as that entrypoint. The default entrypoint, however written, is a transaction;
// a name the protocol refuses (over 31 bytes) and a non-canonical encoding are 400.
func TestNamedEntrypointsThroughBinary(t *testing.T) {
	ks, js, _ := keys(t, 1)
	k := ks[0]
	d := newDaemon(t, js, "  "+k.pkh+":\n    allow:\n      generic: [transaction, reveal]\n")
	d.Serve()
	const self = "tz1Ke2h7sDdakHJQh8WX4Z372du1KChsksyU" // the source requesttest.Operation writes
	tx := func(dest, entry string) string {
		return requesttest.Operation(requesttest.Op{Kind: "transaction", Counter: 1, Amount: 1000e6, Dest: dest, Entry: entry})
	}
	emptyName := requesttest.Operation(requesttest.Op{Kind: "transaction", Counter: 1, Amount: 1000e6, Dest: k.pkh, EmptyName: true})
	for _, c := range []struct {
		name   string
		hex    string
		status int
		msg    string
	}{
		{"named stake", tx(self, "stake"), 403, "operation `stake' is not allowed"},
		{"named unstake", tx(self, "unstake"), 403, "operation `unstake' is not allowed"},
		{"named finalize_unstake", tx(self, "finalize_unstake"), 403, "operation `finalize_unstake' is not allowed"},
		{"named set_delegate_parameters", tx(self, "set_delegate_parameters"), 403, "operation `set_delegate_parameters' is not allowed"},
		{"named finalize_unstake of another account", tx(k.pkh, "finalize_unstake"), 403, "operation `finalize_unstake' is not allowed"},
		{"named default", tx(k.pkh, "default"), 200, ""},
		{"empty name", emptyName, 200, ""},
		{"no parameters", tx(k.pkh, ""), 200, ""},
		{"name of 32 bytes", tx(k.pkh, strings.Repeat("a", 32)), 400, "entrypoint name"},
		{"a trailing zero byte in the fee", strings.Replace(tx(k.pkh, ""), "6c00"+strings.Repeat("00", 20)+"00", "6c00"+strings.Repeat("00", 20)+"8000", 1), 400, "canonical"},
	} {
		status, msg := d.Sign(k.pkh, c.hex)
		if status != c.status || !strings.Contains(msg, c.msg) {
			t.Errorf("%s: %d %s, want %d %q", c.name, status, msg, c.status, c.msg)
		}
	}
}

// TestStrictConfigThroughBinary: a misspelt key anywhere stops `serve` before it listens, naming
// the key and its line — `servr:` for `server:` would otherwise start a signer on all interfaces
// with no authentication.
func TestStrictConfigThroughBinary(t *testing.T) {
	_, js, tz := keys(t, 1)
	d := newDaemon(t, js, tz)
	good, err := os.ReadFile(d.Config)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ from, to, key string }{
		{"server:\n", "servr:\n", `"servr"`},
		{"  utility_address:", "  utility_adress:", `"utility_adress"`},
		{"watermark:\n  driver: file\n", "watermark:\n  driver: file\n  confg: {}\n", `"confg"`},
	} {
		bad := strings.Replace(string(good), c.from, c.to, 1)
		if bad == string(good) {
			t.Fatalf("%q is not in the config", c.from)
		}
		if err := os.WriteFile(d.Config, []byte(bad), 0o600); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		out, err := exec.CommandContext(ctx, testdaemon.Binary(t), "serve", "-c", d.Config).CombinedOutput()
		cancel()
		if err == nil || !strings.Contains(string(out), "unknown config key "+c.key) || !strings.Contains(string(out), "line ") {
			t.Errorf("%s: %v\n%s", c.key, err, out)
		}
	}
}

// TestPossessionOverListedKeysThroughBinary: a tz4 key proves possession of its own key, and over
// another public key (bls_pk) only when its policy lists that key; over any other key it is 403
// and no proof leaves.
func TestPossessionOverListedKeysThroughBinary(t *testing.T) {
	var keys []crypt.PrivateKey
	for range 3 {
		k, err := tezos.GenerateKey(tezos.BLS)
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, k)
	}
	signer, listed, unlisted := keys[0], keys[1].Public(), keys[2].Public()
	d := testdaemon.New(t)
	keyFile := filepath.Join(d.Dir, "secret_keys.json")
	testdaemon.WriteKeyFile(t, keyFile, "bls", signer)
	pkh := signer.Public().Hash().String()
	d.WriteConfig(testdaemon.FileVault(keyFile) + "watermark:\n  driver: file\ntezos:\n  " + pkh +
		":\n    allow_proof_of_possession: true\n    allow_proof_of_possession_for: [" + listed.String() + "]\n    allow: {attestation: }\n")
	d.Serve()
	proof := func(query string) (int, string) {
		status, body := d.Get("/bls_prove_possession/" + pkh + query)
		var out struct {
			Proof string `json:"bls_prove_possession"`
		}
		_ = json.Unmarshal([]byte(body), &out)
		if status == 200 {
			return status, out.Proof
		}
		return status, body
	}
	for _, c := range []struct {
		name  string
		query string
		over  crypt.PublicKey
	}{{"its own key", "", signer.Public()}, {"a listed key", "?bls_pk=" + listed.String(), listed}} {
		status, p := proof(c.query)
		sig, err := tezos.ParseSignature(p)
		if status != 200 || err != nil || !tezos.VerifyPossessionOver(signer.Public(), c.over, sig) {
			t.Fatalf("%s: %d %s %v", c.name, status, p, err)
		}
	}
	if status, body := proof("?bls_pk=" + unlisted.String()); status != 403 || !strings.Contains(body, "allow_proof_of_possession_for") || strings.Contains(body, "BLsig") {
		t.Fatalf("an unlisted key: %d %s", status, body)
	}
}
