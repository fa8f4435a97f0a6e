// Package softhsmtest gives tests a scratch SoftHSM2 token store: a softhsm2.conf whose tokens
// live in a temporary directory, tokens made with softhsm2-util and keys made with pkcs11-tool
// (one-shot tools, run with testdaemon.RunTool).
//
// When the programs are missing, Find says so: tests pass its error to testdaemon.Unavailable,
// which skips them, or fails them where the servers are required (CI).
package softhsmtest

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/signatory-go/signatory/internal/testdaemon"
)

// ModuleEnv overrides where libsofthsm2.so is looked for.
const ModuleEnv = "SIGNATORY_SOFTHSM_MODULE"

// Tools are the SoftHSM2 and OpenSC programs and the SoftHSM2 PKCS#11 module.
type Tools struct {
	SoftHSMUtil string // softhsm2-util
	PKCS11Tool  string // pkcs11-tool (OpenSC)
	Module      string // libsofthsm2.so
}

// Find locates the tools; the error names what is missing and how to install it.
func Find() (*Tools, error) {
	var t Tools
	var missing []string
	var err error
	if t.SoftHSMUtil, err = exec.LookPath("softhsm2-util"); err != nil {
		missing = append(missing, "softhsm2-util")
	}
	if t.PKCS11Tool, err = exec.LookPath("pkcs11-tool"); err != nil {
		missing = append(missing, "pkcs11-tool")
	}
	candidates := []string{os.Getenv(ModuleEnv), "/usr/lib/softhsm/libsofthsm2.so",
		"/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so", "/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
		"/usr/local/lib/softhsm/libsofthsm2.so", "/opt/homebrew/lib/softhsm/libsofthsm2.so"}
	for _, c := range candidates {
		if c == "" {
			continue
		}
		if _, err := os.Stat(c); err == nil {
			t.Module = c
			break
		}
	}
	if t.Module == "" {
		missing = append(missing, "libsofthsm2.so")
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("SoftHSM2 test tools missing: %s (apt-get install softhsm2 opensc)", strings.Join(missing, ", "))
	}
	return &t, nil
}

// Store is a SoftHSM2 configuration with its tokens in TokenDir.
type Store struct {
	*Tools
	Dir      string // holds softhsm2.conf and the token directory
	Conf     string // the softhsm2.conf path: export it as SOFTHSM2_CONF
	TokenDir string
}

// NewStore writes dir/softhsm2.conf with its tokens in dir/tokens (file object store).
func NewStore(tools *Tools, dir string) (*Store, error) {
	s := &Store{Tools: tools, Dir: dir, Conf: filepath.Join(dir, "softhsm2.conf"), TokenDir: filepath.Join(dir, "tokens")}
	if err := os.MkdirAll(s.TokenDir, 0o700); err != nil {
		return nil, err
	}
	conf := fmt.Sprintf("directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n", s.TokenDir)
	if err := os.WriteFile(s.Conf, []byte(conf), 0o600); err != nil {
		return nil, err
	}
	return s, nil
}

// Env is the SOFTHSM2_CONF assignment for a child process's environment.
func (s *Store) Env() string { return "SOFTHSM2_CONF=" + s.Conf }

func (s *Store) run(name string, args ...string) error {
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), s.Env())
	_, err := testdaemon.RunTool(cmd)
	return err
}

// InitToken creates a token in the next free slot.
func (s *Store) InitToken(label, pin, soPIN string) error {
	return s.run(s.SoftHSMUtil, "--init-token", "--free", "--label", label, "--pin", pin, "--so-pin", soPIN)
}

// KeyPair generates a key pair on a token with pkcs11-tool. keyType is one of
// EC:edwards25519, EC:secp256k1, EC:prime256v1, EC:secp384r1, rsa:2048; id is hex.
func (s *Store) KeyPair(token, pin, keyType, id, label string) error {
	return s.run(s.PKCS11Tool, "--module", s.Module, "--token-label", token, "--login", "--pin", pin,
		"--keypairgen", "--key-type", keyType, "--id", id, "--label", label)
}

// Unplug moves the token directory away, as if the token were removed; Plug puts it back.
func (s *Store) Unplug() error { return rename(s.TokenDir, s.TokenDir+".unplugged") }

// Plug undoes Unplug.
func (s *Store) Plug() error { return rename(s.TokenDir+".unplugged", s.TokenDir) }

func rename(from, to string) error {
	if _, err := os.Stat(to); err == nil {
		return errors.New(to + " already exists")
	}
	return os.Rename(from, to)
}
