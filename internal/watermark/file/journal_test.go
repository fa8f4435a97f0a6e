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

// crashImage copies the watermark directory of a running store to a new base, as a machine that
// lost power at this moment would find it: every acknowledged write has been fdatasynced, so the
// copy holds it. The lock file is left out (a crashed process holds no lock).
func crashImage(t *testing.T, s *file.Store) string {
	t.Helper()
	base := t.TempDir()
	dst := filepath.Join(base, file.DirName)
	if err := os.MkdirAll(dst, 0o700); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(s.Dir())
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Name() == file.LockName {
			continue
		}
		data, err := os.ReadFile(filepath.Join(s.Dir(), e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, e.Name()), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return base
}

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

// TestJournalCrashImage: with the journal on, commits after the first go to the journal (the chain
// file keeps the first batch); a crash image of the directory at any moment opens with every
// acknowledged mark, brings the chain file up to date and removes the journals; a clean Close
// leaves only chain files too. A small journal makes the walk go through several compactions.
func TestJournalCrashImage(t *testing.T) {
	t.Parallel()
	for _, size := range []int64{file.DefaultJournalSize, 2048} {
		s := openJournaled(t, t.TempDir(), size)
		acked := walk(t, s, 1, 1)
		f, _ := readChainFile(t, s, watermarktest.Chain(0))
		if len(journals(t, s.Dir())) != 1 || f[watermarktest.PKH(0)]["block"].Level != 1 {
			t.Fatalf("size %d: after the first batch: journals %v, chain file %v", size, journals(t, s.Dir()), f)
		}
		for step := int32(2); step <= 40; step += 7 {
			for k, m := range walk(t, s, step, step+6) {
				acked[k] = m
			}
			if size == file.DefaultJournalSize {
				if f, _ := readChainFile(t, s, watermarktest.Chain(0)); f[watermarktest.PKH(0)]["block"].Level != 1 {
					t.Fatalf("the chain file was rewritten although the journal had room: %v", f)
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
	tail := strings.LastIndex(string(data), "SWJ1")
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

// TestJournalDamagedRecord: a record damaged in the middle of a journal (acknowledged records
// after it) is not skipped: the chain refuses to sign, naming the journal; other chains sign.
func TestJournalDamagedRecord(t *testing.T) {
	t.Parallel()
	s := openJournaled(t, t.TempDir(), file.DefaultJournalSize)
	defer s.Close()
	walk(t, s, 1, 5)
	watermarktest.MustAdvance(t, s, watermarktest.Key(1, 0, watermark.Block), watermarktest.Mark(3, 0, 1))
	img := crashImage(t, s)
	j := journals(t, filepath.Join(img, file.DirName))
	var chain0 string
	for _, p := range j {
		if strings.HasPrefix(filepath.Base(p), watermarktest.Chain(0)+".") {
			chain0 = p
		}
	}
	data, err := os.ReadFile(chain0)
	if err != nil {
		t.Fatal(err)
	}
	second := strings.Index(string(data[30:]), "SWJ1") + 30 // the record after the start record
	data[second+40] ^= 0x20
	if err := os.WriteFile(chain0, data, 0o600); err != nil {
		t.Fatal(err)
	}
	r := openJournaled(t, img, file.DefaultJournalSize)
	defer r.Close()
	_, err = r.Advance(t.Context(), watermarktest.Key(0, 0, watermark.Block), watermarktest.Mark(100, 0, 1))
	if err == nil || fault.KindOf(err) != fault.Internal || !strings.Contains(err.Error(), chain0) || !strings.Contains(err.Error(), "operator") {
		t.Fatalf("Advance on the damaged chain = %v", err)
	}
	watermarktest.MustRefuse(t, r, watermarktest.Key(1, 0, watermark.Block), watermarktest.Mark(3, 0, 2))
	watermarktest.MustAdvance(t, r, watermarktest.Key(1, 0, watermark.Block), watermarktest.Mark(4, 0, 1))
	if got, err := os.ReadFile(chain0); err != nil || string(got) != string(data) {
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
	watermarktest.MustAdvance(t, s, watermarktest.Key(0, 1, watermark.Block), watermarktest.SignedMark(1, 0, 1, 1)) // the chain file's first batch
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
