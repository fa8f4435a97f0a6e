package daemon

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/signatory-go/signatory/internal/testdaemon"
	"github.com/signatory-go/signatory/internal/tezos"
)

// TestNoSecretLeaks runs the daemon with an encrypted key file through error paths and checks
// that neither the secret keys (plain or encrypted form) nor the password appear in its logs,
// its error bodies or its metrics.
func TestNoSecretLeaks(t *testing.T) {
	const password = "Pa55-word-that-must-not-leak"
	var secrets []string
	var entries []map[string]string
	var pkhs []string
	for _, c := range tezos.Curves {
		priv, _ := tezos.GenerateKey(c)
		enc, err := tezos.EncryptSecretKey(priv, []byte(password))
		if err != nil {
			t.Fatal(err)
		}
		secrets = append(secrets, string(priv.ToBase58()), enc)
		entries = append(entries, map[string]string{"name": string(c), "value": "encrypted:" + enc})
		pkhs = append(pkhs, priv.Public().Hash().String())
	}
	js, _ := json.Marshal(entries)
	tz := ""
	for _, p := range pkhs {
		tz += "  " + p + ":\n    allow: {generic: [transaction]}\n"
	}
	d := newDaemon(t, string(js), tz)
	cfg, _ := os.ReadFile(d.Config)
	withPw := strings.Replace(string(cfg), "      file: ", "      password_env: LEAK_TEST_PASSWORD\n      file: ", 1)
	if err := os.WriteFile(d.Config, []byte(withPw), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("LEAK_TEST_PASSWORD", password)
	d.Serve()

	var bodies strings.Builder
	for _, pkh := range pkhs {
		for _, payload := range []string{"", "zz", "03", "0201", attestation(chainA, 1, 0, 0), strings.Repeat("ab", 100)} {
			_, msg := d.Sign(pkh, payload)
			bodies.WriteString(msg)
		}
		resp, err := http.Get("http://" + d.Addr + "/bls_prove_possession/" + pkh)
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			bodies.Write(b)
		}
	}
	resp, err := http.Get("http://" + d.UtilityAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	d.Stop()

	// A wrong password at start-up must fail without echoing either password or key.
	t.Setenv("LEAK_TEST_PASSWORD", "wrong-"+password)
	out, err := testdaemon.RunTool(exec.Command(testdaemon.Binary(t), "list", "-c", d.Config))
	if err != nil && !strings.Contains(string(out), "No keys") && !strings.Contains(string(out), "wrong password") {
		t.Fatalf("wrong password: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "wrong password") {
		t.Fatalf("wrong password not reported clearly:\n%s", out)
	}

	for where, text := range map[string]string{"logs": d.Logs(), "error bodies": bodies.String(),
		"metrics": string(metrics), "wrong-password output": string(out)} {
		for _, s := range append(secrets, password) {
			if strings.Contains(text, s) || strings.Contains(text, s[len(s)/2:]) {
				t.Fatalf("%s leak a secret (%s…)", where, s[:4])
			}
		}
	}
	if !strings.Contains(bodies.String(), "is not allowed") || !strings.Contains(bodies.String(), "empty message") {
		t.Fatalf("error paths not exercised: %s", bodies.String())
	}
}
