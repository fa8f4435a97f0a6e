package yubihsm

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

func decode(t *testing.T, src string) Config {
	t.Helper()
	var n yaml.Node
	if err := yaml.Unmarshal([]byte(src), &n); err != nil {
		t.Fatal(err)
	}
	cfg, err := DecodeConfig(n.Content[0])
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func TestConfigSchema(t *testing.T) {
	for _, env := range []string{EnvAddress, EnvPassword, EnvAuthKeyID, EnvKeyImportDomains} {
		t.Setenv(env, "")
		os.Unsetenv(env)
	}
	pwFile := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(pwFile, []byte("from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := decode(t, `
address: localhost:12345
password_file: `+pwFile+`
auth_key_id: 0x0002
key_import_domains: 5
sessions: 3
keys:
  - id: 0x0064
  - label: baker
`)
	s, err := cfg.settings()
	if err != nil {
		t.Fatal(err)
	}
	if s.url != "http://localhost:12345" || s.password != "from-file" || s.authKeyID != 2 || s.domains != 5 ||
		s.sessions != 3 || len(s.keys) != 2 || *s.keys[0].ID != 0x64 || s.keys[1].Label != "baker" {
		t.Fatalf("settings: %+v", s)
	}

	// The reference's environment fallbacks.
	t.Setenv(EnvAddress, "https://hsm.example:8443/connector/api")
	t.Setenv(EnvPassword, "from-env")
	t.Setenv(EnvAuthKeyID, "0x10")
	t.Setenv(EnvKeyImportDomains, "0x8001")
	s, err = Config{}.settings()
	if err != nil {
		t.Fatal(err)
	}
	if s.url != "https://hsm.example:8443" || s.password != "from-env" || s.authKeyID != 16 || s.domains != 0x8001 || s.sessions != defaultSessions {
		t.Fatalf("from the environment: %+v", s)
	}
	t.Setenv("MY_PW", "mine")
	if s, err = (Config{PasswordEnv: "MY_PW"}).settings(); err != nil || s.password != "mine" {
		t.Fatalf("password_env: %+v %v", s, err)
	}

	for _, c := range []struct {
		cfg  Config
		env  map[string]string
		want string
	}{
		{Config{}, map[string]string{EnvAddress: ""}, "address is required"},
		{Config{Address: "ftp://x:1"}, nil, "not a host:port or an http(s) URL"},
		{Config{Address: "x:1/other"}, nil, "/connector/api"},
		{Config{Address: "x:1"}, map[string]string{EnvAuthKeyID: ""}, "auth_key_id is required"},
		{Config{Address: "x:1"}, map[string]string{EnvAuthKeyID: "one"}, "is not an object ID"},
		{Config{Address: "x:1", AuthKeyID: 1, Password: "a", PasswordEnv: "B"}, nil, "only one of"},
		{Config{Address: "x:1", AuthKeyID: 1}, map[string]string{EnvPassword: ""}, "the password is empty"},
		{Config{Address: "x:1", AuthKeyID: 1, Sessions: 17}, nil, "sessions must be between 1 and 16"},
		{Config{Address: "x:1", AuthKeyID: 1, Keys: []KeyConfig{{}}}, nil, "needs an id or a label"},
		{Config{Address: "x:1", AuthKeyID: 1, Keys: []KeyConfig{{Label: strings.Repeat("x", 41)}}}, nil, "longer than 40"},
		{Config{Address: "x:1", AuthKeyID: 1, PasswordFile: "/nonexistent/pw"}, nil, "cannot read password file"},
	} {
		for k, v := range c.env {
			t.Setenv(k, v)
		}
		_, err := c.cfg.settings()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want %q", c.cfg, err, c.want)
		}
		t.Setenv(EnvAddress, "x:1")
		t.Setenv(EnvAuthKeyID, "1")
		t.Setenv(EnvPassword, "p")
	}
	t.Setenv(EnvPassword, "")
	os.Unsetenv(EnvPassword)
	if _, err := (Config{Address: "x:1", AuthKeyID: 1}).settings(); err == nil || !strings.Contains(err.Error(), "no password") {
		t.Fatalf("no password: %v", err)
	}
}
