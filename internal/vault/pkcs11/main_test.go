package pkcs11

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/signatory-go/signatory/internal/testdaemon"
	"github.com/signatory-go/signatory/internal/vault"
	"github.com/signatory-go/signatory/internal/vault/pkcs11/softhsmtest"
)

// One SoftHSM2 store serves the whole package: SOFTHSM2_CONF is read by C_Initialize, once per
// process. Its tokens:
//
//	test  k1 P-256 (id 01), k2 secp256k1 (02), k3 Ed25519 (03), k5 P-384 (05), k9 RSA (09)
//	gen   empty, for import and generate
//	pin   empty, only ever opened with a wrong PIN
//	conf  c1 P-256 (id 11), c2 secp256k1 (12), c3 Ed25519 (13), for the conformance suite
const (
	testPIN = "1234"
	soPIN   = "5678"
)

var (
	store    *softhsmtest.Store
	setupErr error
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "signatory-softhsm")
	if err != nil {
		panic(err)
	}
	store, setupErr = setup(dir)
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func setup(dir string) (*softhsmtest.Store, error) {
	tools, err := softhsmtest.Find()
	if err != nil {
		return nil, err
	}
	s, err := softhsmtest.NewStore(tools, dir)
	if err != nil {
		return nil, err
	}
	os.Setenv("SOFTHSM2_CONF", s.Conf)
	os.Unsetenv(EnvPIN)
	os.Unsetenv(EnvSlot)
	os.Unsetenv(EnvLibraryPath)
	for _, label := range []string{"test", "gen", "pin", "conf"} {
		if err := s.InitToken(label, testPIN, soPIN); err != nil {
			return nil, err
		}
	}
	for _, k := range [][3]string{{"EC:prime256v1", "01", "k1"}, {"EC:secp256k1", "02", "k2"},
		{"EC:edwards25519", "03", "k3"}, {"EC:secp384r1", "05", "k5"}, {"rsa:2048", "09", "k9"}} {
		if err := s.KeyPair("test", testPIN, k[0], k[1], k[2]); err != nil {
			return nil, err
		}
	}
	for _, k := range [][3]string{{"EC:prime256v1", "11", "c1"}, {"EC:secp256k1", "12", "c2"}, {"EC:edwards25519", "13", "c3"}} {
		if err := s.KeyPair("conf", testPIN, k[0], k[1], k[2]); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// need skips (or, in CI, fails) a test when SoftHSM2 is not installed.
func need(t testing.TB) {
	t.Helper()
	if setupErr != nil {
		testdaemon.Unavailable(t, "%v", setupErr)
	}
}

// open opens a vault from YAML (the SoftHSM2 library_path is added unless given) and closes it at the end of the test.
func open(t testing.TB, config string) (*Vault, *testdaemon.Buffer) {
	t.Helper()
	v, logs, err := tryOpen(config)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { v.Close() })
	return v, logs
}

func tryOpen(config string) (*Vault, *testdaemon.Buffer, error) {
	var node yaml.Node
	full := config
	if !strings.Contains(config, "library_path:") {
		full = fmt.Sprintf("library_path: %s\n%s", store.Module, config)
	}
	if err := yaml.Unmarshal([]byte(full), &node); err != nil {
		return nil, nil, err
	}
	logs := &testdaemon.Buffer{}
	log := slog.New(slog.NewTextHandler(logs, nil))
	v, err := New(context.Background(), "hsm", node.Content[0], vault.Env{Logger: log})
	if err != nil {
		return nil, logs, err
	}
	return v.(*Vault), logs, nil
}

// keysByLabel lists v and indexes the keys by ID().
func keysByLabel(t testing.TB, v *Vault) map[string]*Key {
	t.Helper()
	list, err := v.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*Key{}
	for _, k := range list {
		out[k.ID()] = k.(*Key)
	}
	return out
}
