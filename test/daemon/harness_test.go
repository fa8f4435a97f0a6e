// Package daemon runs the real signatory binary as a separate process: restarts, kill -9,
// graceful shutdown and broken watermark directories.
package daemon

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/signatory-go/signatory/internal/testdaemon"
)

func TestMain(m *testing.M) { testdaemon.Main(m) }

// newDaemon writes a config in a fresh directory with the given key file content and tezos section.
func newDaemon(t testing.TB, keys, tezos string) *testdaemon.Daemon {
	return newDaemonWith(t, keys, tezos, "")
}

// newDaemonWith is newDaemon with extra lines in the server section, indented by two spaces.
func newDaemonWith(t testing.TB, keys, tezos, serverExtra string) *testdaemon.Daemon {
	return newDaemonStore(t, keys, tezos, serverExtra, "  driver: file\n")
}

// newDaemonStore is newDaemonWith with the watermark section's content.
func newDaemonStore(t testing.TB, keys, tezos, serverExtra, watermark string) *testdaemon.Daemon {
	d := testdaemon.New(t)
	keyFile := filepath.Join(d.Dir, "secret_keys.json")
	if err := os.WriteFile(keyFile, []byte(keys), 0o600); err != nil {
		t.Fatal(err)
	}
	d.WriteConfig(serverExtra + testdaemon.FileVault(keyFile) + "watermark:\n" + watermark + "tezos:\n" + tezos)
	return d
}
