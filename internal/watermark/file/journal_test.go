package file_test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/signatory-go/signatory/internal/fault"
	"github.com/signatory-go/signatory/internal/watermark"
	"github.com/signatory-go/signatory/internal/watermark/file"
	"github.com/signatory-go/signatory/internal/watermark/watermarktest"
)

// crashImage is file.CrashImage (defined with the package's internal tests, which use it too).
func crashImage(t *testing.T, s *file.Store) string { return file.CrashImage(t, s) }

// journals lists the journal files of dir.
func journals(t *testing.T, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "*.journal"))
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(m)
	return m
}

// walk advances keys 0..2, all three classes, through levels from..to on chain 0, and returns the
// acknowledged marks.
func walk(t *testing.T, s watermark.Store, from, to int32) map[watermark.Key]watermark.Mark {
	t.Helper()
	acked := map[watermark.Key]watermark.Mark{}
	for l := from; l <= to; l++ {
		for k := range 3 {
			for _, c := range []watermark.Class{watermark.Block, watermark.Preattestation, watermark.Attestation} {
				key := watermarktest.Key(0, k, c)
				m := watermarktest.Mark(l, 0, byte(l))
				m.Signature = "sig" // a signed record, as the signer commits
				watermarktest.MustAdvance(t, s, key, m)
				acked[key] = m
			}
		}
	}
	return acked
}

func checkMarks(t *testing.T, s watermark.Store, acked map[watermark.Key]watermark.Mark) {
	t.Helper()
	for k, want := range acked {
		got, ok := watermarktest.Stored(t, s, k)
		if !ok || got.Level != want.Level || got.Round != want.Round || got.Digest != want.Digest {
			t.Fatalf("%v: stored %+v (%v), acknowledged %+v", k, got, ok, want)
		}
	}
}

// TestJournalCrashImage: with the journal on, commits go to the store's one journal (no chain
// file is written while it has room); a crash image of the directory at any moment opens with
// every acknowledged mark of every chain, brings the chain files up to date and removes the
// journal; a clean Close leaves only chain files too. A small journal makes the walk go through
// several compactions.
func TestJournalCrashImage(t *testing.T) {
	t.Parallel()
	for _, size := range []int64{file.DefaultJournalSize, 2048} {
		s := openJournaled(t, t.TempDir(), size)
		acked := walk(t, s, 1, 1)
		other := watermarktest.Key(1, 0, watermark.Attestation) // a second chain, in the same journal
		if _, err := os.Stat(filepath.Join(s.Dir(), watermarktest.Chain(0)+".json")); len(journals(t, s.Dir())) != 1 || !os.IsNotExist(err) {
			t.Fatalf("size %d: after the first batch: journals %v, chain file %v", size, journals(t, s.Dir()), err)
		}
		for step := int32(2); step <= 40; step += 7 {
			for k, m := range walk(t, s, step, step+6) {
				acked[k] = m
			}
			acked[other] = watermarktest.Mark(step, 0, 1)
			watermarktest.MustAdvance(t, s, other, acked[other])
			if size == file.DefaultJournalSize {
				if _, err := os.Stat(filepath.Join(s.Dir(), watermarktest.Chain(0)+".json")); !os.IsNotExist(err) {
					t.Fatalf("the chain file was written although the journal had room: %v", err)
				}
				if j := journals(t, s.Dir()); len(j) != 1 {
					t.Fatalf("journals %v: want the store's one", j)
				}
			}
			img := crashImage(t, s)
			r := open(t, img) // without the journal option: the journals are replayed all the same
			checkMarks(t, r, acked)
			if j := journals(t, r.Dir()); len(j) != 0 {
				t.Fatalf("journals left after opening: %v", j)
			}
			if err := r.Health(t.Context()); err != nil {
				t.Fatal(err)
			}
			if f, _ := readChainFile(t, r, watermarktest.Chain(0)); f[watermarktest.PKH(2)]["attestation"].Level != step+6 {
				t.Fatalf("the chain file was not brought up to date: %v", f)
			}
			r.Close()
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if j := journals(t, s.Dir()); len(j) != 0 {
			t.Fatalf("journals left after Close: %v", j)
		}
		r := open(t, filepath.Dir(s.Dir()))
		checkMarks(t, r, acked)
		r.Close()
	}
}

// TestJournalTornTail: a record cut short at the tail (a batch that was never acknowledged) is
// ignored, and the store goes on signing from the acknowledged marks.
func TestJournalTornTail(t *testing.T) {
	t.Parallel()
	s := openJournaled(t, t.TempDir(), file.DefaultJournalSize)
	defer s.Close()
	acked := walk(t, s, 1, 5)
	img := crashImage(t, s)
	j := journals(t, filepath.Join(img, file.DirName))
	data, err := os.ReadFile(j[0])
	if err != nil {
		t.Fatal(err)
	}
	tail := strings.LastIndex(string(data), "SWJ2")
	end := strings.LastIndex(string(data), "}") + 1
	// The last record loses its end: as if the machine stopped while writing it.
	copy(data[tail+(end-tail)/2:end], make([]byte, end-tail))
	if err := os.WriteFile(j[0], data, 0o600); err != nil {
		t.Fatal(err)
	}
	r := openJournaled(t, img, file.DefaultJournalSize)
	defer r.Close()
	last := watermarktest.Key(0, 2, watermark.Attestation) // the last record's slot
	for k, m := range acked {
		got, _ := watermarktest.Stored(t, r, k)
		if k == last {
			if got.Level != 5 && got.Level != 4 {
				t.Fatalf("%v: %+v", k, got)
			}
			continue
		}
		if got.Level != m.Level {
			t.Fatalf("%v: stored %d, acknowledged %d", k, got.Level, m.Level)
		}
	}
	if err := r.Health(t.Context()); err != nil {
		t.Fatal(err)
	}
	watermarktest.MustAdvance(t, r, watermarktest.Key(0, 0, watermark.Block), watermarktest.Mark(6, 0, 6))
}

// TestJournalDamagedRecord: a record damaged in the middle of the journal (acknowledged records
// after it) is not skipped: it may have held marks of any chain, so every chain refuses to sign,
// naming the journal, and nothing is rewritten or removed.
func TestJournalDamagedRecord(t *testing.T) {
	t.Parallel()
	s := openJournaled(t, t.TempDir(), file.DefaultJournalSize)
	defer s.Close()
	walk(t, s, 1, 5)
	watermarktest.MustAdvance(t, s, watermarktest.Key(1, 0, watermark.Block), watermarktest.Mark(3, 0, 1))
	img := crashImage(t, s)
	j := journals(t, filepath.Join(img, file.DirName))
	if len(j) != 1 {
		t.Fatalf("journals %v, want one for the store", j)
	}
	data, err := os.ReadFile(j[0])
	if err != nil {
		t.Fatal(err)
	}
	second := strings.Index(string(data[30:]), "SWJ2") + 30 // the record after the start record
	data[second+40] ^= 0x20
	if err := os.WriteFile(j[0], data, 0o600); err != nil {
		t.Fatal(err)
	}
	r := openJournaled(t, img, file.DefaultJournalSize)
	defer r.Close()
	for _, k := range []watermark.Key{watermarktest.Key(0, 0, watermark.Block), watermarktest.Key(1, 0, watermark.Block), watermarktest.Key(2, 0, watermark.Block)} {
		_, err = r.Advance(t.Context(), k, watermarktest.Mark(100, 0, 1))
		if err == nil || fault.KindOf(err) != fault.Internal || !strings.Contains(err.Error(), j[0]) || !strings.Contains(err.Error(), "operator") {
			t.Fatalf("Advance of %v with the journal damaged = %v", k, err)
		}
		if _, _, err := r.Load(t.Context(), k); err == nil {
			t.Fatalf("Load of %v with the journal damaged gave no error", k)
		}
	}
	if _, err := r.List(t.Context()); err == nil {
		t.Fatal("List with the journal damaged gave no error")
	}
	if err := r.Health(t.Context()); err == nil || !strings.Contains(err.Error(), j[0]) {
		t.Fatalf("Health with the journal damaged: %v", err)
	}
	r.Close()
	if got, err := os.ReadFile(j[0]); err != nil || string(got) != string(data) {
		t.Fatal("the damaged journal was changed or removed")
	}
}

// TestJournalReadOnlySnapshot: `watermark show` (a read-only snapshot) sees the journaled marks
// of a running store.
func TestJournalReadOnlySnapshot(t *testing.T) {
	t.Parallel()
	s := openJournaled(t, t.TempDir(), file.DefaultJournalSize)
	defer s.Close()
	acked := walk(t, s, 1, 4)
	r, err := file.Open(filepath.Dir(s.Dir()), file.ReadOnly())
	if err != nil {
		t.Fatal(err)
	}
	checkMarks(t, r, acked)
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	// Closed (as `watermark show` closes it), the snapshot has still touched nothing: a crash of
	// the running store now finds every acknowledged mark, in the journal.
	if len(journals(t, s.Dir())) != 1 {
		t.Fatal("the read-only snapshot touched the journal")
	}
	c := open(t, crashImage(t, s))
	defer c.Close()
	checkMarks(t, c, acked)
}

// TestJournalReplaySignatureAtSameMark: a journal that records a mark without a signature, then
// the same bytes with the signature released for them (the order a signer writes them when a
// signature is recorded over an imported mark), replays to the signed record: an identical retry
// after a crash gets that signature back, never a new one. A later record at the same mark
// without a signature does not take it away.
func TestJournalReplaySignatureAtSameMark(t *testing.T) {
	t.Parallel()
	s := openJournaled(t, t.TempDir(), file.DefaultJournalSize)
	k := watermarktest.Key(0, 0, watermark.Block)
	unsigned := watermarktest.Mark(7, 0, 3)
	signed := unsigned
	signed.Signature = "sig-of-7"
	watermarktest.MustAdvance(t, s, k, unsigned)
	watermarktest.MustAdvance(t, s, k, signed)
	if len(journals(t, s.Dir())) != 1 {
		t.Fatalf("journals %v: the records are not in a journal", journals(t, s.Dir()))
	}
	r := open(t, crashImage(t, s))
	defer r.Close()
	if got, ok := watermarktest.Stored(t, r, k); !ok || got != signed {
		t.Fatalf("replayed %+v, want %+v", got, signed)
	}
	s.Close()
}
