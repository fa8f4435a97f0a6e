package interchange

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/signatory-go/signatory/internal/watermark"
	"github.com/signatory-go/signatory/internal/watermark/mem"
	"github.com/signatory-go/signatory/internal/watermark/watermarktest"
)

// The fixed marks of the golden files: two chains, a tz1 and a tz4 key, marks with and without a
// signature, one without a digest.
const (
	mainnet  = "NetXdQprcVkpaWU"
	ghostnet = "NetXnHfVqm9iesp"
	tz1      = "tz1WGcYos3hL7GXYXjKrMnSFdkT7FyXnFBvf"
	tz4      = "tz4Es11RKNNmN99tRJYtyKV2XF4GeNoXuXNX"
	edSig    = "edsigtpcsXBZdWMB5u6bReSpyydaP51U3vJG9UY8ES3W4s8JTtMZmxeDRS3wBhCf4C3rPcrspBDv5JRrELKtFv5CPX8zCEsQGq5"
	blsSig   = "BLsig4XnuGo4NgSHnCoDJNtJs8zz8qz3BYcHDZ9pyKY1gcQCAepcsdMcsmytX7LgqoxCT92adgcbJM8z4yh61nHyXQQey81Wt1RCy7aL4GAwyVYAvEWmxv5ttEH2QygsccDzbgT2F6zynU"
)

func fixedMarks() []watermark.Entry {
	e := func(chain, pkh string, c watermark.Class, level, round int32, d byte, sig string) watermark.Entry {
		m := watermark.Mark{Level: level, Round: round, Signature: sig}
		if d != 0 {
			m.Digest, m.HasDigest = [32]byte{d}, true
		}
		return watermark.Entry{Key: watermark.Key{Chain: chain, PKH: pkh, Class: c}, Mark: m}
	}
	return []watermark.Entry{
		e(mainnet, tz1, watermark.Block, 34, 4, 1, edSig),
		e(mainnet, tz1, watermark.Attestation, 34, 4, 2, ""),
		e(mainnet, tz4, watermark.Preattestation, 35, 0, 3, blsSig),
		e(ghostnet, tz1, watermark.Block, 100, 1, 0, ""), // no digest
		e(ghostnet, tz4, watermark.Attestation, 7, 2, 4, blsSig),
	}
}

// hexOf is the hex of the digest {d, 0, …}, given d's two hex digits.
func hexOf(d string) string { return d + strings.Repeat("0", 62) }

var octezGolden = map[string]string{
	"block_high_watermarks": `{
  "` + mainnet + `": {
    "` + tz1 + `": {
      "level": 34,
      "round": 4,
      "hash": "` + hexOf("01") + `",
      "signature": "` + edSig + `"
    }
  },
  "` + ghostnet + `": {
    "` + tz1 + `": {
      "level": 100,
      "round": 1,
      "hash": "` + hexOf("00") + `"
    }
  }
}
`,
	"preattestation_high_watermarks": `{
  "` + mainnet + `": {
    "` + tz4 + `": {
      "level": 35,
      "round": 0,
      "hash": "` + hexOf("03") + `",
      "signature": "` + blsSig + `"
    }
  }
}
`,
	"attestation_high_watermarks": `{
  "` + mainnet + `": {
    "` + tz1 + `": {
      "level": 34,
      "round": 4,
      "hash": "` + hexOf("02") + `"
    }
  },
  "` + ghostnet + `": {
    "` + tz4 + `": {
      "level": 7,
      "round": 2,
      "hash": "` + hexOf("04") + `",
      "signature": "` + blsSig + `"
    }
  }
}
`,
}

// The base58 ("vh…") forms of the digests {1}, {2}, {3}, {4}.
const (
	vh1 = "vh1gZf68GrDewSDmrqjEs84VAbQxS2BMtGNZuGVMBm3MK9k2E6RM"
	vh2 = "vh1h1CczSppsKv7qqsHzjRGZqHVjtEndwBZpC4JxgjgRr42PGetq"
	vh3 = "vh1hSk9rcoS5iQ1uptrkbiUeVyaXLTPuz6m4Ur8aBiKWNxGUEGNk"
	vh4 = "vh1htHginn3J6suyovRWU1gjAffJng1C31xJmdxBggxaurUdLYTC"
)

var referenceGolden = map[string]string{
	"watermark_v2/" + mainnet + ".json": `{
    "` + tz1 + `": {
        "attestation": {
            "level": 34,
            "round": 4,
            "hash": "` + vh2 + `"
        },
        "attestation_with_dal": {
            "level": 34,
            "round": 4,
            "hash": "` + vh2 + `"
        },
        "block": {
            "level": 34,
            "round": 4,
            "hash": "` + vh1 + `",
            "signature": "` + edSig + `"
        }
    },
    "` + tz4 + `": {
        "preattestation": {
            "level": 35,
            "round": 0,
            "hash": "` + vh3 + `",
            "signature": "` + blsSig + `"
        }
    }
}`,
	"watermark_v2/" + ghostnet + ".json": `{
    "` + tz1 + `": {
        "block": {
            "level": 100,
            "round": 1,
            "hash": null
        }
    },
    "` + tz4 + `": {
        "attestation": {
            "level": 7,
            "round": 2,
            "hash": "` + vh4 + `",
            "signature": "` + blsSig + `"
        },
        "attestation_with_dal": {
            "level": 7,
            "round": 2,
            "hash": "` + vh4 + `"
        }
    }
}`,
}

var exporters = []struct {
	format Format
	files  func([]watermark.Entry) ([]File, error)
	golden map[string]string
}{
	{Octez, OctezFiles, octezGolden},
	{Reference, ReferenceFiles, referenceGolden},
}

func sorted(es []watermark.Entry) []watermark.Entry {
	es = slices.Clone(es)
	slices.SortFunc(es, func(a, b watermark.Entry) int { return watermark.Compare(a.Key, b.Key) })
	return es
}

func equalEntries(t *testing.T, what string, got, want []watermark.Entry) {
	t.Helper()
	got, want = sorted(got), sorted(want)
	if len(got) != len(want) {
		t.Fatalf("%s: %d marks, want %d:\n%+v", what, len(got), len(want), got)
	}
	for i := range got {
		if got[i] != want[i] {
			t.Errorf("%s: mark %d is\n%+v, want\n%+v", what, i, got[i], want[i])
		}
	}
}

// TestExportGolden: the exact files written for the fixed marks.
func TestExportGolden(t *testing.T) {
	for _, x := range exporters {
		files, err := x.files(fixedMarks())
		if err != nil {
			t.Fatalf("%s: %v", x.format, err)
		}
		if len(files) != len(x.golden) {
			t.Errorf("%s: %d files, want %d", x.format, len(files), len(x.golden))
		}
		for _, f := range files {
			if want, ok := x.golden[f.Name]; !ok || string(f.Data) != want {
				t.Errorf("%s: %s is\n%s\nwant\n%s", x.format, f.Name, f.Data, want)
			}
		}
	}
	// octez-signer gets all three files, {} for a class without marks.
	files, err := OctezFiles(fixedMarks()[3:4])
	if err != nil || len(files) != 3 || string(files[1].Data) != "{}\n" || string(files[2].Data) != "{}\n" {
		t.Fatalf("one block mark: %v %q", err, files)
	}
	// No mark at all: three empty octez files, no reference file.
	if files, err := OctezFiles(nil); err != nil || len(files) != 3 || string(files[0].Data) != "{}\n" {
		t.Fatalf("no marks, octez: %v %q", err, files)
	}
	if files, err := ReferenceFiles(nil); err != nil || len(files) != 0 {
		t.Fatalf("no marks, reference: %v %q", err, files)
	}
}

// TestExportRoundTripFiles: ours → octez or reference files on disk → Read → the same marks, and
// importing them into an empty store gives a store equal to the source.
func TestExportRoundTripFiles(t *testing.T) {
	ctx := t.Context()
	src := mem.NewStore()
	want := fixedMarks()
	// An octez mark imported without a round (MaxInt32) and the other chain's tz1 key with
	// every class.
	want = append(want,
		watermark.Entry{Key: watermark.Key{Chain: ghostnet, PKH: tz4, Class: watermark.Block},
			Mark: watermark.Mark{Level: 9, Round: math.MaxInt32, Digest: [32]byte{5}, HasDigest: true}},
		watermark.Entry{Key: watermark.Key{Chain: ghostnet, PKH: tz1, Class: watermark.Preattestation},
			Mark: watermarktest.Mark(101, 0, 6)},
		watermark.Entry{Key: watermark.Key{Chain: ghostnet, PKH: tz1, Class: watermark.Attestation},
			Mark: watermarktest.SignedMark(101, 0, 7, 3)})
	if _, err := Import(ctx, src, want, false); err != nil {
		t.Fatal(err)
	}
	listed, err := src.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	equalEntries(t, "source store", listed, want)
	for _, x := range exporters {
		files, err := x.files(listed)
		if err != nil {
			t.Fatal(err)
		}
		dir := t.TempDir()
		if err := WriteFiles(dir, files, false); err != nil {
			t.Fatal(err)
		}
		for _, f := range files {
			fi, err := os.Stat(filepath.Join(dir, f.Name))
			if err != nil || fi.Mode().Perm() != 0o600 {
				t.Fatalf("%s: %v %v", f.Name, fi.Mode(), err)
			}
		}
		srcs, err := Read(dir, Options{})
		if err != nil {
			t.Fatal(err)
		}
		var got []watermark.Entry
		for _, s := range srcs {
			if s.Format != x.format {
				t.Errorf("%s read as %s", s.Path, s.Format)
			}
			got = append(got, s.Entries...)
		}
		equalEntries(t, string(x.format)+" files read back", got, want)
		dst := mem.NewStore()
		rep, err := Import(ctx, dst, got, false)
		if err != nil || rep.Count(Raised) != len(want) {
			t.Fatalf("%s: import %v, %+v", x.format, err, rep)
		}
		back, _ := dst.List(ctx)
		equalEntries(t, string(x.format)+" → store", back, want)
	}
}

// TestExportOctezClassFromName: each octez file read alone, the class told by its name only.
func TestExportOctezClassFromName(t *testing.T) {
	files, err := OctezFiles(fixedMarks())
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		es, format, err := Parse(f.Name, f.Data, Options{Format: Octez})
		if err != nil || format != Octez {
			t.Fatalf("%s: %v %v", f.Name, format, err)
		}
		var want []watermark.Entry
		for _, e := range fixedMarks() {
			if OctezName(e.Class) == f.Name {
				want = append(want, e)
			}
		}
		equalEntries(t, f.Name, es, want)
	}
}

// TestExportImportNeverLowers: importing exported files into a store with higher marks keeps
// them; lower and missing ones are raised.
func TestExportImportNeverLowers(t *testing.T) {
	ctx := t.Context()
	marks := fixedMarks()
	for _, x := range exporters {
		files, err := x.files(marks)
		if err != nil {
			t.Fatal(err)
		}
		dir := t.TempDir()
		if err := WriteFiles(dir, files, false); err != nil {
			t.Fatal(err)
		}
		srcs, err := Read(dir, Options{})
		if err != nil {
			t.Fatal(err)
		}
		var in []watermark.Entry
		for _, s := range srcs {
			in = append(in, s.Entries...)
		}
		s := mem.NewStore()
		higher := map[int]watermark.Mark{
			0: watermarktest.Mark(34, 5, 9),
			2: watermarktest.Mark(36, 0, 9),
			3: watermarktest.Mark(100, 2, 9),
		}
		lower := map[int]watermark.Mark{1: watermarktest.Mark(34, 3, 9), 4: watermarktest.Mark(6, 9, 9)}
		for i, m := range higher {
			watermarktest.MustAdvance(t, s, marks[i].Key, m)
		}
		for i, m := range lower {
			watermarktest.MustAdvance(t, s, marks[i].Key, m)
		}
		rep, err := Import(ctx, s, in, false)
		if err != nil || rep.Count(Kept) != len(higher) || rep.Count(Raised) != len(lower) {
			t.Fatalf("%s: %v %+v", x.format, err, rep)
		}
		for i, e := range marks {
			want, ok := higher[i]
			if !ok {
				want = e.Mark
			}
			if got, _ := watermarktest.Stored(t, s, e.Key); got != want {
				t.Errorf("%s: mark %d stored %+v, want %+v", x.format, i, got, want)
			}
		}
	}
}

// TestWriteFilesNoOverwrite: an existing file stops the export before anything is written;
// force replaces it.
func TestWriteFilesNoOverwrite(t *testing.T) {
	for _, x := range exporters {
		files, err := x.files(fixedMarks())
		if err != nil {
			t.Fatal(err)
		}
		dir := t.TempDir()
		last := filepath.Join(dir, files[len(files)-1].Name)
		if err := os.MkdirAll(filepath.Dir(last), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(last, []byte("old"), 0o644); err != nil {
			t.Fatal(err)
		}
		err = WriteFiles(dir, files, false)
		if !errors.Is(err, ErrExists) || !strings.Contains(err.Error(), last) || !strings.Contains(err.Error(), "--force") {
			t.Fatalf("%s: %v", x.format, err)
		}
		for _, f := range files[:len(files)-1] {
			if _, err := os.Stat(filepath.Join(dir, f.Name)); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("%s: %s written: %v", x.format, f.Name, err)
			}
		}
		if data, _ := os.ReadFile(last); string(data) != "old" {
			t.Errorf("%s: existing file changed: %q", x.format, data)
		}
		if err := WriteFiles(dir, files, true); err != nil {
			t.Fatal(err)
		}
		fi, err := os.Stat(last)
		if data, _ := os.ReadFile(last); err != nil || string(data) != string(files[len(files)-1].Data) || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: after --force: %v %v %q", x.format, err, fi.Mode(), data)
		}
		matches, _ := filepath.Glob(filepath.Join(dir, "*", ".export-*"))
		more, _ := filepath.Glob(filepath.Join(dir, ".export-*"))
		if len(matches)+len(more) != 0 {
			t.Errorf("%s: temp files left: %v %v", x.format, matches, more)
		}
	}
}

// TestExportInvalid: a mark that cannot be written (bad chain, used in a file name; bad class;
// two marks of one key) is an error.
func TestExportInvalid(t *testing.T) {
	bad := []watermark.Entry{
		{Key: watermark.Key{Chain: "../x", PKH: tz1, Class: watermark.Block}},
		{Key: watermark.Key{Chain: mainnet, PKH: "tz9", Class: watermark.Block}},
		{Key: watermark.Key{Chain: mainnet, PKH: tz1, Class: "generic"}},
	}
	for _, x := range exporters {
		for _, e := range bad {
			if _, err := x.files([]watermark.Entry{e}); err == nil {
				t.Errorf("%s: %+v exported", x.format, e.Key)
			}
		}
		dup := fixedMarks()[:1]
		if _, err := x.files(append(dup, dup[0])); err == nil || !strings.Contains(err.Error(), "two") {
			t.Errorf("%s: duplicate mark: %v", x.format, err)
		}
	}
}
