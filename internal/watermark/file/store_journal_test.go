package file

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/signatory-go/signatory/internal/watermark"
	"github.com/signatory-go/signatory/internal/watermark/watermarktest"
)

// TestOneSyncForManyChains: the changes of every chain that arrive while a journal write is in
// flight go out together, as one record with one fdatasync, and each is acknowledged only after
// it; the writer that led hands the lead on, so that the queued chains are answered. (Not
// parallel: it replaces datasync.)
func TestOneSyncForManyChains(t *testing.T) {
	const chains = 8
	s, err := Open(t.TempDir(), WithJournal(DefaultJournalSize), WithChainFileLag(0))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	watermarktest.MustAdvance(t, s, watermarktest.Key(0, 0, watermark.Block), watermarktest.Mark(1, 0, 1)) // the journal exists
	entered, release := make(chan struct{}), make(chan struct{})
	var syncs atomic.Int32
	datasync = func(f *os.File) error {
		if syncs.Add(1) == 1 {
			close(entered)
			<-release
		}
		return fdatasync(f)
	}
	defer func() { datasync = fdatasync }()
	var wg sync.WaitGroup
	errs := make([]error, chains)
	var answered atomic.Int32
	advance := func(i int) {
		wg.Go(func() {
			_, errs[i] = s.Advance(t.Context(), watermarktest.Key(i, 0, watermark.Block), watermarktest.Mark(2, 0, 1))
			answered.Add(1)
		})
	}
	advance(0)
	<-entered // chain 0's record is being made durable
	for i := 1; i < chains; i++ {
		advance(i)
	}
	for queued := 0; queued < chains-1; { // every other chain has handed its batch to the journal
		time.Sleep(time.Millisecond)
		s.journal.mu.Lock()
		queued = len(s.journal.queue)
		s.journal.mu.Unlock()
	}
	if n := answered.Load(); n != 0 {
		t.Fatalf("%d requests answered before their record's fdatasync", n)
	}
	close(release)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("chain %d: %v", i, err)
		}
	}
	if n := syncs.Load(); n != 2 {
		t.Fatalf("%d fdatasyncs for chain 0's record and the %d chains queued behind it, want 2", n, chains-1)
	}
	// A crash now: every chain's mark is in the journal.
	img := t.TempDir()
	if err := os.Mkdir(filepath.Join(img, DirName), 0o700); err != nil {
		t.Fatal(err)
	}
	name := storeJournalName(s.journal.epoch)
	data, err := os.ReadFile(filepath.Join(s.Dir(), name))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(img, DirName, name), data, 0o600); err != nil {
		t.Fatal(err)
	}
	r, err := Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	for i := range chains {
		if m, ok := watermarktest.Stored(t, r, watermarktest.Key(i, 0, watermark.Block)); !ok || m.Level != 2 {
			t.Fatalf("chain %d after a crash: %+v %v, want level 2", i, m, ok)
		}
	}
}

// TestManyChainsThroughCompactions: chains advancing at once through a small journal (many
// compactions, each writing other chains' files from the leader) lose no acknowledged mark, in a
// crash image taken at the end or after a clean stop. Each chain also has a key that advances
// once, first: without background rewrites, only the compactions can carry its mark from the
// first journal into its chain file.
func TestManyChainsThroughCompactions(t *testing.T) {
	t.Parallel()
	const chains, levels = 6, 60
	base := t.TempDir()
	s, err := Open(base, WithJournal(4096), WithChainFileLag(0))
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, chains)
	for i := range chains {
		wg.Go(func() {
			if _, err := s.Advance(t.Context(), watermarktest.Key(i, 100+i, watermark.Block), watermarktest.Mark(1, 0, 1)); err != nil {
				errs <- err
				return
			}
			for l := int32(1); l <= levels; l++ {
				for _, c := range []watermark.Class{watermark.Block, watermark.Attestation} {
					if _, err := s.Advance(t.Context(), watermarktest.Key(i, i, c), watermarktest.Mark(l, 0, byte(i))); err != nil {
						errs <- err
						return
					}
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if s.journal.epoch < 3 {
		t.Fatalf("journal epoch %d: the walk went through too few compactions to test them", s.journal.epoch)
	}
	check := func(st watermark.Store, when string) {
		for i := range chains {
			if m, ok := watermarktest.Stored(t, st, watermarktest.Key(i, 100+i, watermark.Block)); !ok || m.Level != 1 {
				t.Fatalf("%s: chain %d's still key at %+v %v, want level 1", when, i, m, ok)
			}
			for _, c := range []watermark.Class{watermark.Block, watermark.Attestation} {
				if m, ok := watermarktest.Stored(t, st, watermarktest.Key(i, i, c)); !ok || m.Level != levels {
					t.Fatalf("%s: chain %d %s at %+v %v, want level %d", when, i, c, m, ok, levels)
				}
			}
		}
	}
	img := CrashImage(t, s)
	r, err := Open(img)
	if err != nil {
		t.Fatal(err)
	}
	check(r, "crash image")
	r.Close()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if m, _ := filepath.Glob(filepath.Join(s.Dir(), "*"+journalSuffix)); len(m) != 0 {
		t.Fatalf("journals left after a clean stop: %v", m)
	}
	r, err = Open(base)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	check(r, "after a clean stop")
}

// watermarkDir returns a fresh base directory and its watermark directory, created (0700) and
// empty.
func watermarkDir(t *testing.T) (base, dir string) {
	t.Helper()
	base = t.TempDir()
	dir = filepath.Join(base, DirName)
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	return base, dir
}

// legacyRecord is the payload of a journal record of the versions that kept one journal per
// chain: key pkh's mark of class at level.
func legacyRecord(t *testing.T, pkh int, class watermark.Class, level int32) []byte {
	t.Helper()
	st := emptyState()
	var slots keyMarks
	slots[classIndex(class)] = newSlot(watermarktest.Mark(level, 0, 1))
	st.set(watermarktest.PKH(pkh), slots)
	p, err := encodeCompact(st)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// writeLegacyJournal writes chain's journal of epoch as those versions did (a 4 KiB file, an
// empty record, then payload's).
func writeLegacyJournal(t *testing.T, dir string, chain int, epoch uint64, payload []byte) {
	t.Helper()
	data := make([]byte, 4096)
	rec := appendRecord(appendRecord(nil, chainMagic, epoch, []byte("{}")), chainMagic, epoch, payload)
	copy(data, rec)
	if err := os.WriteFile(filepath.Join(dir, journalName(watermarktest.Chain(chain), epoch)), data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// dirFiles is every file of dir but the lock, name to content.
func dirFiles(t *testing.T, dir string) map[string]string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]string{}
	for _, e := range entries {
		if e.Name() == LockName {
			continue
		}
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		files[e.Name()] = string(data)
	}
	return files
}

// TestUpgradeFromChainJournals: journals of the versions that kept one per chain (left by a
// crash) are replayed beside the store's, their marks written into the chain files, and removed.
func TestUpgradeFromChainJournals(t *testing.T) {
	t.Parallel()
	base, dir := watermarkDir(t)
	record := func(pkh int, class watermark.Class, level int32) []byte { return legacyRecord(t, pkh, class, level) }
	// Chain 0: its chain file at 5, its old journal at 7. Chain 1: an old journal only, at 9.
	// Chain 2: the store journal, at 4.
	if err := os.WriteFile(filepath.Join(dir, watermarktest.Chain(0)+".json"), []byte(`{"`+watermarktest.PKH(0)+`":{"block":{"level":5,"round":0}}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	legacy := func(chain int, epoch uint64, payload []byte) { writeLegacyJournal(t, dir, chain, epoch, payload) }
	legacy(0, 3, record(0, watermark.Block, 7))
	legacy(1, 1, record(1, watermark.Attestation, 9))
	data := make([]byte, 4096)
	copy(data, appendRecord(nil, storeMagic, 2, []byte(`{"`+watermarktest.Chain(2)+`":`+string(record(2, watermark.Preattestation, 4))+`}`)))
	if err := os.WriteFile(filepath.Join(dir, storeJournalName(2)), data, 0o600); err != nil {
		t.Fatal(err)
	}

	var logged bytes.Buffer
	s, err := Open(base, WithJournal(DefaultJournalSize), WithLogger(slog.New(slog.NewTextHandler(&logged, nil))))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(logged.String(), "level=WARN") || strings.Contains(logged.String(), "level=ERROR") {
		t.Fatalf("an upgrade that went well warned:\n%s", logged.String())
	}
	want := map[watermark.Key]int32{
		watermarktest.Key(0, 0, watermark.Block):          7,
		watermarktest.Key(1, 1, watermark.Attestation):    9,
		watermarktest.Key(2, 2, watermark.Preattestation): 4,
	}
	for k, level := range want {
		if m, ok := watermarktest.Stored(t, s, k); !ok || m.Level != level {
			t.Fatalf("%v: %+v %v, want level %d", k, m, ok, level)
		}
		watermarktest.MustRefuse(t, s, k, watermarktest.Mark(level, 0, 2))
	}
	if m, _ := filepath.Glob(filepath.Join(dir, "*"+journalSuffix)); len(m) != 0 {
		t.Fatalf("journals left after Open: %v", m)
	}
	// Their marks are in the chain files from Open on, before any stop: what the reference reads.
	ro, err := Open(base, ReadOnly())
	if err != nil {
		t.Fatal(err)
	}
	for k, level := range want {
		if m, ok := watermarktest.Stored(t, ro, k); !ok || m.Level != level {
			t.Fatalf("%v in the chain files after Open: %+v %v, want level %d", k, m, ok, level)
		}
	}
	ro.Close()
	// The next journal is of a later epoch than the store journal replayed.
	watermarktest.MustAdvance(t, s, watermarktest.Key(2, 2, watermark.Preattestation), watermarktest.Mark(5, 0, 1))
	if s.journal.epoch != 3 {
		t.Fatalf("new journal of epoch %d after one of epoch 2 was replayed, want 3", s.journal.epoch)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	r := func() *Store {
		r, err := Open(base)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}()
	defer r.Close()
	for k, level := range want {
		if m, ok := watermarktest.Stored(t, r, k); !ok || m.Level < level {
			t.Fatalf("%v after a clean stop: %+v %v, want level %d", k, m, ok, level)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, storeJournalName(3))); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the journal is still there after a clean stop: %v", err)
	}
}

// TestCompactionSkipsChainsUpToDate: a full journal's compaction writes only the chain files
// that lack some of its marks: a chain whose file was brought up to date since (its background
// rewrite) is not written again, so that the chain that filled the journal, and every chain
// queued behind it, do not wait for chain files that hold everything already.
func TestCompactionSkipsChainsUpToDate(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	j := newJournal(dir, 1<<16, nil)
	chains := make([]*chain, 3)
	for i := range chains {
		chains[i] = journaledChain(dir, j, i)
	}
	commit := func(c *chain, level int32) {
		t.Helper()
		if res := c.commit([]*pending{req(0, watermark.Block, level, 1)}, nil); res[0].err != nil {
			t.Fatal(res[0].err)
		}
	}
	a, b, other := chains[0], chains[1], chains[2]
	commit(b, 2)
	commit(other, 2)
	b.refresh() // b's chain file now holds its journaled mark; other's does not
	commit(a, 2)
	bWrites, otherWrites := b.writes.Load(), other.writes.Load()
	j.fsize = j.off // full
	commit(a, 3)
	if j.epoch != 2 {
		t.Fatalf("epoch %d: no compaction", j.epoch)
	}
	if n := b.writes.Load() - bWrites; n != 0 {
		t.Fatalf("the compaction wrote a chain file that held everything (%d writes)", n)
	}
	if n := other.writes.Load() - otherWrites; n != 1 {
		t.Fatalf("the compaction wrote the chain file that lacked its marks %d times, want 1", n)
	}
	for _, c := range []*chain{a, b, other} {
		if m := diskMark(t, c, 0, watermark.Block); m.Level != 2 {
			t.Fatalf("chain %s's file at %d after the compaction, want 2", c.id, m.Level)
		}
	}
}

// TestReadOnlySnapshotRereads: a journal that a running daemon compacts away between the
// snapshot's listing and its reading of it (its marks now in chain files the snapshot may have
// read before) makes the snapshot read the directory again, not call the store corrupt; a
// directory that keeps changing is reported, not guessed. (Not parallel: it replaces readDir.)
func TestReadOnlySnapshotRereads(t *testing.T) {
	s, err := Open(t.TempDir(), WithJournal(DefaultJournalSize), WithChainFileLag(0))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	k := watermarktest.Key(0, 0, watermark.Block)
	watermarktest.MustAdvance(t, s, k, watermarktest.Mark(5, 0, 1))
	base := filepath.Dir(s.Dir())
	// A legacy journal of chain 1, which the snapshot reads (the daemon read it at its start).
	legacy := make([]byte, 4096)
	copy(legacy, appendRecord(nil, chainMagic, 1, []byte(`{"`+watermarktest.PKH(1)+`":{"block":{"level":8,"round":0}}}`)))
	if err := os.WriteFile(filepath.Join(s.Dir(), journalName(watermarktest.Chain(1), 1)), legacy, 0o600); err != nil {
		t.Fatal(err)
	}
	legacyKey := watermarktest.Key(1, 1, watermark.Block)
	// Listed, never there: compacted meanwhile. Each sorts before the real journal of its kind,
	// so that the real one is read after it.
	goneStore, goneLegacy := fakeEntry(storeJournalName(0)), fakeEntry(journalName(watermarktest.Chain(1), 0))
	defer func() { readDir = os.ReadDir }()
	// Each kind of journal vanishing alone makes the re-read, and both together.
	for _, gone := range [][]os.DirEntry{{goneStore, goneLegacy}, {goneStore}, {goneLegacy}} {
		rereads(t, base, gone, k, legacyKey)
	}
}

// rereads opens base read-only while its listing holds the vanished journals gone, once and then
// at every read, and checks the marks of k and legacyKey (levels 5 and 8) and the reads made.
func rereads(t *testing.T, base string, gone []os.DirEntry, k, legacyKey watermark.Key) {
	t.Helper()
	for _, listings := range []int{1, readAttempts} {
		calls := 0
		readDir = func(dir string) ([]os.DirEntry, error) {
			calls++
			entries, err := os.ReadDir(dir)
			if calls <= listings {
				entries = append(slices.Clone(gone), entries...) // listed first: read before the real ones
			}
			return entries, err
		}
		r, err := Open(base, ReadOnly())
		if err != nil {
			t.Fatal(err)
		}
		m, ok, err := r.Load(t.Context(), k)
		lm, lok, lerr := r.Load(t.Context(), legacyKey)
		health := r.Health(t.Context())
		r.Close()
		if err != nil || !ok || m.Level != 5 || lerr != nil || !lok || lm.Level != 8 {
			t.Fatalf("%v vanished, %d changed listings: %+v %v %v; the legacy journal's %+v %v %v", gone, listings, m, ok, err, lm, lok, lerr)
		}
		switch {
		case listings < readAttempts && (calls != listings+1 || health != nil):
			t.Fatalf("%v vanished, a listing that changed once: %d reads, health %v", gone, calls, health)
		case listings == readAttempts && (calls != readAttempts || health == nil):
			t.Fatalf("%v vanished, a listing that kept changing: %d reads, health %v", gone, calls, health)
		}
	}
}

type fakeEntry string

func (e fakeEntry) Name() string               { return string(e) }
func (e fakeEntry) IsDir() bool                { return false }
func (e fakeEntry) Type() os.FileMode          { return 0 }
func (e fakeEntry) Info() (os.FileInfo, error) { return nil, os.ErrNotExist }

// TestDamagedJournalShowsWhatItReads: with a record damaged in the middle of a journal, the marks
// of the records before it, and of every other journal, are still listed (for the operator's
// repair) while every chain refuses to sign.
func TestDamagedJournalShowsWhatItReads(t *testing.T) {
	t.Parallel()
	base, dir := watermarkDir(t)
	record := func(level int32) []byte {
		return []byte(`{"` + watermarktest.Chain(0) + `":{"` + watermarktest.PKH(0) + `":{"block":{"level":` + string(rune('0'+level)) + `,"round":0}}}}`)
	}
	data := appendRecord(nil, storeMagic, 1, []byte("{}"))
	data = appendRecord(data, storeMagic, 1, record(5))
	damaged := len(data)
	data = appendRecord(data, storeMagic, 1, record(6))
	data[damaged+journalHeader+2] ^= 0x20
	data = appendRecord(data, storeMagic, 1, record(7))
	if err := os.WriteFile(filepath.Join(dir, storeJournalName(1)), append(data, make([]byte, 64)...), 0o600); err != nil {
		t.Fatal(err)
	}
	other := appendRecord(nil, storeMagic, 2, []byte(`{"`+watermarktest.Chain(1)+`":{"`+watermarktest.PKH(1)+`":{"block":{"level":3,"round":0}}}}`))
	if err := os.WriteFile(filepath.Join(dir, storeJournalName(2)), append(other, make([]byte, 64)...), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, ro := range []bool{true, false} {
		opts := []Option{WithLogger(slog.New(slog.DiscardHandler))}
		if ro {
			opts = append(opts, ReadOnly())
		}
		s, err := Open(base, opts...)
		if err != nil {
			t.Fatal(err)
		}
		entries, err := s.List(t.Context())
		if err == nil || len(entries) != 2 || entries[0].Mark.Level != 5 || entries[1].Mark.Level != 3 {
			t.Fatalf("read-only %v: List = %v, %v; want the marks at 5 (chain 0) and 3 (chain 1), and the damage", ro, entries, err)
		}
		if _, err := s.Advance(t.Context(), watermarktest.Key(0, 0, watermark.Block), watermarktest.Mark(9, 0, 1)); err == nil {
			t.Fatalf("read-only %v: signed with the journal damaged", ro)
		}
		s.Close()
	}
	if _, err := os.Stat(filepath.Join(dir, watermarktest.Chain(0)+".json")); !os.IsNotExist(err) {
		t.Fatalf("a chain file was written from a damaged journal: %v", err)
	}
}

// TestDamagedChainJournalReadOnly: a read-only snapshot of a damaged journal of an earlier
// version (one per chain) reports that chain broken, as a writable store does; only a journal
// that is gone when read (a daemon's compaction) is read again.
func TestDamagedChainJournalReadOnly(t *testing.T) {
	t.Parallel()
	base, dir := watermarkDir(t)
	data := appendRecord(nil, chainMagic, 1, []byte("{}"))
	damaged := len(data)
	data = appendRecord(data, chainMagic, 1, []byte(`{"`+watermarktest.PKH(0)+`":{"block":{"level":5,"round":0}}}`))
	data[damaged+journalHeader+3] ^= 0x20
	data = appendRecord(data, chainMagic, 1, []byte(`{"`+watermarktest.PKH(0)+`":{"block":{"level":6,"round":0}}}`))
	if err := os.WriteFile(filepath.Join(dir, journalName(watermarktest.Chain(0), 1)), append(data, make([]byte, 64)...), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, opts := range [][]Option{{ReadOnly()}, nil} {
		s, err := Open(base, append(opts, WithLogger(slog.New(slog.DiscardHandler)))...)
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := s.Load(t.Context(), watermarktest.Key(0, 0, watermark.Block)); err == nil || !strings.Contains(err.Error(), "corrupt") {
			t.Fatalf("read-only %v: Load of a chain whose journal is damaged: %v", len(opts) > 0, err)
		}
		s.Close()
	}
}

// TestJournalOutageLoggedOnce: a journal that cannot be started is logged once per outage, not
// at every batch, and its recovery once; Health reports the outage until then.
func TestJournalOutageLoggedOnce(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	var logged bytes.Buffer
	missing := filepath.Join(dir, "missing")
	j := newJournal(missing, 1<<16, slog.New(slog.NewTextHandler(&logged, nil)))
	c := journaledChain(dir, j, 0)
	for level := int32(1); level <= 3; level++ {
		if res := c.commit([]*pending{req(0, watermark.Block, level, 1)}, nil); res[0].err != nil {
			t.Fatal(res[0].err)
		}
	}
	if n := strings.Count(logged.String(), "level=ERROR"); n != 1 || j.health() == nil {
		t.Fatalf("three batches without a journal: %d error lines (want 1), health %v\n%s", n, j.health(), logged.String())
	}
	if err := os.Mkdir(missing, 0o700); err != nil {
		t.Fatal(err)
	}
	for level := int32(4); level <= 6; level++ {
		if res := c.commit([]*pending{req(0, watermark.Block, level, 1)}, nil); res[0].err != nil {
			t.Fatal(res[0].err)
		}
	}
	if n := strings.Count(logged.String(), "in use again"); n != 1 || j.health() != nil {
		t.Fatalf("after the recovery: %d recovery lines (want 1), health %v\n%s", n, j.health(), logged.String())
	}
}

// TestKeptJournalsNotReused: journals kept at start (they hold marks of a chain whose file is
// corrupt) are never overwritten or removed: the next journal is of a later epoch than all of
// them, also when the listing puts epoch 10 before 9.
func TestKeptJournalsNotReused(t *testing.T) {
	t.Parallel()
	base, dir := watermarkDir(t)
	if err := os.WriteFile(filepath.Join(dir, watermarktest.Chain(0)+".json"), []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	kept := map[uint64][]byte{}
	for _, epoch := range []uint64{9, 10} {
		rec := appendRecord(nil, storeMagic, epoch, []byte(`{"`+watermarktest.Chain(0)+`":{"`+watermarktest.PKH(0)+`":{"block":{"level":`+strconv.FormatUint(epoch, 10)+`,"round":0}}}}`))
		kept[epoch] = append(rec, make([]byte, 64)...)
		if err := os.WriteFile(filepath.Join(dir, storeJournalName(epoch)), kept[epoch], 0o600); err != nil {
			t.Fatal(err)
		}
	}
	s, err := Open(base, WithJournal(DefaultJournalSize), WithChainFileLag(0), WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	watermarktest.MustAdvance(t, s, watermarktest.Key(1, 0, watermark.Block), watermarktest.Mark(3, 0, 1))
	if s.journal.epoch != 11 {
		t.Fatalf("new journal of epoch %d beside kept ones of 9 and 10, want 11", s.journal.epoch)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	for epoch, data := range kept {
		if now, err := os.ReadFile(filepath.Join(dir, storeJournalName(epoch))); err != nil || !bytes.Equal(now, data) {
			t.Fatalf("kept journal %d changed or removed: %v", epoch, err)
		}
	}
}

// TestCloseTwiceWritesNothing: a second Close (Close is idempotent) writes no chain file: the
// first one released the lock, and another process may hold the directory by then.
func TestCloseTwiceWritesNothing(t *testing.T) {
	t.Parallel()
	s, err := Open(t.TempDir(), WithJournal(DefaultJournalSize), WithChainFileLag(0))
	if err != nil {
		t.Fatal(err)
	}
	watermarktest.MustAdvance(t, s, watermarktest.Key(0, 0, watermark.Block), watermarktest.Mark(5, 0, 1))
	c := s.chainFor(t, watermarktest.Chain(0))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	writes := c.writes.Load()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if n := c.writes.Load() - writes; n != 0 {
		t.Fatalf("a second Close wrote the chain file %d times", n)
	}
}

// TestCompactionTakesHeldMarks: a compaction writes the marks the journal holds for a chain even
// when its writer has not published them yet (its record acknowledged, its state not yet stored):
// the journal is removed after, and those marks must be in the chain file.
func TestCompactionTakesHeldMarks(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	j := newJournal(dir, 1<<16, nil)
	c := journaledChain(dir, j, 0)
	if res := c.commit([]*pending{req(0, watermark.Block, 5, 1)}, nil); res[0].err != nil {
		t.Fatal(res[0].err)
	}
	// A record of level 9 written and acknowledged, the chain's state not stored yet.
	part := emptyState()
	var slots keyMarks
	slots[classIndex(watermark.Block)] = newSlot(watermarktest.Mark(9, 0, 1))
	part.set(watermarktest.PKH(0), slots)
	raise(j.held[c], part)
	if err := j.rotate(0); err != nil {
		t.Fatal(err)
	}
	if m := diskMark(t, c, 0, watermark.Block); m.Level != 9 {
		t.Fatalf("chain file at %d after the compaction, want 9 (held by the journal)", m.Level)
	}
	j.close(true)
}

// TestCompactionWritesWhatItHolds: each compaction writes the marks its journal holds, also for a
// chain whose file an earlier compaction wrote; and holds nothing after (the next journal starts
// empty).
func TestCompactionWritesWhatItHolds(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	j := newJournal(dir, 1<<16, nil)
	c := journaledChain(dir, j, 0)
	for level := int32(1); level <= 3; level++ {
		if res := c.commit([]*pending{req(0, watermark.Block, level, 1)}, nil); res[0].err != nil {
			t.Fatal(res[0].err)
		}
		if err := j.rotate(0); err != nil {
			t.Fatal(err)
		}
		if m := diskMark(t, c, 0, watermark.Block); m.Level != level {
			t.Fatalf("chain file at %d after compaction %d, want %d", m.Level, level, level)
		}
		if len(j.held) != 0 {
			t.Fatalf("the new journal holds %d chains' marks before any record", len(j.held))
		}
	}
	j.close(true)
}

// TestCloseWithJournalGone: a journal already gone at a clean stop (removed by hand) is no error:
// there is nothing left to remove.
func TestCloseWithJournalGone(t *testing.T) {
	t.Parallel()
	s, err := Open(t.TempDir(), WithJournal(DefaultJournalSize), WithChainFileLag(0))
	if err != nil {
		t.Fatal(err)
	}
	watermarktest.MustAdvance(t, s, watermarktest.Key(0, 0, watermark.Block), watermarktest.Mark(5, 0, 1))
	if err := os.Remove(filepath.Join(s.Dir(), storeJournalName(s.journal.epoch))); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close with the journal already gone: %v", err)
	}
}

// TestUpgradeKeepsWhatItCannotWrite: an old per-chain journal whose chain file is corrupt, or whose
// chain file cannot be written, stays where it is, and its chain refuses to sign: the journal
// holds marks that are nowhere else. A corrupt chain file is never overwritten with the
// journal's marks alone (they may be lower than what the file held). Once the file can be
// written, the next start brings it up to date. (Not parallel: it replaces writeDurable.)
func TestUpgradeKeepsWhatItCannotWrite(t *testing.T) {
	base, dir := watermarkDir(t)
	corrupt := filepath.Join(dir, watermarktest.Chain(0)+".json")
	if err := os.WriteFile(corrupt, []byte(`{"`+watermarktest.PKH(0)+`":{"block":{"level":90`), 0o600); err != nil {
		t.Fatal(err)
	}
	writeLegacyJournal(t, dir, 0, 1, legacyRecord(t, 0, watermark.Block, 7))
	writeLegacyJournal(t, dir, 1, 1, legacyRecord(t, 1, watermark.Attestation, 9))
	before := dirFiles(t, dir)
	unwritable := filepath.Join(dir, watermarktest.Chain(1)+".json")
	writeDurable = func(path string, data []byte) error {
		if path == unwritable {
			return errors.New("EIO")
		}
		return writeDurableFile(path, data)
	}
	defer func() { writeDurable = writeDurableFile }()
	var logged bytes.Buffer
	s, err := Open(base, WithJournal(DefaultJournalSize), WithLogger(slog.New(slog.NewTextHandler(&logged, nil))))
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []watermark.Key{watermarktest.Key(0, 0, watermark.Block), watermarktest.Key(1, 1, watermark.Attestation)} {
		if _, err := s.Advance(context.Background(), k, watermarktest.Mark(100, 0, 1)); err == nil || watermark.IsConflict(err) {
			t.Errorf("%v: Advance = %v, want the chain's refusal to sign", k, err)
		}
	}
	s.Close() // (what it reports is not this test's subject)
	if got := dirFiles(t, dir); !maps.Equal(got, before) {
		t.Fatalf("the directory changed: %v, was %v", slices.Sorted(maps.Keys(got)), slices.Sorted(maps.Keys(before)))
	}
	if !strings.Contains(logged.String(), "cannot bring the chain file up to date from its journal") {
		t.Fatalf("no word of the chain file that cannot be written:\n%s", logged.String())
	}

	// The file writable again: chain 1 comes up to date from the kept journal; chain 0 still
	// refuses until the operator repairs its file.
	writeDurable = writeDurableFile
	s, err = Open(base, WithJournal(DefaultJournalSize))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	watermarktest.MustRefuse(t, s, watermarktest.Key(1, 1, watermark.Attestation), watermarktest.Mark(9, 0, 2))
	watermarktest.MustAdvance(t, s, watermarktest.Key(1, 1, watermark.Attestation), watermarktest.Mark(10, 0, 1))
	if _, err := s.Advance(context.Background(), watermarktest.Key(0, 0, watermark.Block), watermarktest.Mark(100, 0, 1)); err == nil || watermark.IsConflict(err) {
		t.Fatalf("the corrupt chain: Advance = %v, want its refusal to sign", err)
	}
	if _, err := os.Stat(filepath.Join(dir, journalName(watermarktest.Chain(0), 1))); err != nil {
		t.Fatalf("the journal of the corrupt chain: %v", err)
	}
}

// TestReadOnlyChangesNothing: a read-only Open (watermark show, export) of a directory holding old
// per-chain journals, a store journal and a stale temporary file shows every mark and changes no
// file: the daemon that owns the directory may be running.
func TestReadOnlyChangesNothing(t *testing.T) {
	t.Parallel()
	base, dir := watermarkDir(t)
	writeLegacyJournal(t, dir, 0, 1, legacyRecord(t, 0, watermark.Block, 7))
	data := make([]byte, 4096)
	copy(data, appendRecord(nil, storeMagic, 2, []byte(`{"`+watermarktest.Chain(1)+`":`+string(legacyRecord(t, 1, watermark.Attestation, 9))+`}`)))
	if err := os.WriteFile(filepath.Join(dir, storeJournalName(2)), data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, tmpPrefix+"123"), []byte("half a chain file"), 0o600); err != nil {
		t.Fatal(err)
	}
	before := dirFiles(t, dir)
	s, err := Open(base, ReadOnly())
	if err != nil {
		t.Fatal(err)
	}
	for k, level := range map[watermark.Key]int32{
		watermarktest.Key(0, 0, watermark.Block):       7,
		watermarktest.Key(1, 1, watermark.Attestation): 9,
	} {
		if m, ok := watermarktest.Stored(t, s, k); !ok || m.Level != level {
			t.Fatalf("%v: %+v %v, want level %d", k, m, ok, level)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if got := dirFiles(t, dir); !maps.Equal(got, before) {
		t.Fatalf("a read-only Open changed the directory: %v, was %v", slices.Sorted(maps.Keys(got)), slices.Sorted(maps.Keys(before)))
	}
}

// goroutineID is the running goroutine's number, from the first line of its stack.
func goroutineID() string {
	buf := make([]byte, 64)
	buf = buf[:runtime.Stack(buf, false)]
	id, _, _ := strings.Cut(strings.TrimPrefix(string(buf), "goroutine "), " ")
	return id
}

// TestRequestWritesItsOwnBatch: a request that finds no writer running on its chain writes its
// batch from its own goroutine (no goroutine is started for it), and returns once that batch is
// durable; what was queued on the chain meanwhile is written by a writer goroutine started then,
// never by the request's goroutine, so a request's answer never waits for later batches. (Not
// parallel: it replaces datasync.)
func TestRequestWritesItsOwnBatch(t *testing.T) {
	s, err := Open(t.TempDir(), WithJournal(DefaultJournalSize), WithChainFileLag(0))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	watermarktest.MustAdvance(t, s, watermarktest.Key(0, 0, watermark.Block), watermarktest.Mark(1, 0, 1)) // the journal exists
	type sync1 struct {
		by      string // the goroutine calling datasync
		release chan struct{}
	}
	syncs, stop := make(chan sync1), make(chan struct{})
	datasync = func(f *os.File) error {
		c := sync1{goroutineID(), make(chan struct{})}
		select {
		case syncs <- c:
			select {
			case <-c.release:
			case <-stop: // the test failed: nothing holds the writes back any more
			}
		case <-stop:
		}
		return fdatasync(f)
	}
	defer func() { close(stop); datasync = fdatasync }() // before Close, which waits for the writes
	advance := func(pkh int, id chan<- string, done chan<- error) {
		go func() {
			id <- goroutineID()
			_, err := s.Advance(t.Context(), watermarktest.Key(0, pkh, watermark.Block), watermarktest.Mark(2, 0, 1))
			done <- err
		}()
	}
	aID, bID := make(chan string, 1), make(chan string, 1)
	aDone, bDone := make(chan error, 1), make(chan error, 1)
	advance(0, aID, aDone)
	a := <-syncs
	if id := <-aID; a.by != id {
		t.Fatalf("the lone request's batch was written by goroutine %s, not by the request's (%s)", a.by, id)
	}
	advance(1, bID, bDone) // the same chain, while A's batch is being written
	c, _ := s.chains.Load(watermarktest.Chain(0))
	for queued := 0; queued == 0; runtime.Gosched() { // a state of the chain, not a time
		c.(*chain).mu.Lock()
		queued = len(c.(*chain).queue)
		c.(*chain).mu.Unlock()
	}
	close(a.release)
	b := <-syncs
	if id := <-bID; b.by == a.by || b.by == id {
		t.Fatalf("the batch queued behind was written by goroutine %s (the first request's %s, its own %s), not by a writer", b.by, a.by, id)
	}
	if err := <-aDone; err != nil { // answered while B's batch is still being written
		t.Fatal(err)
	}
	close(b.release)
	if err := <-bDone; err != nil {
		t.Fatal(err)
	}
	for pkh := range 2 {
		if m, ok := watermarktest.Stored(t, s, watermarktest.Key(0, pkh, watermark.Block)); !ok || m.Level != 2 {
			t.Fatalf("key %d: %+v %v", pkh, m, ok)
		}
	}
}
