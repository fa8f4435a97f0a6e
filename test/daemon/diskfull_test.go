package daemon

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/signatory-go/signatory/internal/testdaemon"
)

// TestFullWatermarkDisk puts the base directory on a tiny tmpfs, fills it, and checks that signing
// is refused with 500 (never a signature without a recorded watermark), then recovers once space
// is freed. It needs root to mount; elsewhere it is skipped.
func TestFullWatermarkDisk(t *testing.T) {
	ks, js, tz := keys(t, 1)
	k := ks[0]
	d := newDaemon(t, js, tz)
	data := filepath.Join(d.Dir, "data")
	if err := os.MkdirAll(data, 0o700); err != nil {
		t.Fatal(err)
	}
	if _, err := testdaemon.RunTool(exec.Command("mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", data)); err != nil {
		t.Skipf("cannot mount a tmpfs (needs root): %v", err)
	}
	t.Cleanup(func() { _, _ = testdaemon.RunTool(exec.Command("umount", "-l", data)) })
	d.Serve()
	if status, msg := d.Sign(k.pkh, attestation(chainA, 1, 0, 0)); status != 200 {
		t.Fatalf("%d %s", status, msg)
	}
	filler := filepath.Join(data, "filler")
	f, err := os.Create(filler)
	if err != nil {
		t.Fatal(err)
	}
	chunk := make([]byte, 4096)
	for {
		if _, err := f.Write(chunk); err != nil {
			break // ENOSPC: the disk is full
		}
	}
	f.Close()
	status, msg := d.Sign(k.pkh, attestation(chainA, 2, 0, 0))
	if status != 500 || !strings.Contains(msg, "watermark") {
		t.Fatalf("full disk: %d %s", status, msg)
	}
	if !d.WaitLog("watermark store failed") {
		t.Fatalf("no clear log line:\n%s", d.Logs())
	}
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	if status, msg := d.Sign(k.pkh, attestation(chainA, 1, 0, 1)); status != 409 {
		t.Fatalf("after freeing space, old level with other bytes: %d %s", status, msg)
	}
	if status, msg := d.Sign(k.pkh, attestation(chainA, 2, 0, 0)); status != 200 {
		t.Fatalf("after freeing space: %d %s", status, msg)
	}
}
