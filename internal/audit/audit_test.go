package audit

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func fill(t *testing.T, path string, n int, maxSize int64) {
	fillWith(t, path, n, maxSize, true)
}

// fillWith records n entries, concurrently (sharing fsyncs) or one after the other.
func fillWith(t *testing.T, path string, n int, maxSize int64, concurrent bool) {
	t.Helper()
	j, err := Open(path, maxSize)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l := int32(i)
			if err := j.Record(context.Background(), Entry{Time: time.Now(), PKH: fmt.Sprintf("tz1key%d", i%3), Kind: "attestation",
				Level: &l, Outcome: "signed", Status: 200, Client: "127.0.0.1"}); err != nil {
				t.Error(err)
			}
		}()
		if !concurrent {
			wg.Wait()
		}
	}
	wg.Wait()
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestChainAndTampering(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	fill(t, path, 40, 0)
	fill(t, path, 10, 0) // reopening continues the chain
	if n, err := Verify(false, path); err != nil || n != 50 {
		t.Fatalf("verify: %d %v", n, err)
	}
	fi, _ := os.Stat(path)
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %o", fi.Mode().Perm())
	}
	orig, _ := os.ReadFile(path)
	lines := bytes.SplitAfter(orig, []byte("\n"))
	lines = lines[:len(lines)-1]
	tamper := map[string]func() [][]byte{
		"changed": func() [][]byte {
			l := append([][]byte{}, lines...)
			l[7] = bytes.Replace(l[7], []byte(`"outcome":"signed"`), []byte(`"outcome":"refused"`), 1)
			return l
		},
		"removed": func() [][]byte {
			return append(append([][]byte{}, lines[:7]...), lines[8:]...)
		},
		"reordered": func() [][]byte {
			l := append([][]byte{}, lines...)
			l[7], l[8] = l[8], l[7]
			return l
		},
		"first removed": func() [][]byte { return append([][]byte{}, lines[1:]...) },
	}
	for name, f := range tamper {
		t.Run(name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "a.jsonl")
			os.WriteFile(p, bytes.Join(f(), nil), 0o600)
			_, err := Verify(false, p)
			ve, ok := err.(*VerifyError)
			if !ok {
				t.Fatalf("tampering not detected: %v", err)
			}
			want := map[string]int{"changed": 9, "removed": 8, "reordered": 8, "first removed": 1}[name]
			if ve.Line != want {
				t.Fatalf("first broken line %d, want %d (%v)", ve.Line, want, err)
			}
		})
	}
}

func TestRotationKeepsChain(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	fillWith(t, path, 60, 2000, false)
	files, err := Files(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 3 {
		t.Fatalf("no rotation: %v", files)
	}
	if n, err := Verify(false, files...); err != nil || n != 60 {
		t.Fatalf("verify across rotation: %d %v", n, err)
	}
	// Without the oldest file, only partial verification passes.
	if _, err := Verify(false, files[1:]...); err == nil || !strings.Contains(err.Error(), "start is missing") {
		t.Fatalf("missing start not detected: %v", err)
	}
	if _, err := Verify(true, files[1:]...); err != nil {
		t.Fatalf("partial: %v", err)
	}
	// Swapping two rotated files breaks the chain.
	if _, err := Verify(true, files[1], files[0]); err == nil {
		t.Fatal("reordered files not detected")
	}
}
