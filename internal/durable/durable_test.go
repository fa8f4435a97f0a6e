package durable

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// TestWriteFile: the new content replaces the old with mode 0600; a failed write leaves the old
// content and no temp file behind.
func TestWriteFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "f.json")
	if err := WriteBytes(path, ".tmp-", []byte("one")); err != nil {
		t.Fatal(err)
	}
	if err := WriteBytes(path, ".tmp-", []byte("two")); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	fi, _ := os.Stat(path)
	if string(b) != "two" || fi.Mode().Perm() != 0o600 {
		t.Fatalf("%q %v", b, fi.Mode())
	}
	boom := errors.New("boom")
	if err := WriteFile(path, ".tmp-", func(w io.Writer) error { w.Write([]byte("partial")); return boom }); !errors.Is(err, boom) {
		t.Fatal(err)
	}
	b, _ = os.ReadFile(path)
	entries, _ := os.ReadDir(dir)
	if string(b) != "two" || len(entries) != 1 {
		t.Fatalf("%q, %v", b, entries)
	}
	if err := WriteBytes(filepath.Join(dir, "missing", "f"), ".tmp-", nil); err == nil {
		t.Fatal("write into a missing directory succeeded")
	}
}
