package file

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/signatory-go/signatory/internal/fault"
	"github.com/signatory-go/signatory/internal/watermark"
	"github.com/signatory-go/signatory/internal/watermark/watermarktest"
)

// The remaining guards of the lock and of the store's read paths, each held by a test (found by
// statement removal, docs/testing.md).

// TestLockFileFailures: a lock file that cannot be opened says so; a failed lock attempt leaves
// no descriptor open; the holder's line is bounded; release is idempotent; Holder on a directory
// with no lock file reports nothing held.
func TestLockFileFailures(t *testing.T) {
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, LockName), 0o700); err != nil { // a directory in its place
		t.Fatal(err)
	}
	if _, err := lockDir(dir); err == nil || !strings.Contains(err.Error(), "cannot open the lock file") {
		t.Fatalf("a lock file that is a directory: %v", err)
	}

	dir = t.TempDir()
	args := os.Args
	os.Args = []string{"signatory", strings.Repeat("x", 5000)}
	held, err := lockDir(dir)
	os.Args = args
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, LockName)); len(b) > 512 {
		t.Fatalf("the holder's line is %d bytes, want at most 512", len(b))
	}
	fds := func() int {
		entries, err := os.ReadDir("/proc/self/fd")
		if err != nil {
			t.Skip("no /proc/self/fd here")
		}
		return len(entries)
	}
	before := fds()
	for range 20 {
		if _, err := lockDir(dir); !errors.Is(err, ErrLocked) {
			t.Fatalf("a second lock: %v", err)
		}
	}
	if after := fds(); after > before+2 {
		t.Fatalf("20 failed lock attempts left %d descriptors open", after-before)
	}
	if err := held.release(); err != nil {
		t.Fatal(err)
	}
	if err := held.release(); err != nil {
		t.Fatalf("a second release: %v", err)
	}
	if holder, ok := Holder(t.TempDir()); ok || holder != "" {
		t.Fatalf("Holder with no lock file: %q %v", holder, ok)
	}
}

// TestReadPathRefusals: Load refuses an invalid key and a cancelled context, List a cancelled
// context, Health a closed store.
func TestReadPathRefusals(t *testing.T) {
	t.Parallel()
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	k := watermarktest.Key(0, 0, watermark.Block)
	watermarktest.MustAdvance(t, s, k, watermarktest.Mark(5, 0, 1))
	for _, bad := range []watermark.Key{{Chain: k.Chain, PKH: "", Class: k.Class}, {Chain: k.Chain, PKH: k.PKH, Class: "nonsense"}} {
		if _, _, err := s.Load(t.Context(), bad); err == nil {
			t.Fatalf("Load of an invalid key %+v", bad)
		}
	}
	done, cancel := context.WithCancel(t.Context())
	cancel()
	if _, _, err := s.Load(done, k); fault.KindOf(err) != fault.Unavailable {
		t.Fatalf("Load with a cancelled context: %v", err)
	}
	if _, err := s.List(done); fault.KindOf(err) != fault.Unavailable {
		t.Fatalf("List with a cancelled context: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Health(t.Context()); !errors.Is(err, watermark.ErrClosed) {
		t.Fatalf("Health after Close: %v", err)
	}
}

// TestHealthNamesInOrder: corrupt chains are named in one message, in the same order every time
// (sorted), whatever order the chains are visited in.
func TestHealthNamesInOrder(t *testing.T) {
	t.Parallel()
	base, dir := watermarkDir(t)
	for i := range 4 {
		if err := os.WriteFile(filepath.Join(dir, watermarktest.Chain(i)+".json"), []byte("{"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	health := func() string {
		s, err := Open(base, ReadOnly()) // each Open visits its chains in an order of its own
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		err = s.Health(t.Context())
		if err == nil {
			t.Fatal("no error for four corrupt chains")
		}
		return err.Error()
	}
	first := health()
	for range 30 {
		if msg := health(); msg != first {
			t.Fatalf("Health's message changed between two opens:\n%s\n%s", first, msg)
		}
	}
}

// TestCloseAnswersEveryAcknowledgedMark: Advances racing with Close are either refused or
// acknowledged, and every acknowledged mark is in the chain file after Close: Close waits for
// the writers before it compacts and releases the lock.
func TestCloseAnswersEveryAcknowledgedMark(t *testing.T) {
	t.Parallel()
	for range 5 {
		base := t.TempDir()
		s, err := Open(base, WithJournal(DefaultJournalSize))
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		var mu sync.Mutex
		acked := map[int]int32{}
		for i := range 16 {
			wg.Go(func() {
				for level := int32(1); level <= 20; level++ {
					if _, err := s.Advance(t.Context(), watermarktest.Key(0, i, watermark.Block), watermarktest.Mark(level, 0, 1)); err != nil {
						return
					}
					mu.Lock()
					acked[i] = level
					mu.Unlock()
				}
			})
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		after := map[int]int32{}
		for i, l := range acked {
			after[i] = l
		}
		mu.Unlock()
		wg.Wait()
		data, err := os.ReadFile(filepath.Join(base, DirName, watermarktest.Chain(0)+".json"))
		if err != nil && len(after) > 0 {
			t.Fatal(err)
		}
		st := emptyState()
		if err == nil {
			if st, err = decode(data); err != nil {
				t.Fatal(err)
			}
		}
		for i, level := range after {
			if got := st.of(watermarktest.PKH(i))[classIndex(watermark.Block)].mark.Level; got < level {
				t.Fatalf("key %d: acknowledged at %d before Close returned, the chain file holds %d", i, level, got)
			}
		}
	}
}

// closeWaiting reports whether a goroutine is in Store.Close, waiting for the writers.
func closeWaiting() bool {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, ".(*Store).Close(") && strings.Contains(g, "sync.(*WaitGroup).Wait(") {
			return true
		}
	}
	return false
}

// TestCloseWaitsForTheWriters: Close returns only once the writer writing a mark has finished:
// until then it does not compact, release the lock or return, and the mark is acknowledged and
// in the chain file when it does. (Not parallel: it replaces writeDurable.)
func TestCloseWaitsForTheWriters(t *testing.T) {
	base := t.TempDir()
	s, err := Open(base) // no journal: the writer writes the chain file itself
	if err != nil {
		t.Fatal(err)
	}
	inWrite, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	writeDurable = func(path string, data []byte) error {
		if strings.HasPrefix(path, base) { // this store's writes only
			once.Do(func() { close(inWrite); <-release })
		}
		return writeDurableFile(path, data)
	}
	defer func() { writeDurable = writeDurableFile }()
	k := watermarktest.Key(0, 0, watermark.Block)
	advanced := make(chan error, 1)
	go func() {
		_, err := s.Advance(context.Background(), k, watermarktest.Mark(7, 0, 1))
		advanced <- err
	}()
	<-inWrite
	closed := make(chan error, 1)
	go func() { closed <- s.Close() }()
	for !closeWaiting() { // a state of Close's goroutine, not a time
		select {
		case err := <-closed:
			close(release)
			t.Fatalf("Close returned (%v) while a writer was writing a mark", err)
		default:
		}
		runtime.Gosched()
	}
	if _, err := lockDir(filepath.Join(base, DirName)); err == nil {
		t.Fatal("the directory's lock was released while a writer was writing a mark")
	}
	close(release)
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	if err := <-advanced; err != nil {
		t.Fatalf("the mark being written when Close began: %v", err)
	}
	r, err := Open(base, ReadOnly())
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if m, ok := watermarktest.Stored(t, r, k); !ok || m.Level != 7 {
		t.Fatalf("after Close: %+v %v, want level 7", m, ok)
	}
}
