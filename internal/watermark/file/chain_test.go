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
	"sync"
	"testing"
	"time"

	"github.com/signatory-go/signatory/internal/fault"
	"github.com/signatory-go/signatory/internal/watermark"
	"github.com/signatory-go/signatory/internal/watermark/watermarktest"
)

func testChain(t *testing.T) *chain {
	dir := t.TempDir()
	id := watermarktest.Chain(0)
	return newChain(id, dir, filepath.Join(dir, id+".json"), emptyState())
}

// journaledChain is chain i in dir, writing through the store journal j.
func journaledChain(dir string, j *journal, i int) *chain {
	id := watermarktest.Chain(i)
	c := newChain(id, dir, filepath.Join(dir, id+".json"), emptyState())
	c.journal = j
	return c
}

func req(pkh int, class watermark.Class, level int32, d byte) *pending {
	return &pending{ctx: context.Background(), pkh: watermarktest.PKH(pkh), class: classIndex(class),
		mark: watermarktest.Mark(level, 0, d), done: make(chan result, 1)}
}

func stored(c *chain, pkh int, class watermark.Class) slot {
	return c.state.Load().of(watermarktest.PKH(pkh))[classIndex(class)]
}

// diskMark is the mark of key pkh and class in c's chain file on disk.
func diskMark(t *testing.T, c *chain, pkh int, class watermark.Class) watermark.Mark {
	t.Helper()
	data, err := os.ReadFile(c.path)
	if err != nil {
		t.Fatal(err)
	}
	st, err := decode(data)
	if err != nil {
		t.Fatal(err)
	}
	return st.of(watermarktest.PKH(pkh))[classIndex(class)].mark
}

// TestBatchOrder: a batch is judged in arrival order against earlier changes of the same batch,
// and written once.
func TestBatchOrder(t *testing.T) {
	t.Parallel()
	c := testChain(t)
	batch := []*pending{
		req(0, watermark.Block, 2, 1),
		req(0, watermark.Block, 2, 2), // conflicts with the first
		req(0, watermark.Block, 2, 1), // identical to the first
		req(1, watermark.Block, 3, 3),
		req(0, watermark.Attestation, 2, 4),
	}
	res := c.commit(batch, nil)
	want := []bool{true, false, true, true, true}
	for i := range want {
		if (res[i].err == nil) != want[i] || (!want[i] && !watermark.IsConflict(res[i].err)) {
			t.Errorf("request %d: %v, want ok=%v", i, res[i].err, want[i])
		}
	}
	if res[2].mark != res[0].mark {
		t.Errorf("identical request got %+v, the first %+v", res[2].mark, res[0].mark)
	}
	if n := c.writes.Load(); n != 1 {
		t.Errorf("%d writes, want 1", n)
	}
	if s := stored(c, 0, watermark.Block); s.mark != watermarktest.Mark(2, 0, 1) {
		t.Errorf("stored %+v", s)
	}
	// A batch with nothing new (identical re-signs, refusals) writes nothing.
	res = c.commit([]*pending{req(0, watermark.Block, 2, 1), req(1, watermark.Block, 1, 9)}, res[:0])
	if res[0].err != nil || !watermark.IsConflict(res[1].err) || c.writes.Load() != 1 {
		t.Errorf("no-op batch: %v, %d writes", res, c.writes.Load())
	}
}

// TestBatchWriteFailure: when the write fails, every request whose answer depended on the
// batch's changes gets the write error; refusals against the durable state stay conflicts.
func TestBatchWriteFailure(t *testing.T) {
	t.Parallel()
	c := testChain(t)
	if res := c.commit([]*pending{req(0, watermark.Block, 5, 1)}, nil); res[0].err != nil {
		t.Fatal(res[0].err)
	}
	os.Remove(c.path)
	if err := os.Mkdir(c.path, 0o700); err != nil {
		t.Fatal(err)
	}
	res := c.commit([]*pending{
		req(0, watermark.Block, 6, 2),
		req(0, watermark.Block, 6, 3), // refused only because of the first
		req(0, watermark.Block, 6, 2), // identical to the unwritten first
		req(0, watermark.Block, 4, 4), // refused by the durable mark
	}, nil)
	for i, r := range res[:3] {
		if err := r.err; err == nil || watermark.IsConflict(err) || fault.KindOf(err) != fault.Internal {
			t.Errorf("request %d: %v, want the write error", i, err)
		}
	}
	if !watermark.IsConflict(res[3].err) {
		t.Errorf("request 3: %v, want ErrConflict", res[3].err)
	}
	if s := stored(c, 0, watermark.Block); s.mark != watermarktest.Mark(5, 0, 1) {
		t.Errorf("memory changed: %+v", s)
	}
}

// TestCanceledWhileQueued: a request whose ctx ends before its batch is taken gets Unavailable
// and is skipped by the writer.
func TestCanceledWhileQueued(t *testing.T) {
	t.Parallel()
	c := testChain(t) // no writer: the request stays queued
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := c.advance(ctx, watermarktest.PKH(0), classIndex(watermark.Block), watermarktest.Mark(1, 0, 1))
	if fault.KindOf(err) != fault.Unavailable {
		t.Fatalf("advance = %v, want Unavailable", err)
	}
	c.close()
	c.run() // drains the queue and returns
	if s := stored(c, 0, watermark.Block); s.ok || c.writes.Load() != 0 {
		t.Fatalf("canceled request stored: %+v", s)
	}
}

// TestCanceledInABatch: a request whose context ended is skipped, and the requests after it in the
// same batch are still judged and written: none is answered without its mark on disk.
func TestCanceledInABatch(t *testing.T) {
	t.Parallel()
	c := testChain(t)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	gone := req(0, watermark.Block, 5, 1)
	gone.ctx = ctx
	res := c.commit([]*pending{gone, req(1, watermark.Block, 6, 2), req(2, watermark.Block, 7, 3), req(1, watermark.Block, 6, 9)}, nil)
	if fault.KindOf(res[0].err) != fault.Unavailable {
		t.Fatalf("canceled request: %v", res[0].err)
	}
	if res[1].err != nil || res[1].mark != watermarktest.Mark(6, 0, 2) || res[2].err != nil || res[2].mark != watermarktest.Mark(7, 0, 3) {
		t.Fatalf("requests after the canceled one: %+v %+v", res[1], res[2])
	}
	if !watermark.IsConflict(res[3].err) {
		t.Fatalf("conflicting request after the canceled one: %v", res[3].err)
	}
	if stored(c, 1, watermark.Block).mark != watermarktest.Mark(6, 0, 2) || stored(c, 2, watermark.Block).mark != watermarktest.Mark(7, 0, 3) || stored(c, 0, watermark.Block).ok {
		t.Fatal("the batch's marks are not what was answered")
	}
}

// TestGroupCommit: everything queued while the writer is busy goes out in one write, and
// close answers all queued requests before the writer stops.
func TestGroupCommit(t *testing.T) {
	t.Parallel()
	c := testChain(t)
	var ps []*pending
	for i := range 64 {
		p := req(i, watermark.Block, 10, byte(i))
		ps = append(ps, p)
		c.queue = append(c.queue, p)
	}
	c.close()
	c.run()
	for i, p := range ps {
		if r := <-p.done; r.err != nil {
			t.Fatalf("request %d: %v", i, r.err)
		}
	}
	if n := c.writes.Load(); n != 1 {
		t.Fatalf("%d writes for 64 queued requests, want 1", n)
	}
	if _, err := c.advance(t.Context(), watermarktest.PKH(0), 0, watermarktest.Mark(11, 0, 1)); err != watermark.ErrClosed {
		t.Fatalf("advance after close = %v", err)
	}
}

// TestIdleChainsHoldNoGoroutine: after 200 chains (as a client making up chain ids would create)
// have been written, no writer is left running (the store's WaitGroup drains without Close); a
// new request starts a writer again.
func TestIdleChainsHoldNoGoroutine(t *testing.T) {
	t.Parallel()
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for i := range 200 {
		watermarktest.MustAdvance(t, s, watermarktest.Key(i, 0, watermark.Attestation), watermarktest.Mark(1, 0, 1))
	}
	s.wg.Wait() // returns only once every writer has exited
	k := watermarktest.Key(7, 0, watermark.Attestation)
	watermarktest.MustAdvance(t, s, k, watermarktest.Mark(2, 0, 1))
	watermarktest.MustRefuse(t, s, k, watermarktest.Mark(2, 0, 2))
	s.wg.Wait()
	fi, err := os.Stat(filepath.Join(s.Dir(), watermarktest.Chain(7)+".json"))
	if err != nil || fi.Size() > 512 {
		t.Fatalf("chain file: %v, %d bytes", err, fi.Size())
	}
}

// TestChainFileLag: with a journal, the chain file is rewritten once per lag after a journaled
// change (one timer however many changes), the journal staying; a failed rewrite is reported and
// tried again; a clean stop leaves the chain file whole and no journal.
func TestChainFileLag(t *testing.T) {
	t.Parallel()
	c := testChain(t)
	c.journal, c.lag = newJournal(c.dir, 1<<16, nil), 3*time.Second
	var fire []func()
	c.after = func(d time.Duration, f func()) *time.Timer {
		if d != 3*time.Second {
			t.Errorf("timer set for %s, want the lag", d)
		}
		fire = append(fire, f)
		tm := time.NewTimer(time.Hour)
		tm.Stop()
		return tm
	}
	var started func() // the writer the timer started
	c.start = func(run func()) { started = run }
	runWriter := func() {
		t.Helper()
		if started == nil {
			t.Fatal("the timer started no writer")
		}
		run := started
		started = nil
		run()
	}
	onDisk := func() watermark.Mark { return diskMark(t, c, 0, watermark.Block) }
	commit := func(level int32) {
		t.Helper()
		if res := c.commit([]*pending{req(0, watermark.Block, level, 1)}, nil); res[0].err != nil {
			t.Fatal(res[0].err)
		}
	}
	commit(2) // the journal started; no chain file yet
	commit(3)
	commit(4)
	if _, err := os.Stat(c.path); len(fire) != 1 || !os.IsNotExist(err) {
		t.Fatalf("journaled batches: %d timers (want 1), chain file %v (want none yet)", len(fire), err)
	}
	writes := c.writes.Load()
	fire[0]()
	runWriter()
	if onDisk().Level != 4 || c.writes.Load() != writes+1 {
		t.Fatalf("after the lag: file at %d, %d writes", onDisk().Level, c.writes.Load()-writes)
	}
	if _, err := os.Stat(filepath.Join(c.dir, storeJournalName(c.journal.epoch))); err != nil {
		t.Fatalf("the journal went with the refresh: %v", err)
	}
	fire[0]() // nothing new: no write
	runWriter()
	if c.writes.Load() != writes+1 {
		t.Fatal("a refresh with nothing new wrote the chain file")
	}

	commit(5)
	if len(fire) != 2 {
		t.Fatalf("%d timers after a new change, want 2", len(fire))
	}
	os.Remove(c.path) // the rewrite fails: a directory where the file goes
	if err := os.Mkdir(c.path, 0o700); err != nil {
		t.Fatal(err)
	}
	var logged bytes.Buffer
	c.log = slog.New(slog.NewTextHandler(&logged, nil))
	fire[1]()
	runWriter()
	if c.health() == nil || len(fire) != 3 || strings.Count(logged.String(), "level=ERROR") != 1 {
		t.Fatalf("failed refresh: health %v, %d timers (want a retry), log:\n%s", c.health(), len(fire), logged.String())
	}
	fire[2]() // fails again: no second log line for the same outage
	runWriter()
	if len(fire) != 4 || strings.Count(logged.String(), "level=ERROR") != 1 || !strings.Contains(logged.String(), "cannot bring the chain file up to date") {
		t.Fatalf("two failed refreshes: %d timers, log:\n%s", len(fire), logged.String())
	}
	os.Remove(c.path)
	fire[3]()
	runWriter()
	if c.health() != nil || onDisk().Level != 5 {
		t.Fatalf("retried refresh: health %v, file at %d", c.health(), onDisk().Level)
	}
	if !strings.Contains(logged.String(), "chain file up to date again") {
		t.Fatalf("no log line for the recovery:\n%s", logged.String())
	}
	// A rewrite after the recovery, with no outage before it, logs nothing.
	commit(6)
	fire[len(fire)-1]()
	runWriter()
	if onDisk().Level != 6 || strings.Count(logged.String(), "up to date again") != 1 {
		t.Fatalf("a rewrite with no outage before it: file at %d, log:\n%s", onDisk().Level, logged.String())
	}

	commit(7)
	c.close()
	if err := c.compact(); err != nil {
		t.Fatal(err)
	}
	if err := c.journal.close(true); err != nil {
		t.Fatal(err)
	}
	if onDisk().Level != 7 {
		t.Fatalf("after a clean stop the file is at %d", onDisk().Level)
	}
	if m, _ := filepath.Glob(filepath.Join(c.dir, "*"+journalSuffix)); len(m) != 0 {
		t.Fatalf("journals left after a clean stop: %v", m)
	}
	fire[len(fire)-1]() // the timer of commit(7), firing after the stop, does nothing
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.refreshing || c.running {
		t.Fatal("a timer after close asked for a writer")
	}
}

// TestJournalGrowsWithTheChain: a new journal is at least four times the chain files of the
// chains the last one held (or the record that did not fit), so that a chain of many keys does not
// rewrite its whole file every few records.
func TestJournalGrowsWithTheChain(t *testing.T) {
	t.Parallel()
	c := testChain(t)
	c.journal = newJournal(c.dir, 4096, nil)
	var batch []*pending
	for k := range 300 {
		batch = append(batch, req(k, watermark.Attestation, 5, byte(k)))
	}
	for _, r := range c.commit(batch, nil) {
		if r.err != nil {
			t.Fatal(r.err)
		}
	}
	// The record did not fit a journal of 4 KiB: the first one is four times the record.
	fi, err := os.Stat(filepath.Join(c.dir, storeJournalName(c.journal.epoch)))
	if err != nil {
		t.Fatal(err)
	}
	const unit = 64 << 10
	if fi.Size() < 4*4096 || fi.Size()%unit != 0 {
		t.Fatalf("journal of %d bytes for a record over 4 KiB", fi.Size())
	}
	// Fill it: the next journal is four times the chain file its compaction wrote.
	c.journal.fsize = c.journal.off
	batch = batch[:0]
	for k := range 300 {
		batch = append(batch, req(k, watermark.Attestation, 6, byte(k)))
	}
	for _, r := range c.commit(batch, nil) {
		if r.err != nil {
			t.Fatal(r.err)
		}
	}
	fi, err = os.Stat(filepath.Join(c.dir, storeJournalName(c.journal.epoch)))
	if err != nil {
		t.Fatal(err)
	}
	file := c.fileSize.Load()
	if want := (4*file + unit - 1) / unit * unit; file < 4096 || fi.Size() != want {
		t.Fatalf("chain file %d bytes, new journal %d bytes; want %d (four times, rounded up to 64 KiB)", file, fi.Size(), want)
	}
}

// TestJournalGrowsWithAllItsChains: the next journal's size counts the chain files of every
// chain the full one held, not the last one written.
func TestJournalGrowsWithAllItsChains(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	j := newJournal(dir, 4096, nil)
	var chains []*chain
	for i := range 2 {
		c := journaledChain(dir, j, i)
		chains = append(chains, c)
		var batch []*pending
		for k := range 200 {
			batch = append(batch, req(k, watermark.Attestation, 5, byte(k)))
		}
		for _, r := range c.commit(batch, nil) {
			if r.err != nil {
				t.Fatal(r.err)
			}
		}
	}
	j.fsize = j.off // full
	if res := chains[0].commit([]*pending{req(0, watermark.Block, 6, 1)}, nil); res[0].err != nil {
		t.Fatal(res[0].err)
	}
	fi, err := os.Stat(filepath.Join(dir, storeJournalName(j.epoch)))
	if err != nil {
		t.Fatal(err)
	}
	sum := chains[0].fileSize.Load() + chains[1].fileSize.Load()
	if want := nextJournalSize(4096, sum); chains[1].fileSize.Load() == 0 || fi.Size() != want {
		t.Fatalf("chain files %d + %d bytes, new journal %d bytes; want %d", chains[0].fileSize.Load(), chains[1].fileSize.Load(), fi.Size(), want)
	}
}

// TestCloseAfterJournalFailure: after a journal write failed (its batch refused), a clean stop
// still writes every acknowledged mark into the chain file and leaves no journal behind.
func TestCloseAfterJournalFailure(t *testing.T) {
	t.Parallel()
	c := testChain(t)
	c.journal, c.lag = newJournal(c.dir, 1<<16, nil), 0
	commitTwo(t, c)
	c.journal.f.Close() // the next write fails
	if res := c.commit([]*pending{req(0, watermark.Block, 4, 1)}, nil); res[0].err == nil {
		t.Fatal("a batch whose journal write failed was acknowledged")
	}
	if c.journal.f != nil {
		t.Fatal("the failed journal is still in use")
	}
	c.close()
	if err := c.compact(); err != nil {
		t.Fatal(err)
	}
	if err := c.journal.close(true); err != nil {
		t.Fatal(err)
	}
	if m := diskMark(t, c, 0, watermark.Block); m.Level != 3 {
		t.Fatalf("chain file at level %d after the clean stop, want 3 (acknowledged, in the journal only)", m.Level)
	}
	if m, _ := filepath.Glob(filepath.Join(c.dir, "*"+journalSuffix)); len(m) != 0 {
		t.Fatalf("journals left after a clean stop: %v", m)
	}
}

// TestChainFileLagOption: WithChainFileLag(0) turns the background rewrites off; without it a
// journaled store rewrites after DefaultChainFileLag; its chains schedule their rewrites so.
func TestChainFileLagOption(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		opts []Option
		want time.Duration
	}{
		{[]Option{WithJournal(4096)}, DefaultChainFileLag},
		{[]Option{WithJournal(4096), WithChainFileLag(0)}, -1},
		{[]Option{WithJournal(4096), WithChainFileLag(-time.Second)}, -1},
		{[]Option{WithJournal(4096), WithChainFileLag(time.Minute)}, time.Minute},
	} {
		s, err := Open(t.TempDir(), append(c.opts, WithLogger(slog.New(slog.DiscardHandler)))...)
		if err != nil {
			t.Fatal(err)
		}
		if s.chainLag != c.want {
			t.Errorf("chain file lag %v, want %v", s.chainLag, c.want)
		}
		// A chain of the store schedules its rewrite that long after a journal record (none
		// with no lag).
		var lags []time.Duration
		var mu sync.Mutex
		s.after = func(d time.Duration, f func()) *time.Timer {
			mu.Lock()
			defer mu.Unlock()
			lags = append(lags, d)
			tm := time.NewTimer(time.Hour)
			tm.Stop()
			return tm
		}
		watermarktest.MustAdvance(t, s, watermarktest.Key(0, 0, watermark.Block), watermarktest.Mark(1, 0, 1))
		watermarktest.MustAdvance(t, s, watermarktest.Key(0, 0, watermark.Block), watermarktest.Mark(2, 0, 1))
		mu.Lock()
		if want := []time.Duration{c.want}; c.want > 0 && !slices.Equal(lags, want) || c.want < 0 && len(lags) != 0 {
			t.Errorf("chain file lag %v: the chain's rewrites scheduled after %v", c.want, lags)
		}
		mu.Unlock()
		s.Close()
	}
}

// TestJournalAfterFailure: after a journal write failed, the next batch brings the chain files
// of what the failed journal held up to date (its acknowledged marks only), removes it, and
// starts a journal of a later epoch.
func TestJournalAfterFailure(t *testing.T) {
	t.Parallel()
	c := testChain(t)
	c.journal = newJournal(c.dir, 1<<16, nil)
	commitTwo(t, c)
	failed := c.journal.epoch
	c.journal.f.Close() // the next write fails
	if res := c.commit([]*pending{req(0, watermark.Block, 4, 1)}, nil); res[0].err == nil {
		t.Fatal("a batch whose journal write failed was acknowledged")
	}
	if m := stored(c, 0, watermark.Block); m.mark.Level != 3 {
		t.Fatalf("a refused batch changed the state to level %d", m.mark.Level)
	}
	if res := c.commit([]*pending{req(0, watermark.Block, 5, 1)}, nil); res[0].err != nil {
		t.Fatal(res[0].err)
	}
	if m := diskMark(t, c, 0, watermark.Block); m.Level != 3 {
		t.Fatalf("chain file at level %d after the failed journal's compaction, want 3 (its last acknowledged record)", m.Level)
	}
	if c.journal.f == nil || c.journal.epoch != failed+1 {
		t.Fatalf("journal %v of epoch %d after the failed one of epoch %d, want epoch %d", c.journal.f != nil, c.journal.epoch, failed, failed+1)
	}
	if _, err := os.Stat(filepath.Join(c.dir, storeJournalName(failed))); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the failed journal is still there: %v", err)
	}
	if _, err := os.Stat(filepath.Join(c.dir, storeJournalName(failed+1))); err != nil {
		t.Fatal(err)
	}
	c.close()
	if err := c.compact(); err != nil {
		t.Fatal(err)
	}
	if m := diskMark(t, c, 0, watermark.Block); m.Level != 5 {
		t.Fatalf("chain file at level %d after a clean stop, want 5", m.Level)
	}
}

// TestNextJournalSize: four times what it must hold, rounded up to 64 KiB, unless the configured
// size is larger.
func TestNextJournalSize(t *testing.T) {
	t.Parallel()
	const unit = 64 << 10
	for _, tc := range []struct{ configured, need, want int64 }{
		{unit, 0, unit},
		{0, 1, unit},
		{0, unit / 4, unit},
		{0, unit/4 + 1, 2 * unit},
		{0, unit/4 - 1, unit},
		{3 * unit, unit / 4, 3 * unit},
	} {
		if got := nextJournalSize(tc.configured, tc.need); got != tc.want {
			t.Errorf("configured %d, need %d: %d, want %d", tc.configured, tc.need, got, tc.want)
		}
	}
}

// TestOneWriterPerChain: while a chain's writer runs (or is started), nothing starts a second one:
// two writers would judge and write one chain at once. Once it has exited, the next request
// starts one again.
func TestOneWriterPerChain(t *testing.T) {
	t.Parallel()
	c := testChain(t)
	starts := 0
	var run func()
	c.start = func(r func()) { starts++; run = r }
	c.refreshNow()
	c.refreshNow()
	p := req(0, watermark.Block, 5, 1)
	c.mu.Lock()
	c.queue = append(c.queue, p)
	c.spawnLocked()
	c.mu.Unlock()
	if starts != 1 {
		t.Fatalf("%d writers started for one chain", starts)
	}
	run() // answers the request, refreshes, exits
	if r := <-p.done; r.err != nil {
		t.Fatal(r.err)
	}
	c.refreshNow()
	if starts != 2 {
		t.Fatalf("after the writer exited, %d starts in all, want 2", starts)
	}
}

// TestFullJournalFallback: when the journal is full, the chains it holds have their chain files
// brought up to date and a journal of the next epoch takes the record; when that compaction fails,
// the batch is written as the whole chain file instead, and if that write fails too the batch is
// refused and nothing changes.
func TestFullJournalFallback(t *testing.T) {
	t.Parallel()
	c := testChain(t)
	c.journal = newJournal(c.dir, 1<<16, nil)
	commitTwo(t, c)
	epoch := c.journal.epoch
	c.journal.fsize = c.journal.off                                        // full
	if err := os.MkdirAll(filepath.Join(c.path, "x"), 0o700); err != nil { // the chain file cannot be written
		t.Fatal(err)
	}
	if res := c.commit([]*pending{req(0, watermark.Block, 4, 1)}, nil); res[0].err == nil {
		t.Fatal("a batch whose chain file could not be written was acknowledged")
	}
	if m := stored(c, 0, watermark.Block); m.mark.Level != 3 {
		t.Fatalf("refused batch changed the state to level %d", m.mark.Level)
	}
	if c.journal.epoch != epoch || c.journal.health() == nil {
		t.Fatalf("after a failed compaction: epoch %d (was %d), health %v", c.journal.epoch, epoch, c.journal.health())
	}
	if err := os.RemoveAll(c.path); err != nil {
		t.Fatal(err)
	}
	if res := c.commit([]*pending{req(0, watermark.Block, 5, 1)}, nil); res[0].err != nil {
		t.Fatal(res[0].err)
	}
	if m := diskMark(t, c, 0, watermark.Block); m.Level != 3 || c.journal.epoch != epoch+1 || c.journal.health() != nil {
		t.Fatalf("chain file at %d (want 3: the full journal's), epoch %d (was %d), health %v", m.Level, c.journal.epoch, epoch, c.journal.health())
	}
	if _, err := os.Stat(filepath.Join(c.dir, storeJournalName(epoch))); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the full journal is still there: %v", err)
	}
	// A clean stop closes the journal in use and removes it.
	f := c.journal.f
	c.close()
	if err := c.compact(); err != nil {
		t.Fatal(err)
	}
	if err := c.journal.close(true); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); !errors.Is(err, os.ErrClosed) {
		t.Fatalf("the journal's file was left open at the stop (closing it: %v)", err)
	}
	if m := diskMark(t, c, 0, watermark.Block); m.Level != 5 {
		t.Fatalf("chain file at %d after a clean stop, want 5", m.Level)
	}
}

// TestFullJournalChainFileFallback: when no journal can be started, a batch writes the whole
// chain file: once it succeeds the chain file is up to date and no rewrite follows.
func TestFullJournalChainFileFallback(t *testing.T) {
	t.Parallel()
	c := testChain(t)
	c.journal = newJournal(filepath.Join(c.dir, "missing"), 1<<16, nil) // journals cannot be created
	if res := c.commit([]*pending{req(0, watermark.Block, 4, 1)}, nil); res[0].err != nil {
		t.Fatal(res[0].err)
	}
	if m := diskMark(t, c, 0, watermark.Block); m.Level != 4 || c.journal.health() == nil {
		t.Fatalf("chain file at %d, journal health %v", m.Level, c.journal.health())
	}
	writes := c.writes.Load()
	c.refresh()
	if c.writes.Load() != writes {
		t.Fatal("the chain file was rewritten although it held everything")
	}
}

// TestFailedJournalClosed: a journal whose write failed is closed (its file descriptor released)
// and no longer used.
func TestFailedJournalClosed(t *testing.T) {
	t.Parallel()
	c := testChain(t)
	c.journal = newJournal(c.dir, 1<<16, nil)
	if res := c.commit([]*pending{req(0, watermark.Block, 2, 1)}, nil); res[0].err != nil {
		t.Fatal(res[0].err)
	}
	ro, err := os.Open(filepath.Join(c.dir, storeJournalName(c.journal.epoch))) // writes to it fail
	if err != nil {
		t.Fatal(err)
	}
	c.journal.f.Close()
	c.journal.f = ro
	if res := c.commit([]*pending{req(0, watermark.Block, 3, 1)}, nil); res[0].err == nil {
		t.Fatal("a batch whose journal write failed was acknowledged")
	}
	if c.journal.f != nil {
		t.Fatal("the failed journal is still in use")
	}
	if err := ro.Close(); !errors.Is(err, os.ErrClosed) {
		t.Fatalf("the failed journal's file was left open (closing it: %v)", err)
	}
}

// commitTwo commits key 0's block mark at levels 2 and 3 (journal records).
func commitTwo(t *testing.T, c *chain) {
	t.Helper()
	for level := int32(2); level <= 3; level++ {
		if res := c.commit([]*pending{req(0, watermark.Block, level, 1)}, nil); res[0].err != nil {
			t.Fatal(res[0].err)
		}
	}
}

// TestCloseStopsRefreshTimer: closing a chain stops its pending refresh timer, so that none
// outlives the store by up to the lag.
func TestCloseStopsRefreshTimer(t *testing.T) {
	t.Parallel()
	c := testChain(t)
	c.journal, c.lag = newJournal(c.dir, 1<<16, nil), time.Hour
	defer c.journal.close(true)
	var tm *time.Timer
	c.after = func(d time.Duration, f func()) *time.Timer {
		tm = time.AfterFunc(d, f)
		return tm
	}
	if res := c.commit([]*pending{req(0, watermark.Block, 2, 1)}, nil); res[0].err != nil {
		t.Fatal(res[0].err)
	}
	if tm == nil {
		t.Fatal("no refresh timer after a journal record")
	}
	c.close()
	if tm.Stop() {
		t.Fatal("the refresh timer was still pending after close")
	}
}
