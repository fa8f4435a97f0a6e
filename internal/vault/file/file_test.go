package file

import (
	"crypto/sha256"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	tv "github.com/signatory-go/signatory/internal/testvectors"
	"github.com/signatory-go/signatory/internal/tezos"
	"github.com/signatory-go/signatory/internal/vault"
	"github.com/signatory-go/signatory/internal/vault/vaulttest"
	"gopkg.in/yaml.v3"
)

func write(t *testing.T, entries string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "secret_keys")
	if err := os.WriteFile(p, []byte(entries), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestOpenReferenceKeys(t *testing.T) {
	t.Parallel()
	p := write(t, `[{"name":"a","value":"unencrypted:`+tv.K1SK+`"},{"name":"b","value":"`+tv.K5SK+`"},
		{"name":"c","value":"unencrypted:`+tv.K6SK+`"},{"name":"d","value":"unencrypted:`+tv.K7SK+`"}]`)
	v, err := Open("local", Config{File: p}, vault.Env{})
	if err != nil {
		t.Fatal(err)
	}
	keys, _ := v.List(t.Context())
	want := []string{tv.K1PKH, tv.K5PKH, tv.K6PKH, tv.K7PKH}
	if len(keys) != len(want) {
		t.Fatalf("%d keys", len(keys))
	}
	for i, k := range keys {
		if got := k.PublicKey().Hash().String(); got != want[i] {
			t.Errorf("key %d: %s, want %s", i, got, want[i])
		}
	}
}

func TestEncryptedKeys(t *testing.T) {
	t.Setenv("TEST_VAULT_PW", "s3cret password")
	dir := t.TempDir()
	p := filepath.Join(dir, "keys.json")
	v, err := Open("enc", Config{File: p, PasswordEnv: "TEST_VAULT_PW"}, vault.Env{Create: true})
	if err != nil {
		t.Fatal(err)
	}
	var pkhs []string
	for _, c := range tezos.Curves {
		k, err := v.Generate(t.Context(), c, "")
		if err != nil {
			t.Fatal(err)
		}
		pkhs = append(pkhs, k.PublicKey().Hash().String())
	}
	fi, _ := os.Stat(p)
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %o", fi.Mode().Perm())
	}
	raw, _ := os.ReadFile(p)
	var entries []entry
	if err := json.Unmarshal(raw, &entries); err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if !strings.HasPrefix(e.Value, "encrypted:") || !tezos.IsEncrypted(strings.TrimPrefix(e.Value, "encrypted:")) {
			t.Fatalf("key written unencrypted: %s", e.Value[:14])
		}
	}
	// Reopen with the password: same keys.
	v2, err := Open("enc", Config{File: p, PasswordEnv: "TEST_VAULT_PW"}, vault.Env{})
	if err != nil {
		t.Fatal(err)
	}
	keys, _ := v2.List(t.Context())
	for i, k := range keys {
		if k.PublicKey().Hash().String() != pkhs[i] {
			t.Fatal("reopened keys differ")
		}
	}
	// Wrong password, no password, password file.
	t.Setenv("TEST_VAULT_PW", "wrong")
	if _, err := Open("enc", Config{File: p, PasswordEnv: "TEST_VAULT_PW"}, vault.Env{}); err == nil || !strings.Contains(err.Error(), "wrong password") {
		t.Fatalf("wrong password: %v", err)
	}
	if _, err := Open("enc", Config{File: p}, vault.Env{}); err == nil || !strings.Contains(err.Error(), "is encrypted") {
		t.Fatalf("no password: %v", err)
	}
	pwFile := filepath.Join(dir, "pw")
	os.WriteFile(pwFile, []byte("s3cret password\n"), 0o600)
	if _, err := Open("enc", Config{File: p, PasswordFile: pwFile}, vault.Env{}); err != nil {
		t.Fatalf("password file: %v", err)
	}
}

// TestEncryptedLayout checks the octez layout: a 56-byte payload, salt(8) ‖ secretbox(32+16).
func TestEncryptedLayout(t *testing.T) {
	t.Parallel()
	priv, _ := tezos.ParseSecretKey(tv.K1SK, nil)
	enc, err := tezos.EncryptSecretKey(priv, []byte("pw"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(enc, "edesk") || len(enc) != 88 {
		t.Fatalf("edesk form %q (len %d), want 88 characters", enc[:5], len(enc))
	}
}

func TestBadFiles(t *testing.T) {
	t.Parallel()
	badChecksum := tv.K1SK[:len(tv.K1SK)-1] + "x"
	cases := []struct{ name, content, want string }{
		{"not json", `{`, "not a secret_keys JSON array"},
		{"bad checksum", `[{"name":"a","value":"unencrypted:` + badChecksum + `"}]`, `key "a": invalid secret key`},
		{"duplicate name", `[{"name":"a","value":"` + tv.K1SK + `"},{"name":"a","value":"` + tv.K2SK + `"}]`, `duplicate key name "a"`},
		{"duplicate key", `[{"name":"a","value":"` + tv.K1SK + `"},{"name":"b","value":"unencrypted:` + tv.K1SK + `"}]`, "are the same key"},
		{"no name", `[{"value":"` + tv.K1SK + `"}]`, "has no name"},
		{"public key instead", `[{"name":"a","value":"` + tv.K1PK + `"}]`, `key "a"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := write(t, c.content)
			_, err := Open("local", Config{File: p}, vault.Env{})
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want %q", err, c.want)
			}
			for _, secret := range []string{tv.K1SK[4:30], tv.K2SK[4:30], badChecksum[4:30]} {
				if strings.Contains(err.Error(), secret) {
					t.Fatalf("error leaks a secret key: %v", err)
				}
			}
		})
	}
	if _, err := Open("local", Config{File: "/nonexistent/keys.json"}, vault.Env{}); err == nil || !strings.Contains(err.Error(), "cannot read key file") {
		t.Fatalf("missing file: %v", err)
	}
	if _, err := Open("local", Config{}, vault.Env{}); err == nil {
		t.Fatal("empty config accepted")
	}
}

func TestImportRefusesDuplicatesAndWritesNothing(t *testing.T) {
	t.Parallel()
	p := write(t, `[{"name":"a","value":"unencrypted:`+tv.K1SK+`"}]`)
	before, _ := os.ReadFile(p)
	v, err := Open("local", Config{File: p}, vault.Env{})
	if err != nil {
		t.Fatal(err)
	}
	k1, _ := tezos.ParseSecretKey(tv.K1SK, nil)
	k2, _ := tezos.ParseSecretKey(tv.K2SK, nil)
	if _, err := v.Import(t.Context(), k1, "other"); err == nil {
		t.Fatal("same key imported twice")
	}
	if _, err := v.Import(t.Context(), k2, "a"); err == nil {
		t.Fatal("same name imported twice")
	}
	after, _ := os.ReadFile(p)
	if sha256.Sum256(before) != sha256.Sum256(after) {
		t.Fatal("a refused import changed the key file")
	}
	if _, err := v.Import(t.Context(), k2, ""); err != nil {
		t.Fatal(err)
	}
	v2, err := Open("local", Config{File: p}, vault.Env{})
	if err != nil {
		t.Fatal(err)
	}
	keys, _ := v2.List(t.Context())
	if len(keys) != 2 || keys[1].ID() != tv.K2PKH {
		t.Fatalf("after import: %d keys", len(keys))
	}
}

func TestKeyFilePermissions(t *testing.T) {
	t.Parallel()
	p := write(t, `[{"name":"a","value":"unencrypted:`+tv.K1SK+`"}]`)
	if err := os.Chmod(p, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Open("local", Config{File: p}, vault.Env{}); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("world-readable key file accepted: %v", err)
	}
	if _, err := Open("local", Config{File: p, InsecurePermissions: true}, vault.Env{}); err != nil {
		t.Fatalf("opt-in refused: %v", err)
	}
}

func TestConformance(t *testing.T) {
	t.Parallel()
	pw := filepath.Join(t.TempDir(), "password") // for the keys Import and Generate encrypt
	if err := os.WriteFile(pw, []byte("conformance password\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tz5, _ := tv.OctezTz5()
	p := write(t, `[{"name":"a","value":"unencrypted:`+tv.K1SK+`"},{"name":"b","value":"unencrypted:`+tv.K5SK+`"},
		{"name":"c","value":"unencrypted:`+tv.K6SK+`"},{"name":"d","value":"unencrypted:`+tv.K7SK+`"},
		{"name":"e","value":"unencrypted:`+tz5+`"}]`)
	vaulttest.Run(t, vaulttest.Fixture{
		Driver: Driver,
		Open: func(t *testing.T) vault.Vault {
			node := &yaml.Node{}
			if err := yaml.Unmarshal([]byte("{file: "+p+", password_file: "+pw+"}"), node); err != nil {
				t.Fatal(err)
			}
			v, err := New(t.Context(), "local", node.Content[0], vault.Env{})
			if err != nil {
				t.Fatal(err)
			}
			return v
		},
		Curves:     tezos.Curves,
		Generate:   tezos.Curves,
		Import:     tezos.Curves,
		Persistent: true,
	})
}
