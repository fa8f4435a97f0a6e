// Package hsm runs the real signatory binary with a pkcs11 vault on a SoftHSM2 token: signing
// over HTTP on every curve, watermarks, concurrent load, the CLI's generate and import, and a
// token that disappears and comes back while the daemon runs.
package hsm

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/signatory-go/signatory/internal/request/requesttest"
	"github.com/signatory-go/signatory/internal/testdaemon"
	"github.com/signatory-go/signatory/internal/vault/pkcs11/softhsmtest"
)

var (
	tools    *softhsmtest.Tools
	toolsErr error
)

func TestMain(m *testing.M) {
	tools, toolsErr = softhsmtest.Find()
	testdaemon.Main(m)
}

const pin = "1234"

// hsm is a SoftHSM2 token "signer" in a fresh store, and a daemon config using it.
type hsm struct {
	*testdaemon.Daemon
	t     *testing.T
	store *softhsmtest.Store
}

// newHSM makes the token with keys k1 (P-256), k2 (secp256k1) and k3 (Ed25519).
func newHSM(t *testing.T) *hsm {
	if toolsErr != nil {
		testdaemon.Unavailable(t, "%v", toolsErr)
	}
	d := testdaemon.New(t)
	store, err := softhsmtest.NewStore(tools, filepath.Join(d.Dir, "softhsm"))
	if err != nil {
		t.Fatal(err)
	}
	if err := store.InitToken("signer", pin, "5678"); err != nil {
		t.Fatal(err)
	}
	for _, k := range [][3]string{{"EC:prime256v1", "01", "k1"}, {"EC:secp256k1", "02", "k2"}, {"EC:edwards25519", "03", "k3"}} {
		if err := store.KeyPair("signer", pin, k[0], k[1], k[2]); err != nil {
			t.Fatal(err)
		}
	}
	d.Env = append(os.Environ(), store.Env(), "TEST_HSM_PIN="+pin)
	d.ReportRaces = true
	h := &hsm{Daemon: d, t: t, store: store}
	h.writeConfig(nil)
	return h
}

// writeConfig writes the config, on new ports, with a policy allowing transactions and
// consensus for pkhs.
func (h *hsm) writeConfig(pkhs []string) {
	addrs := testdaemon.FreeAddrs(h.t, 2)
	h.Addr, h.UtilityAddr = addrs[0], addrs[1]
	h.rewriteConfig(pkhs)
}

// rewriteConfig writes the config on the ports the daemon has (for a reload).
func (h *hsm) rewriteConfig(pkhs []string) {
	h.WriteConfig(fmt.Sprintf(`vaults:
  hsm:
    driver: pkcs11
    config:
      library_path: %s
      token_label: signer
      pin_env: TEST_HSM_PIN
      sessions: 4
watermark:
  driver: file
tezos:
%s`, tools.Module, testdaemon.Policy(pkhs...)))
}

const chain = "ed9d217c" // NetXxkAx4woPLyu

// attestation builds a tag-21 attestation on chain; variant changes the branch.
func attestation(level, round int32, variant byte) string {
	return requesttest.Attestation(chain, level, round, variant)
}
