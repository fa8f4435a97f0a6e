package file_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/signatory-go/signatory/internal/backend"
	"github.com/signatory-go/signatory/internal/spending"
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

// openJournaled opens the store with a journal of size bytes and no background rewrite of the
// chain files (which TestChainFileLag and TestCrash test), so that what a test reads from a chain
// file depends on its own steps only, however slow the machine.
func openJournaled(t testing.TB, base string, size int64, opts ...file.Option) *file.Store {
	t.Helper()
	opts = append([]file.Option{file.WithLogger(slog.New(slog.DiscardHandler)), file.WithJournal(size), file.WithChainFileLag(0)}, opts...)
	s, err := file.Open(base, opts...)
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
		func(t *testing.T) spending.Store { return open(t, t.TempDir()) },
		nil,
		func(t *testing.T, old spending.Store) spending.Store {
			if err := old.(*file.Store).Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			return open(t, filepath.Dir(old.(*file.Store).Dir()))
		})
}

// TestConformanceJournal runs the suite with the journal on, small enough (4 KiB) that the
// suite's writes also go through compactions.
func TestConformanceJournal(t *testing.T) {
	for _, lag := range []time.Duration{0, time.Millisecond} { // without and with background rewrites
		t.Run(lag.String(), func(t *testing.T) {
			watermarktest.Run(t,
				func(t *testing.T) watermark.Store {
					return openJournaled(t, t.TempDir(), 4096, file.WithChainFileLag(lag))
				},
				func(t *testing.T, old watermark.Store) watermark.Store {
					if err := old.Close(); err != nil {
						t.Fatalf("Close: %v", err)
					}
					return openJournaled(t, filepath.Dir(old.(*file.Store).Dir()), 4096, file.WithChainFileLag(lag))
				})
		})
	}
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
	watermarktest.MustAdvance(t, s, watermarktest.Key(0, 0, watermark.Block), watermarktest.Mark(1, 0, 1))
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
	if s.Name() != "file" || s.Health(t.Context()) != nil {
		t.Errorf("Name %q, Health %v", s.Name(), s.Health(t.Context()))
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

// TestEncodeChainFileIsTheStoresFile: EncodeChainFile of a chain's marks is byte for byte the
// chain file the store writes for them (signatures, a mark without a digest, the attestation_with_dal
// copy); a signature without a digest is dropped, and bad marks are refused.
func TestEncodeChainFileIsTheStoresFile(t *testing.T) {
	t.Parallel()
	base := t.TempDir()
	s := open(t, base)
	chain := watermarktest.Chain(4)
	marks := []watermark.Entry{
		{Key: watermark.Key{Chain: chain, PKH: watermarktest.PKH(1), Class: watermark.Block}, Mark: watermarktest.SignedMark(9, 1, 1, 1)},
		{Key: watermark.Key{Chain: chain, PKH: watermarktest.PKH(1), Class: watermark.Attestation}, Mark: watermarktest.SignedMark(9, 0, 2, 2)},
		{Key: watermark.Key{Chain: chain, PKH: watermarktest.PKH(2), Class: watermark.Preattestation}, Mark: watermark.Mark{Level: 3, Round: 2}},
	}
	for _, e := range marks {
		watermarktest.MustAdvance(t, s, e.Key, e.Mark)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	stored, err := os.ReadFile(filepath.Join(base, "watermark_v2", chain+".json"))
	if err != nil {
		t.Fatal(err)
	}
	got, err := file.EncodeChainFile(marks)
	if err != nil || !bytes.Equal(got, stored) {
		t.Fatalf("EncodeChainFile: %v\n%s\nthe store wrote\n%s", err, got, stored)
	}
	noDigest := marks[2]
	noDigest.Signature = watermarktest.Signature(3)
	if got, err := file.EncodeChainFile([]watermark.Entry{noDigest}); err != nil || strings.Contains(string(got), "signature") {
		t.Fatalf("signature without a digest: %v\n%s", err, got)
	}
	for _, bad := range [][]watermark.Entry{
		{{Key: watermark.Key{Chain: chain, PKH: "tz9x", Class: watermark.Block}}},
		{{Key: watermark.Key{Chain: chain, PKH: watermarktest.PKH(1), Class: "generic"}}},
		{marks[0], marks[0]},
	} {
		if _, err := file.EncodeChainFile(bad); err == nil {
			t.Errorf("%+v encoded", bad)
		}
	}
}

// TestDriverConfig: the driver's config turns the journal on unless journal: false, and refuses a
// chain_file_lag out of bounds or without a journal.
func TestDriverConfig(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		config, err string
		journal     bool
	}{
		{"", "", true},
		{"{chain_file_lag: 5s}", "", true},
		{"{journal: true, chain_file_lag: 1ms}", "", true},
		{"{journal: false}", "", false},
		{"{chain_file_lag: 1h}", "", true},
		{"{chain_file_lag: 999us}", "not between", false},
		{"{chain_file_lag: -1s}", "not between", false},
		{"{chain_file_lag: 61m}", "not between", false},
		{"{journal: false, chain_file_lag: 1s}", "the journal is off", false},
		{"{journal: yes please}", "yes please", false},
		{"{jornal: false}", "jornal", false},
	} {
		var node yaml.Node
		if err := yaml.Unmarshal([]byte(c.config), &node); err != nil {
			t.Fatal(err)
		}
		var n *yaml.Node // no config section
		if len(node.Content) > 0 {
			n = node.Content[0]
		}
		base := t.TempDir()
		st, err := file.New(t.Context(), "file", n, backend.Env{BaseDir: base, Logger: slog.New(slog.DiscardHandler)})
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%q: %v, want an error with %q", c.config, err, c.err)
			}
			if st != nil {
				st.Close()
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", c.config, err)
			continue
		}
		for l := int32(1); l <= 2; l++ { // the first batch writes the chain file, the second journals
			watermarktest.MustAdvance(t, st, watermarktest.Key(0, 0, watermark.Block), watermarktest.Mark(l, 0, 1))
		}
		js, _ := filepath.Glob(filepath.Join(base, file.DirName, "*.journal"))
		if (len(js) > 0) != c.journal {
			t.Errorf("%q: journals %v, want a journal: %v", c.config, js, c.journal)
		}
		st.Close()
	}
}

// TestCanceledLeavesNoChain: a request whose context has already ended changes nothing on disk:
// no chain file, journal or record for its chain, through a clean stop.
func TestCanceledLeavesNoChain(t *testing.T) {
	t.Parallel()
	for _, journal := range []bool{false, true} {
		base := t.TempDir()
		var opts []file.Option
		if journal {
			opts = append(opts, file.WithJournal(file.DefaultJournalSize))
		}
		s, err := file.Open(base, opts...)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		for i := range 3 {
			if _, err := s.Advance(ctx, watermarktest.Key(i, 0, watermark.Block), watermarktest.Mark(1, 0, 1)); err == nil {
				t.Fatal("a canceled request advanced")
			}
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		entries, err := os.ReadDir(filepath.Join(base, file.DirName))
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			if e.Name() != file.LockName {
				t.Errorf("journal %v: %s written for canceled requests", journal, e.Name())
			}
		}
	}
}
