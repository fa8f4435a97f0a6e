// Package cluster runs three real signatory processes that share one watermark store (PostgreSQL,
// then etcd) under a conflicting load, while an instance is killed and while the store restarts,
// and checks that no (key, class, level, round) is ever signed with two different payloads.
package cluster

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ecadlabs/gotez/v2/crypt"

	"github.com/signatory-go/signatory/internal/testdaemon"
	"github.com/signatory-go/signatory/internal/tezos"
)

func TestMain(m *testing.M) { testdaemon.Main(m) }

type testKey struct {
	priv crypt.PrivateKey
	pkh  string
}

// newKeys writes a secret_keys.json with n fresh ed25519 keys and returns them and the file path.
func newKeys(t testing.TB, n int) ([]testKey, string) {
	var ks []testKey
	var entries []map[string]string
	for i := range n {
		priv, err := tezos.GenerateKey(tezos.Ed25519)
		if err != nil {
			t.Fatal(err)
		}
		ks = append(ks, testKey{priv: priv, pkh: priv.Public().Hash().String()})
		entries = append(entries, map[string]string{"name": fmt.Sprintf("k%d", i), "value": "unencrypted:" + string(priv.ToBase58())})
	}
	js, _ := json.Marshal(entries)
	path := filepath.Join(t.TempDir(), "secret_keys.json")
	if err := os.WriteFile(path, js, 0o600); err != nil {
		t.Fatal(err)
	}
	return ks, path
}

// instance is one `signatory serve` process; restarts keep its config, ports, data and log.
type instance struct{ *testdaemon.Daemon }

// newInstance writes the config of one cluster member: the shared key file, its own base_dir and
// ports, and the shared watermark section (already indented under `watermark:`).
func newInstance(t testing.TB, name, keyFile string, ks []testKey, watermark string) *instance {
	in := &instance{testdaemon.New(t)}
	in.Name = name
	in.StartTimeout = 30 * time.Second
	in.Ready = func(status int, _ []byte) bool { return status == 200 }
	in.Client = client
	var tz strings.Builder
	for _, k := range ks {
		fmt.Fprintf(&tz, "  %s:\n", k.pkh)
	}
	in.WriteConfig(testdaemon.FileVault(keyFile) + "watermark:\n" + watermark + "tezos:\n" + tz.String())
	return in
}

// start runs the process and waits (up to 30 s) until /healthz answers 200.
func (in *instance) start() {
	in.TB.Helper()
	in.Logf("---- start %s", time.Now().Format(time.RFC3339Nano))
	in.Serve("--no-list")
}
