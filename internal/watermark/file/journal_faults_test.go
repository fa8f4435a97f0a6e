package file

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/signatory-go/signatory/internal/watermark"
	"github.com/signatory-go/signatory/internal/watermark/watermarktest"
)

// The journal's failures, made by replacing datasync and writeDurable (package variables): these
// tests are not parallel, and the package's parallel tests start only after them.

// chainFileLevel is the block level of key 0 that s's chain file of chain 0 holds on disk (0: no
// chain file yet).
func chainFileLevel(t *testing.T, s *Store) int32 {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(s.Dir(), watermarktest.Chain(0)+".json"))
	if errors.Is(err, os.ErrNotExist) {
		return 0
	}
	if err != nil {
		t.Fatal(err)
	}
	st, err := decode(data)
	if err != nil {
		t.Fatal(err)
	}
	return st.of(watermarktest.PKH(0))[classIndex(watermark.Block)].mark.Level
}

// TestFailedSyncIsNoAcknowledgement: a journal record whose fdatasync fails is not durable: its
// batch is refused; the next record starts a new journal, after the failed one's acknowledged
// marks are written into the chain file (not the refused record's: the chain file never goes
// above what the chain holds in memory).
func TestFailedSyncIsNoAcknowledgement(t *testing.T) {
	s, err := Open(t.TempDir(), WithJournal(DefaultJournalSize), WithChainFileLag(0))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	k := watermarktest.Key(0, 0, watermark.Block)
	watermarktest.MustAdvance(t, s, k, watermarktest.Mark(5, 0, 1))
	watermarktest.MustAdvance(t, s, k, watermarktest.Mark(6, 0, 1))
	failed := errors.New("EIO")
	datasync = func(*os.File) error { return failed }
	_, err = s.Advance(t.Context(), k, watermarktest.Mark(7, 0, 1))
	datasync = fdatasync
	if !errors.Is(err, failed) {
		t.Fatalf("a record whose fdatasync failed: %v (want the batch refused)", err)
	}
	if m, _ := watermarktest.Stored(t, s, k); m.Level != 6 {
		t.Fatalf("a refused record's mark is in memory: level %d", m.Level)
	}
	watermarktest.MustAdvance(t, s, k, watermarktest.Mark(8, 0, 1))
	if got := chainFileLevel(t, s); got != 6 {
		t.Fatalf("after a failed journal the next record left the chain file at %d, want 6 (the failed journal's acknowledged marks, not the refused one)", got)
	}
	if j := s.journal; j.f == nil || j.epoch != 2 {
		t.Fatalf("no new journal after the failed one: epoch %d", j.epoch)
	}
}

// withoutJournal advances a key of s to 5, 6 and 7 while no journal can be started: each mark must
// be in the chain file, and no journal file (what names them) left behind.
func withoutJournal(t *testing.T, s *Store, what string) {
	t.Helper()
	k := watermarktest.Key(0, 0, watermark.Block)
	for level := int32(5); level <= 7; level++ {
		watermarktest.MustAdvance(t, s, k, watermarktest.Mark(level, 0, 1))
		if got := chainFileLevel(t, s); got != level {
			t.Fatalf("a mark at %d with no journal: the chain file holds %d", level, got)
		}
		if m, _ := filepath.Glob(filepath.Join(s.Dir(), "*"+journalSuffix)); len(m) != 0 {
			t.Fatalf("%s left behind: %v", what, m)
		}
	}
}

// TestJournalCreationFails: a journal whose creation fails (its write succeeded, its fsync did
// not) is not used, nor left behind: the chain goes on writing its chain file at every batch, and
// when a full journal cannot be replaced, the chain file is written.
func TestJournalCreationFails(t *testing.T) {
	failJournals := func(path string, data []byte) error {
		if strings.HasSuffix(path, journalSuffix) {
			_ = os.WriteFile(path, data, 0o600) // on disk, but not durable
			return errors.New("fsync: EIO")
		}
		return writeDurableFile(path, data)
	}
	t.Run("missing", func(t *testing.T) { // written nowhere, yet reported written
		s, err := Open(t.TempDir(), WithJournal(DefaultJournalSize), WithChainFileLag(0))
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		writeDurable = func(path string, data []byte) error {
			if strings.HasSuffix(path, journalSuffix) {
				return nil
			}
			return writeDurableFile(path, data)
		}
		defer func() { writeDurable = writeDurableFile }()
		k := watermarktest.Key(0, 0, watermark.Block)
		for level := int32(5); level <= 7; level++ {
			watermarktest.MustAdvance(t, s, k, watermarktest.Mark(level, 0, 1))
		}
	})
	t.Run("first", func(t *testing.T) {
		s, err := Open(t.TempDir(), WithJournal(DefaultJournalSize), WithChainFileLag(0))
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		writeDurable = failJournals
		defer func() { writeDurable = writeDurableFile }()
		withoutJournal(t, s, "journals whose creation failed")
		if s.Health(t.Context()) == nil {
			t.Fatal("Health says nothing of the journal that cannot be started")
		}
	})
	t.Run("unopenable", func(t *testing.T) { // written, then it cannot be opened: removed
		s, err := Open(t.TempDir(), WithJournal(DefaultJournalSize), WithChainFileLag(0))
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		writeDurable = func(path string, data []byte) error {
			if strings.HasSuffix(path, journalSuffix) {
				return os.Mkdir(path, 0o700) // there, and no file to open for writing
			}
			return writeDurableFile(path, data)
		}
		defer func() { writeDurable = writeDurableFile }()
		withoutJournal(t, s, "journals that could not be opened")
	})
	t.Run("next", func(t *testing.T) {
		s, err := Open(t.TempDir(), WithJournal(4096), WithChainFileLag(0))
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		k := watermarktest.Key(0, 0, watermark.Block)
		watermarktest.MustAdvance(t, s, k, watermarktest.Mark(1, 0, 1))
		writeDurable = failJournals
		defer func() { writeDurable = writeDurableFile }()
		// Records until the journal is full and the chain file is written instead (the journal
		// is at least 64 KiB: a few hundred records).
		level := int32(2)
		for ; ; level++ {
			watermarktest.MustAdvance(t, s, k, watermarktest.Mark(level, 0, 1))
			if chainFileLevel(t, s) == level {
				break
			}
			if level == 5000 {
				t.Fatal("the journal never filled")
			}
		}
		level++
		for range 3 { // the full journal kept, its replacement failing: the chain file each time
			watermarktest.MustAdvance(t, s, k, watermarktest.Mark(level, 0, 1))
			if got := chainFileLevel(t, s); got != level {
				t.Fatalf("a mark at %d with the journal full: the chain file holds %d", level, got)
			}
			// The full journal went once the chain file held its marks; the replacements that
			// failed, on disk but not durable, are removed.
			if m, _ := filepath.Glob(filepath.Join(s.Dir(), "*"+journalSuffix)); len(m) != 0 {
				t.Fatalf("journals left behind: %v", m)
			}
			level++
		}
	})
}

// TestParseJournalName: only <chain>.<epoch>.journal, with a chain and a decimal epoch, names a
// journal.
func TestParseJournalName(t *testing.T) {
	t.Parallel()
	if chain, epoch, ok := parseJournalName("NetXdQprcVkpaWU.12.journal"); !ok || chain != "NetXdQprcVkpaWU" || epoch != 12 {
		t.Fatalf("a journal's name: %q %d %v", chain, epoch, ok)
	}
	if chain, epoch, ok := parseJournalName(storeJournalName(7)); !ok || chain+"." != storeJournalPrefix || epoch != 7 {
		t.Fatalf("the store journal's name: %q %d %v", chain, epoch, ok)
	}
	for _, name := range []string{"NetXdQprcVkpaWU.12", ".12.journal", "12.journal", "NetXdQprcVkpaWU.x.journal", "NetXdQprcVkpaWU..journal", "NetXdQprcVkpaWU.-1.journal"} {
		if chain, epoch, ok := parseJournalName(name); ok {
			t.Errorf("%q read as the journal of %q, epoch %d", name, chain, epoch)
		}
	}
}

// TestReplayUndecodableRecord: a whole record (its checksum right) whose content is not a chain
// state, or in a store journal not an object of chain states, is damage, named with its offset:
// the chain (or the store) refuses to sign rather than guess.
func TestReplayUndecodableRecord(t *testing.T) {
	t.Parallel()
	data := appendRecord(nil, chainMagic, 3, []byte("{}"))
	data = appendRecord(data, chainMagic, 3, []byte("not json"))
	if _, err := replayJournal(emptyState(), data, 3); err == nil || !strings.Contains(err.Error(), "offset") {
		t.Fatalf("a record that does not decode: %v", err)
	}
	for _, payload := range []string{"not json", "null", "[]", `{"NetXnotachain":{}}`, `{"` + watermarktest.Chain(0) + `":{"x":1}}`} {
		data := appendRecord(nil, storeMagic, 3, []byte("{}"))
		data = appendRecord(data, storeMagic, 3, []byte(payload))
		if _, err := replayStoreJournal(data, 3, func(string, *state) {}); err == nil || !strings.Contains(err.Error(), "offset") {
			t.Fatalf("a store record %s: %v", payload, err)
		}
	}
}

// TestJournalFileBound: a journal file up to maxJournalFile bytes is read; one byte more is
// damage, refused before anything in it is read. (Not parallel: it lowers maxJournalFile.)
func TestJournalFileBound(t *testing.T) {
	defer func(n int) { maxJournalFile = n }(maxJournalFile)
	data := appendRecord(nil, storeMagic, 1, []byte("{}"))
	maxJournalFile = len(data) + 8
	data = append(data, make([]byte, 8)...)
	if tail, err := replayStoreJournal(data, 1, func(string, *state) {}); err != nil || tail != len(data)-8 {
		t.Fatalf("a journal of exactly the bound: tail %d, %v", tail, err)
	}
	data = append(data, 0)
	if _, err := replayStoreJournal(data, 1, func(string, *state) {}); err == nil || !strings.Contains(err.Error(), "more than any journal") {
		t.Fatalf("a journal one byte over the bound: %v", err)
	}
}

// TestCloseReportsJournalRemoval: when a clean stop cannot remove the journal, Close says so.
// (Not parallel only to sit with the other fault tests; it replaces nothing.)
func TestCloseReportsJournalRemoval(t *testing.T) {
	s, err := Open(t.TempDir(), WithJournal(DefaultJournalSize), WithChainFileLag(0))
	if err != nil {
		t.Fatal(err)
	}
	watermarktest.MustAdvance(t, s, watermarktest.Key(0, 0, watermark.Block), watermarktest.Mark(5, 0, 1))
	path := filepath.Join(s.Dir(), storeJournalName(s.journal.epoch))
	// A non-empty directory where the journal was: its removal fails.
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(path, "x"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err == nil || !strings.Contains(err.Error(), storeJournalName(s.journal.epoch)) {
		t.Fatalf("Close with the journal not removed: %v", err)
	}
	if got := chainFileLevel(t, s); got != 5 {
		t.Fatalf("the chain file holds %d after the stop, want 5", got)
	}
}

// TestFailedRotationDropsTheFullJournal: when the full journal's replacement cannot be created,
// the full one (its file closed) takes no more records, not even one that would still fit: each
// batch writes its chain file until a journal can be created. (Not parallel: it replaces
// writeDurable.)
func TestFailedRotationDropsTheFullJournal(t *testing.T) {
	dir := t.TempDir()
	j := newJournal(dir, 1<<16, nil)
	c := journaledChain(dir, j, 0)
	if res := c.commit([]*pending{req(0, watermark.Block, 1, 1)}, nil); res[0].err != nil {
		t.Fatal(res[0].err)
	}
	var batch []*pending
	for k := range 50 {
		batch = append(batch, req(k, watermark.Attestation, 2, byte(k)))
	}
	j.fsize = j.off + 400 // room for a small record, not for the batch of 50
	writeDurable = func(path string, data []byte) error {
		if strings.HasSuffix(path, journalSuffix) {
			return errors.New("ENOSPC")
		}
		return writeDurableFile(path, data)
	}
	defer func() { writeDurable = writeDurableFile }()
	for _, r := range c.commit(batch, nil) {
		if r.err != nil {
			t.Fatalf("the batch that does not fit, its journal not replaced: %v", r.err)
		}
	}
	if res := c.commit([]*pending{req(0, watermark.Block, 3, 1)}, nil); res[0].err != nil {
		t.Fatalf("a small batch after the failed replacement: %v", res[0].err)
	}
	if m := diskMark(t, c, 0, watermark.Block); m.Level != 3 {
		t.Fatalf("chain file at %d, want 3", m.Level)
	}
	// The chain file the batch wrote holds everything, the journal's earlier record included:
	// neither the background rewrite nor a clean stop writes it again.
	writes := c.writes.Load()
	c.refresh()
	if err := c.compact(); err != nil {
		t.Fatal(err)
	}
	if n := c.writes.Load() - writes; n != 0 {
		t.Fatalf("the up-to-date chain file was written %d more times", n)
	}
}

// TestRotationCannotRemoveTheFullJournal: when the full journal cannot be removed, no new one is
// started over it: the batch writes its chain file and Health says why.
func TestRotationCannotRemoveTheFullJournal(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	j := newJournal(dir, 1<<16, nil)
	c := journaledChain(dir, j, 0)
	if res := c.commit([]*pending{req(0, watermark.Block, 1, 1)}, nil); res[0].err != nil {
		t.Fatal(res[0].err)
	}
	path := filepath.Join(dir, storeJournalName(j.epoch))
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(path, "x"), 0o700); err != nil { // cannot be removed
		t.Fatal(err)
	}
	j.fsize = j.off // full
	if res := c.commit([]*pending{req(0, watermark.Block, 2, 1)}, nil); res[0].err != nil {
		t.Fatal(res[0].err)
	}
	if j.health() == nil || j.epoch != 1 {
		t.Fatalf("a full journal that cannot be removed: health %v, epoch %d (want the error, and 1)", j.health(), j.epoch)
	}
	if m := diskMark(t, c, 0, watermark.Block); m.Level != 2 {
		t.Fatalf("chain file at %d, want 2", m.Level)
	}
}
