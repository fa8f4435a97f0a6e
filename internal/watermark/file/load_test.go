package file

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/signatory-go/signatory/internal/backend"
	"github.com/signatory-go/signatory/internal/fault"
	"github.com/signatory-go/signatory/internal/spending"
	"github.com/signatory-go/signatory/internal/watermark"
	"github.com/signatory-go/signatory/internal/watermark/watermarktest"
)

// Opening, closing, locking and the spending files, at each branch a negated condition gets wrong
// (found by mutation testing, see docs/testing.md).

// CrashImage copies the watermark directory of a running store to a new base, as a machine that
// lost power at this moment would find it: every acknowledged write has been fdatasynced, so the
// copy holds it. The lock file is left out (a crashed process holds no lock). Exported for the
// package's external tests.
func CrashImage(t testing.TB, s *Store) string {
	t.Helper()
	base := t.TempDir()
	dst := filepath.Join(base, DirName)
	if err := os.MkdirAll(dst, 0o700); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(s.Dir())
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Name() == LockName {
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

// journaledAtSix opens a journaled store without background rewrites in base, with a key's block
// mark at levels 5 and 6 in its journal only (no chain file yet).
func journaledAtSix(t *testing.T, base string) (*Store, watermark.Key) {
	t.Helper()
	s, err := Open(base, WithJournal(DefaultJournalSize), WithChainFileLag(0))
	if err != nil {
		t.Fatal(err)
	}
	k := watermarktest.Key(0, 0, watermark.Block)
	watermarktest.MustAdvance(t, s, k, watermarktest.Mark(5, 0, 1))
	watermarktest.MustAdvance(t, s, k, watermarktest.Mark(6, 0, 1))
	return s, k
}

// TestOpenCleansUpQuietly: a crash left a temp file and a journal; Open removes both without a
// warning, and reads the journal's marks.
func TestOpenCleansUpQuietly(t *testing.T) {
	t.Parallel()
	base := t.TempDir()
	s, k := journaledAtSix(t, base)
	// The crash: a copy of the directory as it is, plus a temp file of a rewrite in progress.
	crashed := CrashImage(t, s)
	dir := filepath.Join(crashed, DirName)
	s.Close()
	if err := os.WriteFile(filepath.Join(dir, tmpPrefix+"123"), []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}

	var logs bytes.Buffer
	r, err := Open(crashed, WithLogger(slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn}))))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if logs.Len() != 0 {
		t.Errorf("Open logged:\n%s", logs.String())
	}
	if got, ok := watermarktest.Stored(t, r, k); !ok || got.Level != 6 {
		t.Errorf("after the crash: %+v %v, want level 6", got, ok)
	}
	left, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range left {
		if strings.HasPrefix(e.Name(), tmpPrefix) || strings.HasSuffix(e.Name(), journalSuffix) {
			t.Errorf("%s is still there after Open", e.Name())
		}
	}
}

// TestChainFileNamedDirectory: a directory named like a chain file holds no marks and is no
// problem.
func TestChainFileNamedDirectory(t *testing.T) {
	t.Parallel()
	base := t.TempDir()
	if err := os.MkdirAll(filepath.Join(base, DirName, watermarktest.Chain(0)+".json"), 0o700); err != nil {
		t.Fatal(err)
	}
	s, err := Open(base)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Health(t.Context()); err != nil {
		t.Fatalf("health: %v", err)
	}
}

// TestOpenCannotMakeTheDirectory: when the watermark directory cannot be made, Open says so.
func TestOpenCannotMakeTheDirectory(t *testing.T) {
	t.Parallel()
	// A dangling symbolic link: nothing is there to stat, and nothing can be made there.
	tmp := t.TempDir()
	base := filepath.Join(tmp, "base")
	if err := os.Symlink(filepath.Join(tmp, "missing", "target"), base); err != nil {
		t.Fatal(err)
	}
	_, err := Open(base)
	if err == nil || !strings.Contains(err.Error(), "mkdir") {
		t.Fatalf("Open over a dangling link: %v, want the mkdir error", err)
	}
}

// TestCloseReportsFailedCompaction: when a clean stop cannot bring a chain file up to date, Close
// says so, and the journal keeps the marks for the next start.
func TestCloseReportsFailedCompaction(t *testing.T) {
	t.Parallel()
	base := t.TempDir()
	s, k := journaledAtSix(t, base)
	path := filepath.Join(s.Dir(), watermarktest.Chain(0)+".json")
	// A non-empty directory where the chain file goes: the rename over it fails.
	if err := os.MkdirAll(filepath.Join(path, "x"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err == nil {
		t.Fatal("Close reported no error with the chain file not written")
	}
	if err := os.RemoveAll(path); err != nil {
		t.Fatal(err)
	}
	r, err := Open(base)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if got, ok := watermarktest.Stored(t, r, k); !ok || got.Level != 6 {
		t.Errorf("after the failed stop: %+v %v, want level 6", got, ok)
	}
}

// TestLockHolderUnknown: a lock held by a process that wrote nothing in the lock file is named
// as such, not as an empty name.
func TestLockHolderUnknown(t *testing.T) {
	t.Parallel()
	base, dir := watermarkDir(t)
	f, err := os.OpenFile(filepath.Join(dir, LockName), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		t.Fatal(err)
	}
	_, err = Open(base)
	if !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), "held by unknown holder.") {
		t.Fatalf("Open with the lock held: %v", err)
	}
}

// TestSpendFilesEdges: a read-only store refuses to record, and writes nothing; a key whose every
// spend was refunded is not listed; a directory named like a key's file is not read.
func TestSpendFilesEdges(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	base := t.TempDir()
	s, err := Open(base)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	pkh, other := watermarktest.PKH(0), watermarktest.PKH(1)
	w := spending.Windows{Amount: 10, AmountPeriod: time.Hour}
	if _, err := spending.Record(ctx, s, pkh, spending.Spend{ID: "a", Amount: 1, At: time.Now()}, w); err != nil {
		t.Fatal(err)
	}
	if err := spending.Refund(ctx, s, pkh, "a"); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(s.spendDir(), other+".json"), 0o700); err != nil {
		t.Fatal(err)
	}
	list, err := s.ListSpends(ctx)
	if err != nil || len(list) != 0 {
		t.Fatalf("list after the refund: %v %v, want nothing", list, err)
	}

	ro, err := Open(base, ReadOnly())
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	third := watermarktest.PKH(2)
	if _, err := spending.Record(ctx, ro, third, spending.Spend{ID: "b", Amount: 1, At: time.Now()}, w); err == nil {
		t.Fatal("a read-only store recorded a spend")
	}
	if _, err := os.Stat(filepath.Join(s.spendDir(), third+".json")); !os.IsNotExist(err) {
		t.Fatalf("a read-only store wrote a spending file: %v", err)
	}
}

// TestDriverSettings: the config's chain_file_lag and the environment's read-only flag reach the
// store: a read-only store opens beside a running one (no lock), and refuses to write.
func TestDriverSettings(t *testing.T) {
	base := t.TempDir()
	var node yaml.Node
	if err := yaml.Unmarshal([]byte("{chain_file_lag: 5s}"), &node); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	st, err := New(t.Context(), "watermark", node.Content[0], backend.Env{BaseDir: base, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if lag := st.(*Store).chainLag; lag != 5*time.Second {
		t.Fatalf("chain_file_lag 5s gave a lag of %v", lag)
	}
	ro, err := New(t.Context(), "watermark", &yaml.Node{}, backend.Env{BaseDir: base, Logger: log, ReadOnly: true})
	if err != nil {
		t.Fatalf("a read-only store beside a running one: %v", err)
	}
	defer ro.Close()
	k := watermarktest.Key(0, 0, watermark.Block)
	if _, err := ro.Advance(t.Context(), k, watermarktest.Mark(5, 0, 1)); err == nil {
		t.Fatal("a read-only store advanced a mark")
	}
	if _, err := os.Stat(filepath.Join(base, DirName, watermarktest.Chain(0)+".json")); !os.IsNotExist(err) {
		t.Fatalf("a read-only store wrote a chain file: %v", err)
	}
}

// TestOpenLogsToItsLogger: what Open finds wrong goes to the logger it was given.
func TestOpenLogsToItsLogger(t *testing.T) {
	t.Parallel()
	base := t.TempDir()
	if err := os.MkdirAll(filepath.Join(base, DirName), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(base, DirName, "notachain.json"), []byte("{}"), 0o600); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	s, err := Open(base, WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if !strings.Contains(logs.String(), "notachain.json") {
		t.Fatalf("the bad file name was not logged to the store's logger: %q", logs.String())
	}
}

// TestOpenListingFails: when the watermark directory cannot be listed, Open fails (it must not
// start from nothing: a chain it did not read would sign below its marks) and releases the lock;
// a read-only Open fails too.
func TestOpenListingFails(t *testing.T) {
	base := t.TempDir()
	readDir = func(string) ([]os.DirEntry, error) { return nil, errors.New("EIO") }
	defer func() { readDir = os.ReadDir }()
	if _, err := Open(base); err == nil || !strings.Contains(err.Error(), "EIO") {
		t.Fatalf("Open with the directory unreadable: %v", err)
	}
	if _, err := Open(base, ReadOnly()); err == nil || !strings.Contains(err.Error(), "EIO") {
		t.Fatalf("a read-only Open with the directory unreadable: %v", err)
	}
	readDir = os.ReadDir
	s, err := Open(base)
	if err != nil {
		t.Fatalf("Open after the failed one (the lock must be released): %v", err)
	}
	s.Close()
}

// crashWithJournalOnly leaves in a new base what a crash leaves when a chain has no file yet but
// the journal holds its marks up to level 6: the journal's epoch is returned.
func crashWithJournalOnly(t *testing.T) (string, uint64) {
	t.Helper()
	s, _ := journaledAtSix(t, t.TempDir())
	epoch := s.journal.epoch
	crashed := t.TempDir()
	dir := filepath.Join(crashed, DirName)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	name := storeJournalName(epoch)
	data, err := os.ReadFile(filepath.Join(s.Dir(), name))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
		t.Fatal(err)
	}
	s.Close()
	return crashed, epoch
}

func (s *Store) chainFor(t *testing.T, id string) *chain {
	t.Helper()
	v, ok := s.chains.Load(id)
	if !ok {
		t.Fatalf("no chain %s", id)
	}
	return v.(*chain)
}

// TestJournalWithoutChainFile: a chain known only by its journal is read from it: its marks
// refuse what is below them, a writer runs for it, its next journal has a later epoch; a
// read-only store reads it and never writes.
func TestJournalWithoutChainFile(t *testing.T) {
	t.Parallel()
	base, epoch := crashWithJournalOnly(t)
	ro, err := Open(base, ReadOnly())
	if err != nil {
		t.Fatal(err)
	}
	k := watermarktest.Key(0, 0, watermark.Block)
	if got, ok := watermarktest.Stored(t, ro, k); !ok || got.Level != 6 {
		t.Fatalf("read-only: %+v %v, want level 6", got, ok)
	}
	roCtx, roCancel := context.WithTimeout(t.Context(), time.Minute) // one with no writer would wait
	defer roCancel()
	if _, err := ro.Advance(roCtx, k, watermarktest.Mark(9, 0, 1)); !errors.Is(err, watermark.ErrClosed) {
		t.Fatalf("a read-only store's Advance of a chain known by its journal: %v, want ErrClosed", err)
	}
	if err := ro.Close(); err != nil {
		t.Fatal(err)
	}
	// watermark show, closing its snapshot, must leave a running daemon's journal alone.
	if _, err := os.Stat(filepath.Join(base, DirName, storeJournalName(epoch))); err != nil {
		t.Fatalf("the read-only store's Close removed the journal: %v", err)
	}

	s, err := Open(base, WithJournal(DefaultJournalSize), WithChainFileLag(0))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	watermarktest.MustRefuse(t, s, k, watermarktest.Mark(6, 0, 2))
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute) // a chain without a writer would never answer
	defer cancel()
	if _, err := s.Advance(ctx, k, watermarktest.Mark(7, 0, 1)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Advance(ctx, k, watermarktest.Mark(8, 0, 1)); err != nil {
		t.Fatal(err)
	}
	c := s.chainFor(t, watermarktest.Chain(0))
	if c.journal == nil || s.journal.epoch <= epoch {
		t.Fatalf("journaled %v, epoch %d after a replayed journal of epoch %d", c.journal != nil, s.journal.epoch, epoch)
	}
}

// TestJournalBadName: a journal whose name is no chain id is reported by Health and ignored.
func TestJournalBadName(t *testing.T) {
	t.Parallel()
	base := t.TempDir()
	if err := os.MkdirAll(filepath.Join(base, DirName), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(base, DirName, journalName("notachain", 1)), make([]byte, 64), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := Open(base, WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Health(t.Context()); err == nil || !strings.Contains(err.Error(), "notachain") {
		t.Fatalf("health: %v", err)
	}
	if _, ok := s.chains.Load("notachain"); ok {
		t.Fatal("a chain was made for a journal with no chain id")
	}
}

// TestReplayedChainFileUnwritable: when the chain file cannot be written after a journal's
// replay, the chain refuses to sign and Health says so.
func TestReplayedChainFileUnwritable(t *testing.T) {
	t.Parallel()
	base, _ := crashWithJournalOnly(t)
	if err := os.MkdirAll(filepath.Join(base, DirName, watermarktest.Chain(0)+".json", "x"), 0o700); err != nil {
		t.Fatal(err)
	}
	s, err := Open(base, WithJournal(DefaultJournalSize), WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Health(t.Context()); err == nil {
		t.Fatal("healthy with the replayed chain file unwritten")
	}
	if _, err := s.Advance(t.Context(), watermarktest.Key(0, 0, watermark.Block), watermarktest.Mark(9, 0, 1)); err == nil {
		t.Fatal("a chain whose replay could not be written signed")
	}
	// The journal holds the only copy of the chain's marks: it stays, through Close too, and
	// once the chain file can be written a start takes them from it.
	s.Close()
	if j, _ := filepath.Glob(filepath.Join(base, DirName, "*"+journalSuffix)); len(j) != 1 {
		t.Fatalf("journals after a replay whose chain file could not be written: %v", j)
	}
	if err := os.RemoveAll(filepath.Join(base, DirName, watermarktest.Chain(0)+".json")); err != nil {
		t.Fatal(err)
	}
	r, err := Open(base)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if m, ok := watermarktest.Stored(t, r, watermarktest.Key(0, 0, watermark.Block)); !ok || m.Level != 6 {
		t.Fatalf("after the repair: %+v %v, want level 6", m, ok)
	}
}

// TestStoreRefusals: the store's own refusals, each leaving the directory as it was: an invalid
// chain id or key hash; a chain whose file is corrupt (Advance and Load both fail, the file is
// not rewritten); any new chain after Close (a closed store has released its lock).
func TestStoreRefusals(t *testing.T) {
	t.Parallel()
	base, dir := watermarkDir(t)
	corrupt := filepath.Join(dir, watermarktest.Chain(1)+".json")
	if err := os.WriteFile(corrupt, []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := Open(base, WithJournal(DefaultJournalSize), WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	m := watermarktest.Mark(5, 0, 1)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute) // a corrupt chain has no writer to wait for
	defer cancel()
	for name, k := range map[string]watermark.Key{
		"an invalid chain id": {Chain: "NetXnotachain", PKH: watermarktest.PKH(0), Class: watermark.Block},
		"an invalid key hash": {Chain: watermarktest.Chain(0), PKH: "tz1notakey", Class: watermark.Block},
		"a corrupt chain":     watermarktest.Key(1, 0, watermark.Block),
	} {
		if _, err := s.Advance(ctx, k, m); err == nil || errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, _, err := s.Load(t.Context(), watermarktest.Key(1, 0, watermark.Block)); err == nil {
		t.Error("Load of a corrupt chain gave no error")
	}
	if data, _ := os.ReadFile(corrupt); string(data) != "{" {
		t.Errorf("the corrupt chain file was rewritten: %q", data)
	}
	// A new chain in a journaled store journals its changes.
	k := watermarktest.Key(2, 0, watermark.Block)
	watermarktest.MustAdvance(t, s, k, watermarktest.Mark(5, 0, 1))
	watermarktest.MustAdvance(t, s, k, watermarktest.Mark(6, 0, 1))
	if s.chainFor(t, watermarktest.Chain(2)).journal == nil {
		t.Error("a new chain of a journaled store is not journaled")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Advance(t.Context(), watermarktest.Key(3, 0, watermark.Block), m); !errors.Is(err, watermark.ErrClosed) {
		t.Errorf("a new chain after Close: %v, want ErrClosed", err)
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), "NetXnotachain") || strings.HasPrefix(e.Name(), watermarktest.Chain(3)) {
			t.Errorf("%s was written", e.Name())
		}
	}
}

// TestSpendFileRefusals: each refusal of UpdateSpends and ListSpends leaves the spending files
// as they were and never calls the update with a list it could not read: a key hash that is no
// key address (a path made from it would leave the directory), a cancelled context, a closed
// store, a corrupt file, an update's own error, a directory where the files go, and a file that
// cannot be replaced; ListSpends skips what is not a key's file and fails on a corrupt one.
func TestSpendFileRefusals(t *testing.T) {
	t.Parallel()
	base := t.TempDir()
	s, err := Open(base)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	pkh := watermarktest.PKH(0)
	one := []spending.Spend{{ID: "a", Amount: 1, At: time.Unix(1e9, 0)}}
	called := false
	set := func(list []spending.Spend) func([]spending.Spend) ([]spending.Spend, error) {
		called = false
		return func([]spending.Spend) ([]spending.Spend, error) { called = true; return list, nil }
	}
	ctx := t.Context()
	if err := s.UpdateSpends(ctx, "../../escape", set(one)); fault.KindOf(err) != fault.BadRequest || called {
		t.Fatalf("a key hash that is a path: %v (called %v)", err, called)
	}
	if _, err := os.Stat(filepath.Join(base, "..", "escape.json")); !os.IsNotExist(err) {
		t.Fatalf("a file outside the directory: %v", err)
	}
	done, cancel := context.WithCancel(ctx)
	cancel()
	if err := s.UpdateSpends(done, pkh, set(one)); fault.KindOf(err) != fault.Unavailable || called {
		t.Fatalf("a cancelled context: %v (called %v)", err, called)
	}
	if _, err := s.ListSpends(done); fault.KindOf(err) != fault.Unavailable {
		t.Fatalf("ListSpends with a cancelled context: %v", err)
	}
	if list, err := s.ListSpends(ctx); err != nil || len(list) != 0 {
		t.Fatalf("no spending directory yet: %v %v", list, err)
	}
	if err := s.UpdateSpends(ctx, pkh, set(one)); err != nil || !called {
		t.Fatal(err)
	}
	path := filepath.Join(s.spendDir(), pkh+".json")
	written, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// The update's own error writes nothing.
	if err := s.UpdateSpends(ctx, pkh, func([]spending.Spend) ([]spending.Spend, error) { return nil, errors.New("no") }); err == nil || err.Error() != "no" {
		t.Fatalf("the update's error: %v", err)
	}
	if now, _ := os.ReadFile(path); !bytes.Equal(now, written) {
		t.Fatal("a failed update changed the file")
	}
	// A key's file that cannot be read (a directory in its place): refused before the update.
	other := watermarktest.PKH(1)
	otherPath := filepath.Join(s.spendDir(), other+".json")
	if err := os.Mkdir(otherPath, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := s.UpdateSpends(ctx, other, set(one)); err == nil || called {
		t.Fatalf("a directory where the key's file is read: %v (called %v)", err, called)
	}
	if list, err := s.ListSpends(ctx); err != nil || len(list) != 1 {
		t.Fatalf("ListSpends beside a directory named as a key's file: %v %v (want it skipped)", list, err)
	}
	// A key's file that cannot be replaced (read before, a directory now): refused, and the
	// list in memory is still the one on disk.
	if err := os.Remove(otherPath); err != nil {
		t.Fatal(err)
	}
	if err := s.UpdateSpends(ctx, other, set(one)); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(otherPath); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(otherPath, "x"), 0o700); err != nil {
		t.Fatal(err)
	}
	two := append(slices.Clone(one), spending.Spend{ID: "b", Amount: 2, At: time.Unix(1e9, 0)})
	if err := s.UpdateSpends(ctx, other, set(two)); err == nil || !called {
		t.Fatalf("a key's file that cannot be replaced: %v (called %v)", err, called)
	}
	if err := os.RemoveAll(otherPath); err != nil {
		t.Fatal(err)
	}
	var given []spending.Spend
	if err := s.UpdateSpends(ctx, other, func(l []spending.Spend) ([]spending.Spend, error) { given = l; return l, nil }); err != nil {
		t.Fatal(err)
	}
	if len(given) != 1 {
		t.Fatalf("after a failed write the update was given %v, want the list on disk before it", given)
	}
	if err := os.Remove(otherPath); err != nil {
		t.Fatal(err)
	}
	// What is not a key's file is skipped by ListSpends.
	for _, name := range []string{"notes.txt", "not-a-key.json"} {
		if err := os.WriteFile(filepath.Join(s.spendDir(), name), []byte("junk"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if list, err := s.ListSpends(ctx); err != nil || len(list) != 1 || len(list[pkh]) != 1 {
		t.Fatalf("ListSpends beside other files: %v %v", list, err)
	}
	// A corrupt file: the update is never called with a list it could not read, and the file
	// stays for the operator.
	third := watermarktest.PKH(2)
	corrupt := filepath.Join(s.spendDir(), third+".json")
	if err := os.WriteFile(corrupt, []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := s.UpdateSpends(ctx, third, set(one)); err == nil || called {
		t.Fatalf("a corrupt spending file: %v (called %v)", err, called)
	}
	if _, err := s.ListSpends(ctx); err == nil || !strings.Contains(err.Error(), third) {
		t.Fatalf("ListSpends with a corrupt file: %v", err)
	}
	if now, _ := os.ReadFile(corrupt); string(now) != "{not json" {
		t.Fatal("the corrupt file was changed")
	}
	// The spending directory is a file: nothing can be written or listed.
	base2 := t.TempDir()
	s2, err := Open(base2)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if err := os.WriteFile(s2.spendDir(), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := s2.UpdateSpends(ctx, pkh, set(one)); err == nil {
		t.Fatal("spends written where the directory is a file")
	}
	if _, err := s2.ListSpends(ctx); err == nil {
		t.Fatal("ListSpends where the directory is a file")
	}
	// After Close, refused without reading or writing.
	s.Close()
	if err := s.UpdateSpends(ctx, pkh, set(nil)); !errors.Is(err, watermark.ErrClosed) || called {
		t.Fatalf("after Close: %v (called %v)", err, called)
	}
	if now, _ := os.ReadFile(path); !bytes.Equal(now, written) {
		t.Fatal("a closed store changed a spending file")
	}
}

// TestLoadedChainJournals: a chain read from its chain file at Open is journaled like a new one:
// its next mark goes to a journal, and its chain file is rewritten only later.
func TestLoadedChainJournals(t *testing.T) {
	t.Parallel()
	base := t.TempDir()
	k := watermarktest.Key(0, 0, watermark.Block)
	s, err := Open(base)
	if err != nil {
		t.Fatal(err)
	}
	watermarktest.MustAdvance(t, s, k, watermarktest.Mark(5, 0, 1))
	if err := s.Close(); err != nil { // a clean stop: the chain file only
		t.Fatal(err)
	}
	s, err = Open(base, WithJournal(DefaultJournalSize), WithChainFileLag(0))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if c := s.chainFor(t, watermarktest.Chain(0)); c.journal == nil {
		t.Fatal("a chain read from its file is not journaled")
	}
	watermarktest.MustAdvance(t, s, k, watermarktest.Mark(6, 0, 1))
	journals, _ := filepath.Glob(filepath.Join(base, DirName, "*.journal"))
	if len(journals) != 1 {
		t.Fatalf("journals after a mark on a loaded chain: %v", journals)
	}
}

// TestCorruptChainFileWithJournal: a chain file that cannot be read beside a journal is neither
// rewritten from the journal nor is the journal removed: the marks the corrupt file holds would be
// lost, and after the next start the chain would sign below them. The chain refuses to sign, and
// both files stay for the operator, through Open and Close.
func TestCorruptChainFileWithJournal(t *testing.T) {
	t.Parallel()
	base, epoch := crashWithJournalOnly(t)
	dir := filepath.Join(base, DirName)
	chainFile := filepath.Join(dir, watermarktest.Chain(0)+".json")
	journal := filepath.Join(dir, storeJournalName(epoch))
	corrupt := []byte(`{"` + watermarktest.PKH(0) + `": {"block": {"level": 90`) // cut short
	if err := os.WriteFile(chainFile, corrupt, 0o600); err != nil {
		t.Fatal(err)
	}
	journalBytes, err := os.ReadFile(journal)
	if err != nil {
		t.Fatal(err)
	}
	s, err := Open(base)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Advance(t.Context(), watermarktest.Key(0, 0, watermark.Block), watermarktest.Mark(100, 0, 1)); err == nil || !strings.Contains(err.Error(), "corrupt") {
		t.Fatalf("a chain whose file is corrupt advanced: %v", err)
	}
	if err := s.Health(t.Context()); err == nil {
		t.Fatal("Health of a store with a corrupt chain file")
	}
	s.Close()
	if now, _ := os.ReadFile(chainFile); !bytes.Equal(now, corrupt) {
		t.Fatalf("the corrupt chain file was rewritten: %s", now)
	}
	if now, err := os.ReadFile(journal); err != nil || !bytes.Equal(now, journalBytes) {
		t.Fatalf("the journal beside a corrupt chain file was changed or removed: %v", err)
	}
}
