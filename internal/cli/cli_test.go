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

// TestConfigTyposStopStartUp: a misspelt driver name, an unknown key in any driver's config or a
// required setting missing stops start-up with the place named, instead of a vault skipped or a
// setting ignored.
func TestConfigTyposStopStartUp(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	keys := filepath.Join(dir, "k.json")
	for _, c := range []struct{ vaults, watermark, want string }{
		{"  hsm:\n    driver: threshhold\n", "", `vaults.hsm: unknown vault driver "threshhold" (known: awskms, azure, cloudkms, file, hashicorpvault, mem, pkcs11, threshold, yubihsm)`},
		{"  hsm:\n    driver: pkcs11\n    config:\n      library_path: /nonexistent.so\n      slott: 3\n", "", `vaults.hsm.config: vault hsm: line 7: unknown config key "slott"`},
		{"  hsm:\n    driver: pkcs11\n    config: {library_path: /nonexistent.so, sessions: -1}\n", "", "vaults.hsm.config: vault hsm: sessions must be between 1 and"},
		{"  local:\n    driver: file\n    config: {file: " + keys + ", pasword_env: X}\n", "", `line 5: unknown config key "pasword_env"`},
		{"  local:\n    driver: file\n    config: {password_env: X}\n", "", "vaults.local.config: vault local: config.file is required"},
		{"  local:\n    driver: mem\n    config: {keys: [], pasword_file: x}\n", "", `line 5: unknown config key "pasword_file"`},
		{"  kms:\n    driver: awskms\n    config: {region: eu-west-1, keyz: [a]}\n", "", `line 5: unknown config key "keyz"`},
		{"  kms:\n    driver: awskms\n    config: {region: eu-west-1, keys: [\"\"]}\n", "", "vaults.kms.config: vault kms: keys[0] is empty"},
		{"  gcp:\n    driver: cloudkms\n    config: {project: p, location: l, keyring: r}\n", "", `line 5: unknown config key "keyring"`},
		{"  gcp:\n    driver: cloudkms\n    config: {project: p, location: l}\n", "", "project, location and key_ring are required"},
		{"  az:\n    driver: azure\n    config: {vault: https://x.vault.azure.net, tenantid: t}\n", "", `line 5: unknown config key "tenantid"`},
		{"  az:\n    driver: azure\n    config: {vault: http://x.vault.azure.net}\n", "", "vault must be the key vault's https URL"},
		{"  hc:\n    driver: hashicorpvault\n    config: {address: https://v:8200, token: t, transit: x}\n", "", `line 5: unknown config key "transit"`},
		{"  hc:\n    driver: hashicorpvault\n    config: {address: \"ftp://v\", token: t}\n", "", "is not a Vault URL"},
		{"  yubi:\n    driver: yubihsm\n    config: {address: 127.0.0.1:1, auth_key_id: 1, pasword: x}\n", "", `line 5: unknown config key "pasword"`},
		{"  yubi:\n    driver: yubihsm\n    config: {address: 127.0.0.1:1, auth_key_id: 1, keys: [{}]}\n", "", "keys[0]: a key needs an id or a label"},
		{"", "  driver: postgress\n", `watermark: unknown watermark driver "postgress" (known: aws, dynamodb, etcd, file, mem, postgres)`},
		{"", "  driver: file\n  config: {dir: x}\n", `line 4: unknown config key "dir"`},
		{"", "  driver: mem\n  config: {size: 1}\n", `line 4: unknown config key "size"`},
		{"", "  driver: postgres\n  config: {dsn: postgres://127.0.0.1:1/x, tabel: w}\n", `line 4: unknown config key "tabel"`},
		{"", "  driver: postgres\n  config: {table: w}\n", "watermark.config.dsn is required"},
		{"", "  driver: etcd\n  config:\n    endpoints: [http://127.0.0.1:1]\n    prefixx: /x/\n", `line 6: unknown config key "prefixx"`},
		{"", "  driver: dynamodb\n  config: {table: w, regoin: x}\n", `line 4: unknown config key "regoin"`},
		{"", "  driver: aws\n  config: {tabel: w}\n", `line 4: unknown config key "tabel"`},
	} {
		cfg := filepath.Join(t.TempDir(), "signatory.yaml")
		src := "base_dir: " + filepath.Join(dir, "data") + "\n"
		if c.watermark != "" {
			src += "watermark:\n" + c.watermark
		} else {
			src += "vaults:\n" + c.vaults
		}
		src += "tezos:\n"
		if err := os.WriteFile(cfg, []byte(src), 0o600); err != nil {
			t.Fatal(err)
		}
		_, _, err := run(t, "list", "-c", cfg)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", strings.TrimSpace(c.vaults+c.watermark), err, c.want)
		}
	}
}

// TestFailedStartUpClosesWhatItOpened: when a step of start-up fails after the watermark store
// is open (here the audit journal cannot be created), the store is closed: its lock is released,
// so the same process (a supervisor retrying, a test) can open it again at once.
func TestFailedStartUpClosesWhatItOpened(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	keys := filepath.Join(dir, "keys.json")
	if err := os.WriteFile(keys, []byte("[]"), 0o600); err != nil {
		t.Fatal(err)
	}
	blocker := filepath.Join(dir, "not-a-dir")
	if err := os.WriteFile(blocker, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "signatory.yaml")
	src := fmt.Sprintf("base_dir: %s\nvaults:\n  local:\n    driver: file\n    config: {file: %s}\naudit: {file: %s}\ntezos:\n",
		filepath.Join(dir, "data"), keys, filepath.Join(blocker, "audit.log"))
	if err := os.WriteFile(cfg, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		_, _, err := run(t, "list", "-c", cfg)
		if err == nil || strings.Contains(err.Error(), "locked") || !strings.Contains(err.Error(), "audit") {
			t.Fatalf("start-up %d: %v, want the audit journal's error", i, err)
		}
	}
	if _, _, err := run(t, "watermark", "export", "-c", cfg); err != nil {
		t.Fatalf("the store was left locked by the failed start-up: %v", err)
	}
}

// TestTz5GenerateImport: `generate -t tz5` makes an ML-DSA-44 key in a file vault, octez's mdsk
// imports (from stdin) to its known address, both are listed, and `create bls proof` refuses a
// tz5 key; a tz5 key listed with the default (consensus) policy stops the config.
func TestTz5GenerateImport(t *testing.T) {
	cfg, _ := tempConfig(t, "  "+tv.OctezTz5PKH+":\n    allow: {generic: [transaction]}\n")
	out, _, err := run(t, "-c", cfg, "generate", "-v", "local", "-t", "tz5", "--json")
	if err != nil {
		t.Fatal(err)
	}
	var gen []keyJSON
	if err := json.Unmarshal([]byte(out), &gen); err != nil || len(gen) != 1 || gen[0].Curve != "mldsa44" || !strings.HasPrefix(gen[0].PKH, "tz5") {
		t.Fatalf("%v %.200s", err, out)
	}
	sk, _ := tv.OctezTz5()
	var stdout, stderr bytes.Buffer
	root := NewRoot(&stdout, &stderr)
	root.SetIn(strings.NewReader(sk + "\n"))
	root.SetArgs([]string{"-c", cfg, "import", "-v", "local", "--json"})
	if err := root.Execute(); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(stdout.String(), tv.OctezTz5PKH) || strings.Contains(stdout.String(), sk[:60]) {
		t.Fatalf("import output: %.200s", stdout.String())
	}
	out, _, err = run(t, "-c", cfg, "list", "--json")
	if err != nil {
		t.Fatal(err)
	}
	var list []keyJSON
	_ = json.Unmarshal([]byte(out), &list)
	if len(list) != 2 {
		t.Fatalf("list: %.300s", out)
	}
	if _, _, err := run(t, "-c", cfg, "create", "bls", "proof", tv.OctezTz5PKH); err == nil || !strings.Contains(err.Error(), "not a tz4 (BLS) key") {
		t.Fatalf("proof of possession for tz5: %v", err)
	}
	cfg, _ = tempConfig(t, "  "+tv.OctezTz5PKH+":\n")
	if _, _, err := run(t, "-c", cfg, "list"); err == nil || !strings.Contains(err.Error(), "tz5 keys cannot be delegates or consensus keys") {
		t.Fatalf("tz5 with the default policy: %v", err)
	}
}
