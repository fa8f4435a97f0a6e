package file_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/signatory-go/signatory/internal/fault"
	"github.com/signatory-go/signatory/internal/watermark"
	"github.com/signatory-go/signatory/internal/watermark/file"
	"github.com/signatory-go/signatory/internal/watermark/watermarktest"
)

// TestCorrupt: a chain file that does not parse is left as is and its chain refuses every
// request with a clear error; other chains work; names that are not chain ids are reported and kept.
func TestCorrupt(t *testing.T) {
	t.Parallel()
	pkh := watermarktest.PKH(0)
	bad := map[string]string{
		"truncated":        `{"` + pkh + `": {"block": {"level": 1,`,
		"empty":            ``,
		"null":             `null`,
		"array":            `[]`,
		"null key":         `{"` + pkh + `": null}`,
		"null mark":        `{"` + pkh + `": {"block": null}}`,
		"missing level":    `{"` + pkh + `": {"block": {"round": 1}}}`,
		"string level":     `{"` + pkh + `": {"block": {"level": "1"}}}`,
		"fractional level": `{"` + pkh + `": {"block": {"level": 1.5}}}`,
		"huge level":       `{"` + pkh + `": {"block": {"level": 4294967296}}}`,
		"bad hash":         `{"` + pkh + `": {"block": {"level": 1, "hash": "vhBAD"}}}`,
		"wrong prefix":     `{"` + pkh + `": {"block": {"level": 1, "hash": "NetXdQprcVkpaWU"}}}`,
		"empty hash":       `{"` + pkh + `": {"block": {"level": 1, "hash": ""}}}`,
		"bad pkh":          `{"tz1notakey": {"block": {"level": 1}}}`,
		"trailing data":    `{"` + pkh + `": {"block": {"level": 1}}} {}`,
	}
	for name, content := range bad {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			base := t.TempDir()
			badChain, goodChain := watermarktest.Chain(1), watermarktest.Chain(2)
			badPath := writeChainFile(t, base, badChain, content)
			writeChainFile(t, base, goodChain, `{"`+pkh+`": {"block": {"level": 5, "round": 0, "hash": null}}}`)
			s := open(t, base)
			_, err := s.Advance(t.Context(), watermarktest.Key(1, 0, watermark.Block), watermarktest.Mark(100, 0, 1))
			if err == nil || fault.KindOf(err) != fault.Internal || !strings.Contains(err.Error(), badPath) ||
				!strings.Contains(err.Error(), "corrupt") || !strings.Contains(err.Error(), "operator") {
				t.Fatalf("Advance on the corrupt chain = %v", err)
			}
			watermarktest.MustRefuse(t, s, watermarktest.Key(2, 0, watermark.Block), watermarktest.Mark(5, 0, 1))
			watermarktest.MustAdvance(t, s, watermarktest.Key(2, 0, watermark.Block), watermarktest.Mark(6, 0, 1))
			watermarktest.MustAdvance(t, s, watermarktest.Key(3, 0, watermark.Block), watermarktest.Mark(1, 0, 1))
			if err := s.Health(t.Context()); err == nil || !strings.Contains(err.Error(), badPath) {
				t.Fatalf("Health = %v, want the corrupt file named", err)
			}
			es, err := s.List(t.Context())
			if err == nil || len(es) != 2 {
				t.Fatalf("List = %v, %v; want the 2 good entries and an error", es, err)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			if got, _ := os.ReadFile(badPath); string(got) != content {
				t.Fatalf("corrupt file changed to %q", got)
			}
		})
	}
}

// TestIgnoredFiles: names that are not chain ids are reported and kept; other files are ignored;
// stale temp files of a crashed writer are removed.
func TestIgnoredFiles(t *testing.T) {
	t.Parallel()
	base := t.TempDir()
	dir := filepath.Join(base, file.DirName)
	writeChainFile(t, base, "notachain", `{}`)
	writeChainFile(t, base, watermarktest.Chain(1), `{}`)
	for name, content := range map[string]string{"README.txt": "x", "NetXdQprcVkpaWU.json.bak": "{",
		".watermark-tmp-123": "{"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(dir, "NetXdQprcVkpaWU.json"), 0o700); err != nil {
		t.Fatal(err)
	}
	s := open(t, base)
	defer s.Close()
	err := s.Health(t.Context())
	if err == nil || !strings.Contains(err.Error(), "notachain.json") || strings.Contains(err.Error(), "README") {
		t.Fatalf("Health = %v, want notachain.json reported", err)
	}
	watermarktest.MustAdvance(t, s, watermarktest.Key(1, 0, watermark.Block), watermarktest.Mark(1, 0, 1))
	for name, want := range map[string]bool{"notachain.json": true, "README.txt": true,
		"NetXdQprcVkpaWU.json.bak": true, ".watermark-tmp-123": false} {
		if _, err := os.Stat(filepath.Join(dir, name)); (err == nil) != want {
			t.Errorf("%s: exists %v, want %v", name, err == nil, want)
		}
	}
}

// TestWriteFailure: a failed write is an Internal error naming the file, memory keeps the old
// mark, and later requests are judged against it.
func TestWriteFailure(t *testing.T) {
	t.Parallel()
	s := open(t, t.TempDir())
	defer s.Close()
	k := watermarktest.Key(0, 0, watermark.Block)
	path := filepath.Join(s.Dir(), watermarktest.Chain(0)+".json")
	watermarktest.MustAdvance(t, s, k, watermarktest.Mark(10, 0, 1))

	// Running as root, chmod does not stop writes; a directory in the way of the rename does.
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(path, 0o700); err != nil {
		t.Fatal(err)
	}
	_, err := s.Advance(t.Context(), k, watermarktest.Mark(11, 0, 2))
	if err == nil || watermark.IsConflict(err) || fault.KindOf(err) != fault.Internal || !strings.Contains(err.Error(), path) {
		t.Fatalf("Advance with the target blocked = %v, want an Internal error naming %s", err, path)
	}
	if err := s.Health(t.Context()); err == nil || !strings.Contains(err.Error(), path) {
		t.Fatalf("Health after a failed write = %v", err)
	}
	if m, _ := watermarktest.Stored(t, s, k); m != watermarktest.Mark(10, 0, 1) {
		t.Fatalf("memory changed by a failed write: %+v", m)
	}
	watermarktest.MustRefuse(t, s, k, watermarktest.Mark(10, 0, 3)) // judged against 10, not 11
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	watermarktest.MustAdvance(t, s, k, watermarktest.Mark(11, 0, 4)) // 11/2 was never acknowledged
	if err := s.Health(t.Context()); err != nil {
		t.Fatalf("Health after a good write = %v", err)
	}
	f, _ := readChainFile(t, s, watermarktest.Chain(0))
	if b := f[watermarktest.PKH(0)]["block"]; b.Level != 11 {
		t.Fatalf("file block %+v", b)
	}
	entries, _ := os.ReadDir(s.Dir())
	if len(entries) != 2 || entries[0].Name() != watermarktest.Chain(0)+".json" || entries[1].Name() != file.LockName {
		t.Fatalf("temp files left behind: %v", entries)
	}
}

// TestReadOnlyDir: with a read-only directory (only effective when not privileged) the write
// fails and nothing changes.
func TestReadOnlyDir(t *testing.T) {
	t.Parallel()
	s := open(t, t.TempDir())
	defer s.Close()
	k := watermarktest.Key(0, 0, watermark.Block)
	watermarktest.MustAdvance(t, s, k, watermarktest.Mark(10, 0, 1))
	if err := os.Chmod(s.Dir(), 0o500); err != nil {
		t.Fatal(err)
	}
	defer os.Chmod(s.Dir(), 0o700)
	if f, err := os.CreateTemp(s.Dir(), "probe"); err == nil {
		f.Close()
		os.Remove(f.Name())
		t.Skip("privileged: chmod does not stop writes here (TestWriteFailure covers the failure)")
	}
	if _, err := s.Advance(t.Context(), k, watermarktest.Mark(11, 0, 2)); err == nil || fault.KindOf(err) != fault.Internal {
		t.Fatalf("Advance in a read-only dir = %v", err)
	}
	watermarktest.MustRefuse(t, s, k, watermarktest.Mark(10, 0, 3))
}
