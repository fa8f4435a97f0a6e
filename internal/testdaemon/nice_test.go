package testdaemon

import (
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

// TestNice: the 19th field of a stat line, whatever spaces or parentheses the command name
// holds; too short a line is an error; this process's own reads on Linux.
func TestNice(t *testing.T) {
	dir := t.TempDir()
	write := func(line string) string {
		p := filepath.Join(dir, "stat")
		if err := os.WriteFile(p, []byte(line), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	line := "4242 (a) b (c) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 7 1 0 99\n"
	if n, err := Nice(write(line)); err != nil || n != 7 {
		t.Fatalf("%d %v, want 7", n, err)
	}
	if _, err := Nice(write("4242 (a) S 1 2 3\n")); err == nil {
		t.Fatal("a short line was read")
	}
	if _, err := Nice(write("no name")); err == nil {
		t.Fatal("a line without a command name was read")
	}
	if runtime.GOOS == "linux" {
		if _, err := Nice("/proc/self/stat"); err != nil {
			t.Fatal(err)
		}
	}
}
