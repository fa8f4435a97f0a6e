package file_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/signatory-go/signatory/internal/watermark"
	"github.com/signatory-go/signatory/internal/watermark/file"
	"github.com/signatory-go/signatory/internal/watermark/watermarktest"
)

func open(t testing.TB, base string) *file.Store {
	t.Helper()
	s, err := file.Open(base, file.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return s
}

func openJournaled(t testing.TB, base string, size int64) *file.Store {
	t.Helper()
	s, err := file.Open(base, file.WithLogger(slog.New(slog.DiscardHandler)), file.WithJournal(size))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return s
}

func TestConformance(t *testing.T) {
	watermarktest.Run(t,
		func(t *testing.T) watermark.Store { return open(t, t.TempDir()) },
		func(t *testing.T, old watermark.Store) watermark.Store {
			if err := old.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			return open(t, filepath.Dir(old.(*file.Store).Dir()))
		})
}

// TestSpendConformance: spending lists, in <base_dir>/spending, kept across a reopen. Shared
// instances do not apply (the lock admits one process), so the concurrency check runs on one.
func TestSpendConformance(t *testing.T) {
	watermarktest.RunSpends(t,
		func(t *testing.T) watermark.SpendStore { return open(t, t.TempDir()) },
		nil,
		func(t *testing.T, old watermark.SpendStore) watermark.SpendStore {
			if err := old.(*file.Store).Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			return open(t, filepath.Dir(old.(*file.Store).Dir()))
		})
}

// TestConformanceJournal runs the suite with the journal on, small enough (4 KiB) that the
// suite's writes also go through compactions.
func TestConformanceJournal(t *testing.T) {
	watermarktest.Run(t,
		func(t *testing.T) watermark.Store { return openJournaled(t, t.TempDir(), 4096) },
		func(t *testing.T, old watermark.Store) watermark.Store {
			if err := old.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			return openJournaled(t, filepath.Dir(old.(*file.Store).Dir()), 4096)
		})
}

// chainFile is the parsed content of a chain file.
type chainFile map[string]map[string]struct {
	Level int32   `json:"level"`
	Round int32   `json:"round"`
	Hash  *string `json:"hash"`
}

func readChainFile(t testing.TB, s *file.Store, chain string) (chainFile, []byte) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(s.Dir(), chain+".json"))
	if err != nil {
		t.Fatal(err)
	}
	var f chainFile
	if err := json.Unmarshal(data, &f); err != nil {
		t.Fatalf("chain file does not parse: %v\n%s", err, data)
	}
	return f, data
}

func writeChainFile(t testing.TB, base, chain, content string) string {
	t.Helper()
	dir := filepath.Join(base, file.DirName)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, chain+".json")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestModes(t *testing.T) {
	t.Parallel()
	base := filepath.Join(t.TempDir(), "new", "base")
	s := open(t, base)
	defer s.Close()
	watermarktest.MustAdvance(t, s, watermarktest.Key(0, 0, watermark.Block), watermarktest.M(1, 0, 1))
	for path, want := range map[string]os.FileMode{
		s.Dir(): 0o700 | os.ModeDir,
		filepath.Join(s.Dir(), watermarktest.Chain(0)+".json"): 0o600,
		filepath.Join(s.Dir(), file.LockName):                  0o600,
	} {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode() != want {
			t.Errorf("%s: mode %v, want %v", path, fi.Mode(), want)
		}
	}
	entries, _ := os.ReadDir(s.Dir())
	if len(entries) != 2 {
		t.Errorf("watermark dir holds %v, want only the chain file and the lock", entries)
	}
	if s.Name() != "file" || s.Health(context.Background()) != nil {
		t.Errorf("Name %q, Health %v", s.Name(), s.Health(context.Background()))
	}
}

func TestOpenFails(t *testing.T) {
	t.Parallel()
	parent := filepath.Join(t.TempDir(), "afile")
	if err := os.WriteFile(parent, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if s, err := file.Open(filepath.Join(parent, "base")); err == nil {
		s.Close()
		t.Fatal("Open under a regular file succeeded")
	}
}
