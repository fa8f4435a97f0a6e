package config

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	tv "github.com/signatory-go/signatory/internal/testvectors"
	"github.com/signatory-go/signatory/internal/yamlstrict"
)

func TestExampleConfig(t *testing.T) {
	t.Parallel()
	c, err := Load(filepath.Join("..", "..", "examples", "signatory.yaml"), "")
	if err != nil {
		t.Fatal(err)
	}
	if c.Server.Address != "127.0.0.1:6732" || c.Watermark.Driver != "file" || len(c.Policies) != 4 {
		t.Fatalf("%+v", c)
	}
	if c.Vaults["local"].Driver != "file" {
		t.Fatal("vault local missing")
	}
	if !c.Policies["tz4XXtsYav3fZz2FSDa7hcx4F8sh8SaDWNME"].AllowPoP {
		t.Fatal("tz4 PoP not allowed")
	}
}

func TestDefaults(t *testing.T) {
	c, err := Parse([]byte("tezos:\n  "+tv.K1PKH+":\n"), "")
	if err != nil {
		t.Fatal(err)
	}
	if c.BaseDir != DefaultBaseDir || c.Server.Address != ":6732" || c.Server.UtilityAddress != ":9583" ||
		c.Watermark.Driver != "file" || c.Server.MaxBodyBytes != 64<<10 || time.Duration(c.Server.ReadTimeout) != 10*time.Second {
		t.Fatalf("defaults: %+v", c)
	}
	if len(c.Policies[tv.K1PKH].Requests) != 3 {
		t.Fatal("null policy is not the default")
	}
	c, _ = Parse([]byte("base_dir: /tmp/x\n"), "/override")
	if c.BaseDir != "/override" {
		t.Fatal("--base-dir not applied")
	}
	t.Setenv("SIG_TEST_DIR", "/from/env")
	c, _ = Parse([]byte("base_dir: $SIG_TEST_DIR/sub\nserver: {read_timeout: 3, write_timeout: 2m}\n"), "")
	if c.BaseDir != "/from/env/sub" || time.Duration(c.Server.ReadTimeout) != 3*time.Second || time.Duration(c.Server.WriteTimeout) != 2*time.Minute {
		t.Fatalf("%+v", c)
	}
}

func TestReferenceConfigShapes(t *testing.T) {
	t.Parallel()
	src := `
base_dir: /var/lib/signatory
server:
  address: :6732
  utility_address: :9583
  authorized_keys: ` + tv.K3PK + `
vaults:
  kms:
    driver: cloudkms
    config: {project: p, location: europe-north1, key_ring: ring}
  local_file:
    driver: file
    config: /etc/signatory/secret.json
watermark:
  driver: file
tezos:
  ` + tv.K1PKH + `:
    vault: no-effect-but-accepted
    allowed_operations: [generic, block]
    allowed_kinds: [transaction]
  ` + tv.K2PKH + `:
    allow:
      endorsement:
      generic: [transaction]
`
	c, err := Parse([]byte(src), "")
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Server.AuthorizedKeys) != 1 || len(c.Warnings) < 2 {
		t.Fatalf("authorized keys %v, warnings %v", c.Server.AuthorizedKeys, c.Warnings)
	}
	if c.KeyOrder[0] != tv.K1PKH || c.KeyOrder[1] != tv.K2PKH {
		t.Fatal("key order lost")
	}
}

func TestErrorsNameThePlace(t *testing.T) {
	t.Parallel()
	cases := []struct{ name, src, want string }{
		{"bad pkh", "tezos:\n  tz1nope:\n", "line 2: tezos: invalid public key hash"},
		{"edpk as key", "tezos:\n  " + tv.K1PK + ":\n", "tezos: invalid public key hash"},
		{"bad kind", "tezos:\n  " + tv.K1PKH + ":\n    allow: {foo: }\n", "tezos." + tv.K1PKH + ": invalid request kind `foo`"},
		{"bad op", "tezos:\n  " + tv.K1PKH + ":\n    allow: {generic: [nope]}\n", "invalid operation kind `nope`"},
		{"dup key", "tezos:\n  " + tv.K1PKH + ":\n  " + tv.K1PKH + ":\n", ""},
		{"bad address", "server: {address: 6732}\n", "server.address"},
		{"unknown policy key", "tezos:\n  " + tv.K1PKH + ":\n    allow: {generic: [transaction]}\n    limit: {max_fee: 1}\n", `line 4: unknown config key "limit"`},
		// Spending limits: each mistake names the key (tezos.<pkh>) and the line.
		{"unknown limit", "tezos:\n  " + tv.K1PKH + ":\n    allow: {generic: [transaction]}\n    limits:\n      max_fees: 1\n", "tezos." + tv.K1PKH + ": line 5: unknown config key \"max_fees\""},
		{"negative amount", "tezos:\n  " + tv.K1PKH + ":\n    allow: {generic: [transaction]}\n    limits:\n      max_amount: -5\n", "tezos." + tv.K1PKH + ": line 5: \"-5\" is not an amount in tez"},
		{"seven decimals", "tezos:\n  " + tv.K1PKH + ":\n    allow: {generic: [transaction]}\n    limits:\n      max_fee: 0.0000001\n", "line 5: \"0.0000001\" is not an amount in tez"},
		{"float syntax", "tezos:\n  " + tv.K1PKH + ":\n    allow: {generic: [transaction]}\n    limits:\n      max_fee: 1e3\n", "line 5: \"1e3\" is not an amount in tez"},
		{"period of 0", "tezos:\n  " + tv.K1PKH + ":\n    allow: {generic: [transaction]}\n    limits:\n      max_total: {amount: 1000, period: 0s}\n", "tezos." + tv.K1PKH + ": line 5: limits.max_total.period must be more than 0"},
		{"total without period", "tezos:\n  " + tv.K1PKH + ":\n    allow: {generic: [transaction]}\n    limits:\n      max_total: {amount: 1000}\n", "line 5: limits.max_total needs amount and period"},
		{"count of 0", "tezos:\n  " + tv.K1PKH + ":\n    allow: {generic: [transaction]}\n    limits:\n      max_operations: {count: 0, period: 1h}\n", "line 5: limits.max_operations.count must be at least 1"},
		{"malformed destination", "tezos:\n  " + tv.K1PKH + ":\n    allow: {generic: [transaction]}\n    limits:\n      destinations: [tz1WGcYos3hL7GXYXjKrMnSFdkT7FyXnFBvX]\n", "tezos." + tv.K1PKH + ": line 5: limits.destinations: \"tz1WGcYos3hL7GXYXjKrMnSFdkT7FyXnFBvX\" is not an address"},
		{"delegate not implicit", "tezos:\n  " + tv.K1PKH + ":\n    allow: {generic: [transaction]}\n    limits:\n      delegates: [KT1BEqzn5Wx8uJrZNvuS9DVHmLvG9td3fDLi]\n", "line 5: limits.delegates: \"KT1BEqzn5Wx8uJrZNvuS9DVHmLvG9td3fDLi\" is not an implicit address"},
		{"limits with drain_delegate", "tezos:\n  " + tv.K1PKH + ":\n    allow: {generic: [transaction, drain_delegate]}\n    limits:\n      max_amount: 1\n", "tezos." + tv.K1PKH + ": line 4: limits cannot bound `drain_delegate`"},
		{"limits with pack", "tezos:\n  " + tv.K1PKH + ":\n    allow: {generic: [transaction], pack: }\n    limits:\n      max_amount: 1\n", "line 4: limits cannot bound `pack`"},
		{"entrypoints of an implicit account", "tezos:\n  " + tv.K1PKH + ":\n    allow: {generic: [transaction]}\n    limits:\n      entrypoints: {tz1WGcYos3hL7GXYXjKrMnSFdkT7FyXnFBvf: [transfer]}\n", "line 5: limits.entrypoints: \"tz1WGcYos3hL7GXYXjKrMnSFdkT7FyXnFBvf\" is not a contract address"},
		{"body limit above the bound", "server: {max_body_bytes: 2000000}\n", "server.max_body_bytes: 2000000 is above the limit"},
		{"vault without driver", "vaults:\n  v:\n    config: {}\n", "vaults.v: driver is required"},
		{"jwt and keys", "server:\n  authorized_keys: [" + tv.K3PK + "]\n  jwt: {users: {}}\n", "cannot use both JWT and static authorized keys"},
		{"jwt no users", "server:\n  jwt: {users: {}}\n", "server.jwt: no users"},
		{"jwt weak password", "server:\n  jwt: {users: {u1: {password: short, secret: x}}}\n", "JWT: config validation failed for user u1: password should be at least 16 characters"},
		{"policy hook not a URL", "policy_hook: {address: 127.0.0.1:6733}\n", "policy_hook.address"},
		{"policy hook bad key", "policy_hook: {address: http://127.0.0.1:1, authorized_keys: [edpkNOPE]}\n", "policy_hook.authorized_keys"},
		{"bad authorized key", "server: {authorized_keys: [edpkNOPE]}\n", "server.authorized_keys"},
		{"tls half", "server: {tls: {cert_file: a}}\n", "server.tls"},
		{"not yaml", "tezos: [\n", "yaml"},
		{"bad duration", "server: {read_timeout: soon}\n", "invalid duration"},
		// The socket transports: no JWT and no TLS there, so a config relying on either is refused.
		{"socket address", "server: {socket_address: 7732}\n", "server.socket_address"},
		{"unix socket relative", "server: {unix_socket: signer.sock}\n", "server.unix_socket: \"signer.sock\" is not an absolute path"},
		{"socket with jwt", "server:\n  socket_address: 127.0.0.1:7732\n  jwt: {users: {u1: {password: aaaaaaaaaaaaaaaaaaaa, secret: x}}}\n", "the socket transports have no JWT"},
		{"unix socket with client certificates only", "server:\n  unix_socket: /run/s.sock\n  tls: {cert_file: a, key_file: b, client_ca_file: c}\n", "protects only the HTTP port"},
		{"base_dir from an unset variable (found by FuzzConfig)", "base_dir: $SIGNATORY_TEST_UNSET_VAR\n", "base_dir is empty"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse([]byte(c.src), "")
			if err == nil {
				t.Fatal("accepted")
			}
			if c.want != "" && !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %q does not contain %q", err, c.want)
			}
		})
	}
	if _, err := Load(filepath.Join(t.TempDir(), "missing.yaml"), ""); err == nil || !strings.Contains(err.Error(), "cannot read config file") {
		t.Fatalf("missing file: %v", err)
	}
	p := filepath.Join(t.TempDir(), "c.yaml")
	os.WriteFile(p, []byte("tezos:\n  tz1nope:\n"), 0o600)
	if _, err := Load(p, ""); err == nil || !strings.Contains(err.Error(), p) {
		t.Fatalf("error does not name the file: %v", err)
	}
}

// TestUnknownKeys: a misspelt key in any section stops loading with the key and its line, where
// a lenient decoder would have dropped it and started on a default (e.g. no authentication).
func TestUnknownKeys(t *testing.T) {
	t.Parallel()
	const pw, secret = "87GridNEG3gKZ3I!", "!sEtcU5RwLQYsA5qQ1c6zpo3FljQxfAKP"
	cases := []struct {
		section, src, key string
		line              int
	}{
		{"top level", "base_dir: /tmp/x\nbase_dri: /tmp/y\n", "base_dri", 2},
		{"server", "server:\n  address: 127.0.0.1:6732\n  socket_addres: /run/signatory.sock\n", "socket_addres", 3},
		{"server, authorized keys misspelt", "server:\n  authorised_keys: [" + tv.K3PK + "]\n", "authorised_keys", 2},
		{"tls", "server:\n  tls:\n    cert_file: a.crt\n    key_file: a.key\n    client_ca: ca.pem\n", "client_ca", 5},
		{"jwt", "server:\n  jwt:\n    usres: {}\n", "usres", 3},
		{"jwt user", "server:\n  jwt:\n    users:\n      u1:\n        password: '" + pw + "'\n        secret: '" + secret + "'\n        jwt_expiry: 5\n", "jwt_expiry", 7},
		{"jwt new_data", "server:\n  jwt:\n    users:\n      u1:\n        password: '" + pw + "'\n        secret: '" + secret + "'\n        new_data:\n          pasword: x\n", "pasword", 8},
		{"watermark", "watermark:\n  driver: file\n  confg: {journal: true}\n", "confg", 3},
		{"vaults entry", "vaults:\n  local:\n    driver: file\n    cofnig: {file: x.json}\n", "cofnig", 4},
		{"policy_hook", "policy_hook:\n  address: http://127.0.0.1:6733\n  timout: 3\n", "timout", 3},
		{"audit", "audit:\n  file: /tmp/audit.log\n  max_size: 10\n", "max_size", 3},
	}
	for _, c := range cases {
		t.Run(c.section, func(t *testing.T) {
			_, err := Parse([]byte(c.src), "")
			want := fmt.Sprintf("line %d: unknown config key %q", c.line, c.key)
			if err == nil || !strings.Contains(err.Error(), want) || !yamlstrict.IsConfigError(err) {
				t.Fatalf("error %v, want one containing %q", err, want)
			}
		})
	}
}

// TestServerTypo is the case: `servr:` in place of `server:` used to start a signer on
// all interfaces without authentication.
func TestServerTypo(t *testing.T) {
	t.Parallel()
	_, err := Parse([]byte("servr:\n  address: 127.0.0.1:6732\n  authorized_keys: ["+tv.K3PK+"]\n"), "")
	if err == nil || !strings.Contains(err.Error(), `line 1: unknown config key "servr"`) || !strings.Contains(err.Error(), "server") {
		t.Fatalf("%v", err)
	}
}

// TestEveryExample: every config shipped under examples/ still loads with the strict reader.
func TestEveryExample(t *testing.T) {
	t.Parallel()
	var files []string
	for _, pattern := range []string{"*.yaml", "*.yml", "*/*.yaml", "*/*.yml"} {
		m, _ := filepath.Glob(filepath.Join("..", "..", "examples", pattern))
		files = append(files, m...)
	}
	if len(files) == 0 {
		t.Fatal("no example config found")
	}
	for _, f := range files {
		if _, err := Load(f, ""); err != nil {
			t.Error(err)
		}
	}
}

func TestEmptyDocuments(t *testing.T) {
	t.Parallel()
	for _, src := range []string{"", "# nothing\n", "---\n", "~\n"} {
		c, err := Parse([]byte(src), "")
		if err != nil || c.Server.Address != DefaultAddress {
			t.Errorf("%q: %v", src, err)
		}
	}
	if _, err := Parse([]byte("just a string\n"), ""); err == nil || !strings.Contains(err.Error(), "expected a mapping") {
		t.Fatalf("%v", err)
	}
}

// TestSecondDocument: settings after a `---` would be ignored, so a second document is refused.
func TestSecondDocument(t *testing.T) {
	t.Parallel()
	_, err := Parse([]byte("base_dir: /tmp/x\n---\nservr: {address: ':1'}\n"), "")
	if err == nil || !strings.Contains(err.Error(), "second YAML document") || !strings.Contains(err.Error(), "line 2") {
		t.Fatalf("%v", err)
	}
	if _, err := Parse([]byte("base_dir: /tmp/x\n---\n"), ""); err != nil {
		t.Fatalf("a trailing document marker: %v", err)
	}
	if _, err := Parse([]byte("base_dir: /tmp/x\n---\n---\nservr: {}\n"), ""); err == nil || !strings.Contains(err.Error(), "second YAML document") {
		t.Fatalf("a third document: %v", err)
	}
}

// TestSocketConfig: the socket transports are off by default; with server.authorized_keys they
// may sit beside client certificates on the HTTP port; $VARS expand in the socket's path.
func TestSocketConfig(t *testing.T) {
	c, err := Parse([]byte("server: {}\n"), "")
	if err != nil || c.Server.SocketAddress != "" || c.Server.UnixSocket != "" {
		t.Fatalf("defaults: %+v %v", c.Server, err)
	}
	t.Setenv("SIGNATORY_TEST_RUN", "/run/sig")
	c, err = Parse([]byte("server:\n  socket_address: 127.0.0.1:7732\n  unix_socket: $SIGNATORY_TEST_RUN/signer.sock\n  authorized_keys: ["+tv.K3PK+"]\n  tls: {cert_file: a, key_file: b, client_ca_file: c}\n"), "")
	if err != nil || c.Server.SocketAddress != "127.0.0.1:7732" || c.Server.UnixSocket != "/run/sig/signer.sock" {
		t.Fatalf("%+v %v", c.Server, err)
	}
}
