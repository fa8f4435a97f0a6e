// Package yubihsm runs the real signatory binary with a yubihsm vault against the in-process
// YubiHSM 2 emulator (yubihsmfake) on a loopback port: signing over HTTP on every curve,
// watermarks, a connector that stops and comes back, sessions the device forgets, and the CLI's
// generate and import.
package yubihsm

import (
	"fmt"
	"os"
	"testing"

	"github.com/signatory-go/signatory/internal/request/requesttest"
	"github.com/signatory-go/signatory/internal/testdaemon"
	"github.com/signatory-go/signatory/internal/tezos"
	"github.com/signatory-go/signatory/internal/vault/yubihsm/yubihsmfake"
)

func TestMain(m *testing.M) { testdaemon.Main(m) }

const password = "test yubihsm password"

// harness is an emulated YubiHSM 2 behind an emulated yubihsm-connector, and a daemon config
// with a yubihsm vault "yubi" on it.
type harness struct {
	*testdaemon.Daemon
	t    *testing.T
	dev  *yubihsmfake.Device
	conn *yubihsmfake.Connector
}

// newHarness makes the device with authentication key 1 and keys 0101 (P-256), 0102
// (secp256k1) and 0103 (Ed25519).
func newHarness(t *testing.T) *harness {
	dev := yubihsmfake.New()
	dev.PutAuthKey(1, password, 0, 0)
	for i, c := range []tezos.Curve{tezos.P256, tezos.Secp256k1, tezos.Ed25519} {
		priv, err := tezos.GenerateKey(c)
		if err != nil {
			t.Fatal(err)
		}
		if err := dev.PutKey(uint16(0x0101+i), fmt.Sprintf("k%d", i+1), 1, 0, priv); err != nil {
			t.Fatal(err)
		}
	}
	conn, err := yubihsmfake.Start(dev, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(conn.Stop)
	d := testdaemon.New(t)
	d.Env = append(os.Environ(), "TEST_YUBIHSM_PASSWORD="+password)
	d.ReportRaces = true
	h := &harness{Daemon: d, t: t, dev: dev, conn: conn}
	h.writeConfig(nil)
	return h
}

// writeConfig writes the config, on new ports, with a policy allowing transactions and
// consensus for pkhs.
func (h *harness) writeConfig(pkhs []string) {
	addrs := testdaemon.FreeAddrs(h.t, 2)
	h.Addr, h.UtilityAddr = addrs[0], addrs[1]
	h.WriteConfig(fmt.Sprintf(`vaults:
  yubi:
    driver: yubihsm
    config:
      address: %s
      password_env: TEST_YUBIHSM_PASSWORD
      auth_key_id: 1
      sessions: 2
watermark:
  driver: file
tezos:
%s`, h.conn.Addr(), testdaemon.Policy(pkhs...)))
}

const chain = "ed9d217c" // NetXxkAx4woPLyu

// attestation builds a tag-21 attestation on chain; variant changes the branch.
func attestation(level, round int32, variant byte) string {
	return requesttest.Attestation(chain, level, round, variant)
}
