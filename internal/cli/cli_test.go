package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	tv "github.com/signatory-go/signatory/internal/testvectors"
)

func run(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	var out, errb bytes.Buffer
	root := NewRoot(&out, &errb)
	root.SetArgs(args)
	err := root.Execute()
	return out.String(), errb.String(), err
}

func tempConfig(t *testing.T, tezos string) (string, string) {
	t.Helper()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "signatory.yaml")
	src := fmt.Sprintf("base_dir: %s\nvaults:\n  local:\n    driver: file\n    config: {file: %s}\ntezos:\n%s",
		filepath.Join(dir, "data"), filepath.Join(dir, "keys.json"), tezos)
	if err := os.WriteFile(cfg, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	return cfg, dir
}

func TestDecode(t *testing.T) {
	d := tv.LoadDerived()
	out, _, err := run(t, "decode", d.W["C3"], "--json")
	if err != nil {
		t.Fatal(err)
	}
	var got decodeJSON
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatal(err)
	}
	if got.Kind != "attestation" || got.Chain != "NetXo5iVw1vBoxM" || *got.Level != 34 || *got.Round != 4 || *got.Slot != 21 || got.Class != "attestation" {
		t.Fatalf("%+v", got)
	}
	out, _, err = run(t, "decode", tv.LoadPolicyHex()["reveal not allowed"])
	if err != nil || !strings.Contains(out, "Operations:  reveal, delegation") {
		t.Fatalf("%v %s", err, out)
	}
	if _, _, err := run(t, "decode", "zz"); err == nil || !strings.Contains(err.Error(), "not hex") {
		t.Fatalf("bad hex: %v", err)
	}
	if _, _, err := run(t, "decode", "0201"); err == nil || !strings.Contains(err.Error(), "legacy") {
		t.Fatalf("legacy: %v", err)
	}
	cfg := filepath.Join("..", "..", "examples", "signatory.yaml")
	out, _, err = run(t, "decode", "-c", cfg, "--key", "tz2QPsZoZse4eeahhg5DdfnBDB4VbU1PwgxN", d.W["C3"], "--json")
	if err != nil {
		t.Fatal(err)
	}
	_ = json.Unmarshal([]byte(out), &got)
	if got.Allowed == nil || *got.Allowed || got.Reason != "request kind `attestation' is not allowed" {
		t.Fatalf("policy verdict %+v", got)
	}
}

func TestGenerateImportList(t *testing.T) {
	cfg, dir := tempConfig(t, "  "+tv.K1PKH+":\n")
	out, _, err := run(t, "-c", cfg, "generate", "-v", "local", "-t", "tz3", "-n", "2", "--json")
	if err != nil {
		t.Fatal(err)
	}
	var gen []keyJSON
	if err := json.Unmarshal([]byte(out), &gen); err != nil || len(gen) != 2 || gen[0].Curve != "p256" || !strings.HasPrefix(gen[0].PKH, "tz3") {
		t.Fatalf("%v %s", err, out)
	}
	fi, err := os.Stat(filepath.Join(dir, "keys.json"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v %v", err, fi)
	}
	var stdout, stderr bytes.Buffer
	root := NewRoot(&stdout, &stderr)
	root.SetIn(strings.NewReader(tv.K1SK + "\n"))
	root.SetArgs([]string{"-c", cfg, "import", "-v", "local", "--name", "baker", "--json"})
	if err := root.Execute(); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(stdout.String(), tv.K1PKH) || strings.Contains(stdout.String(), tv.K1SK) {
		t.Fatalf("import output: %s", stdout.String())
	}
	if _, _, err := run(t, "-c", cfg, "import", "-v", "local", tv.K1SK); err == nil || !strings.Contains(err.Error(), "already") {
		t.Fatalf("duplicate import: %v", err)
	}
	if _, _, err := run(t, "-c", cfg, "import", "-v", "local", "edskNOPE"); err == nil || strings.Contains(err.Error(), "edskNOPE") {
		t.Fatalf("bad key import: %v", err)
	}
	out, _, err = run(t, "-c", cfg, "list", "--json")
	if err != nil {
		t.Fatal(err)
	}
	var list []keyJSON
	_ = json.Unmarshal([]byte(out), &list)
	if len(list) != 3 {
		t.Fatalf("list: %s", out)
	}
	active := 0
	for _, k := range list {
		if k.Active {
			active++
			if k.PKH != tv.K1PKH || k.Reference != "baker" || len(k.AllowedRequests) != 3 {
				t.Fatalf("%+v", k)
			}
		}
	}
	if active != 1 {
		t.Fatalf("%d active keys", active)
	}
	out, _, err = run(t, "-c", cfg, "list")
	if err != nil || !strings.Contains(out, "Public Key Hash:           "+tv.K1PKH) {
		t.Fatalf("%v %s", err, out)
	}
	out, _, err = run(t, "-c", cfg, "watermark", "show")
	if err != nil || !strings.Contains(out, "no watermarks recorded") {
		t.Fatalf("%v %s", err, out)
	}
	if _, _, err := run(t, "-c", cfg, "generate", "-v", "nope"); err == nil || !strings.Contains(err.Error(), `no vault named "nope"`) {
		t.Fatalf("unknown vault: %v", err)
	}
	if _, _, err := run(t, "-c", cfg, "generate", "-v", "local", "-t", "tz9"); err == nil || !strings.Contains(err.Error(), "unknown key type") {
		t.Fatalf("bad type: %v", err)
	}
}

func TestListsAndVersion(t *testing.T) {
	out, _, err := run(t, "list-ops")
	if err != nil || !strings.Contains(out, "    - stake\n") || !strings.Contains(out, "    - transaction\n") || strings.Contains(out, "- attestation\n") {
		t.Fatalf("%v %s", err, out)
	}
	out, _, _ = run(t, "list-requests")
	if !strings.Contains(out, "    - attestation_with_dal\n") || !strings.Contains(out, "    - pack\n") {
		t.Fatal(out)
	}
	out, _, _ = run(t, "version")
	if !strings.HasPrefix(out, "Release Version: ") {
		t.Fatal(out)
	}
	if _, _, err := run(t, "serve", "-c", "/nonexistent.yaml"); err == nil || !strings.Contains(err.Error(), "cannot read config file") {
		t.Fatalf("serve without config: %v", err)
	}
}

// TestConfigTyposStopStartUp: a misspelt driver name or an unknown key in a driver's config
// stops start-up with the place named, instead of a vault skipped or a setting ignored.
func TestConfigTyposStopStartUp(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for _, c := range []struct{ vaults, want string }{
		{"  hsm:\n    driver: threshhold\n", "vault hsm: unknown vault driver: threshhold"},
		{"  hsm:\n    driver: pkcs11\n    config:\n      library_path: /nonexistent.so\n      slott: 3\n", `vaults.hsm.config: vault hsm: line 7: unknown config key "slott"`},
		{"  local:\n    driver: file\n    config: {file: " + filepath.Join(dir, "k.json") + ", pasword_env: X}\n", `unknown config key "pasword_env"`},
		{"  kms:\n    driver: awskms\n    config: {region: eu-west-1, keyz: [a]}\n", `unknown config key "keyz"`},
	} {
		cfg := filepath.Join(t.TempDir(), "signatory.yaml")
		src := "base_dir: " + filepath.Join(dir, "data") + "\nvaults:\n" + c.vaults + "tezos:\n"
		if err := os.WriteFile(cfg, []byte(src), 0o600); err != nil {
			t.Fatal(err)
		}
		_, _, err := run(t, "list", "-c", cfg)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", strings.TrimSpace(c.vaults), err, c.want)
		}
	}
}
