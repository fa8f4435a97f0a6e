package file

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/signatory-go/signatory/internal/fault"
	"github.com/signatory-go/signatory/internal/watermark"
)

// chain is one chain file and its writer. Advance calls for the chain queue a pending request;
// the chain's writer takes everything queued, judges it in arrival order, writes the file once
// and answers the whole batch (group commit). The writer runs only while there is work: the
// request that finds none running writes its own batch (runOnce), and a writer goroutine (run),
// started for what queued behind it, exits when the queue is empty, so an idle chain (say, one a
// client made up) costs no goroutine.
type chain struct {
	id, dir, path string
	broken        error // set at Open when the file does not parse; then no writer runs

	state atomic.Pointer[state] // durable state; replaced only after a successful write

	mu      sync.Mutex
	queue   []*pending
	running bool         // a writer is running (guarded by mu)
	start   func(func()) // runs the writer in a goroutine; nil: requests wait for a run call (tests)
	// enter counts a writer running in a request's goroutine (runOnce) for Close, and returns the
	// function that ends it; nil: requests never write their own batch (tests).
	enter    func() (done func())
	closed   bool
	writeErr error // last write failure, nil after a success; for Health

	writes atomic.Int64 // file writes attempted, for tests and benchmarks

	// With a journal (the default), a batch is part of one record in the store's journal; see
	// journal.go. behind is touched only by the writer goroutine, and Close after the writers
	// stopped.
	journal *journal // the store's; nil: every batch writes the chain file
	behind  bool     // the journal holds marks the chain file lacks

	fileMu   sync.Mutex   // held while the chain file is written: the writer and a journal compaction both write it
	written  *state       // what the chain file holds, once this process wrote it (guarded by fileMu)
	fileSize atomic.Int64 // of the chain file last written, for the journal's size

	// The chain file is brought up to date at most lag after a journal record (see refresh; 0:
	// only at start, clean stop and when the journal is full).
	// after is time.AfterFunc (tests fire it by hand); timer, refreshDue and refreshing are
	// guarded by mu.
	lag        time.Duration
	log        *slog.Logger // nil: no log (tests)
	after      func(time.Duration, func()) *time.Timer
	timer      *time.Timer
	refreshDue bool // a refresh is scheduled or wanted
	refreshing bool // the timer fired: the writer refreshes before it exits
}

// pending is one queued Advance.
type pending struct {
	ctx   context.Context
	pkh   string
	class int
	mark  watermark.Mark
	done  chan result // buffered; receives exactly one outcome
}

// result is one request's outcome: the record whose signature is released, or an error.
type result struct {
	mark watermark.Mark
	err  error
}

func newChain(id, dir, path string, st *state) *chain {
	c := &chain{id: id, dir: dir, path: path}
	c.state.Store(st.seal())
	return c
}

func unavailable(err error) error { return fault.Wrap(fault.Unavailable, err) }

// advance queues one request and waits for its batch, or writes it (runOnce). If ctx ends first
// the caller gets an Unavailable error and must not sign (a request writing its own batch learns
// that when the write has ended); the writer skips requests whose ctx has ended, but one already
// being written may still become durable, which only makes the mark more conservative.
func (c *chain) advance(ctx context.Context, pkh string, class int, m watermark.Mark) (watermark.Mark, error) {
	p := &pending{ctx: ctx, pkh: pkh, class: class, mark: m, done: make(chan result, 1)}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return watermark.Mark{}, watermark.ErrClosed
	}
	c.queue = append(c.queue, p)
	if !c.running && c.enter != nil {
		// No writer runs: this request's goroutine writes its own batch (runOnce), which saves
		// starting a goroutine and two hand-offs between threads per batch.
		c.running = true
		done := c.enter()
		c.mu.Unlock()
		c.runOnce()
		done()
	} else {
		c.spawnLocked()
		c.mu.Unlock()
	}
	select {
	case r := <-p.done:
		return r.mark, r.err
	case <-ctx.Done():
		select {
		case r := <-p.done: // the outcome is already known: report it
			return r.mark, r.err
		default:
			return watermark.Mark{}, unavailable(ctx.Err())
		}
	}
}

// run is the chain's writer: it answers batches until the queue is empty, then returns. When the
// refresh timer has fired, it also brings the chain file up to date, after answering the batch in
// hand, so that a steady stream of requests cannot postpone it.
func (c *chain) run() {
	var results []result
	for {
		c.mu.Lock()
		batch := c.queue
		c.queue = nil // a new array for the next batch: never one this batch still reads
		refresh := c.refreshing
		c.refreshing = false
		if len(batch) == 0 && !refresh {
			c.running = false
			c.mu.Unlock()
			return
		}
		c.mu.Unlock()
		results = c.commit(batch, results[:0]) // nothing at all for an empty batch
		for i, p := range batch {
			p.done <- results[i]
		}
		if refresh {
			c.refresh()
		}
	}
}

// runOnce is the writer run by the request that found none running, in its own goroutine: it
// answers one batch (the one that request is in), then, if more was queued meanwhile or the
// refresh timer fired, hands the writer's part on to a goroutine (run), and returns: a request's
// answer never waits for later batches. Unlike one answered by a writer goroutine, a request whose
// batch its own goroutine is writing gets its answer only when the write has ended, even if its
// context ends first: until then the outcome is not known anyway.
func (c *chain) runOnce() {
	c.mu.Lock()
	batch := c.queue
	c.queue = nil
	c.mu.Unlock()
	results := c.commit(batch, nil)
	for i, p := range batch {
		p.done <- results[i]
	}
	c.mu.Lock()
	c.running = false
	if len(c.queue) > 0 || c.refreshing {
		c.spawnLocked()
	}
	c.mu.Unlock()
}

// scheduleRefresh arranges for the chain file to be brought up to date lag from now, unless that
// is already arranged. Called by the writer after a journal record.
func (c *chain) scheduleRefresh() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.refreshDue || c.closed || c.lag == 0 {
		return
	}
	c.refreshDue = true
	after := c.after
	if after == nil {
		after = time.AfterFunc
	}
	c.timer = after(c.lag, c.refreshNow)
}

// refreshNow is the timer's function: it has the writer refresh the chain file, starting one if
// none runs.
func (c *chain) refreshNow() {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.refreshing = true
	c.spawnLocked()
	c.mu.Unlock()
}

// spawnLocked starts the writer if none runs. It is called with mu held, so that the writer is
// counted (Store.startWriter) before close can return and Close wait for the writers.
func (c *chain) spawnLocked() {
	if !c.running && c.start != nil {
		c.running = true
		c.start(c.run)
	}
}

// refresh writes the chain file from the durable state when the journal holds marks it lacks. The
// journal stays: its records raise nothing over the newer chain file. A failure is reported by
// Health and tried again lag later; the journal still holds every mark.
func (c *chain) refresh() {
	c.mu.Lock()
	c.refreshDue = false
	c.mu.Unlock()
	if !c.behind {
		return
	}
	err := c.write(c.state.Load())
	c.mu.Lock()
	was := c.writeErr
	c.writeErr = err
	c.mu.Unlock()
	if err != nil {
		if was == nil && c.log != nil { // once per outage, not at every retry
			c.log.Error("watermark: cannot bring the chain file up to date; the journal still holds every mark, and the rewrite is tried again",
				"chain", c.id, "err", err, "retry_after", c.lag)
		}
		c.scheduleRefresh()
		return
	}
	if was != nil && c.log != nil {
		c.log.Info("watermark: chain file up to date again", "chain", c.id)
	}
	c.behind = false
}

// commit judges batch in order against the durable state plus the batch's earlier changes
// (watermark.Decide), writes the file once if anything changed, and returns one outcome per
// request.
func (c *chain) commit(batch []*pending, results []result) []result {
	cur := c.state.Load()
	var next *state              // cur plus this batch's changes; nil while nothing changed
	var touched map[slotKey]bool // slots changed in this batch
	needsWrite := make([]bool, len(batch))
	for i, p := range batch {
		results = append(results, result{})
		if err := p.ctx.Err(); err != nil {
			results[i].err = unavailable(err)
			continue
		}
		st := cur
		if next != nil {
			st = next
		}
		slots := st.of(p.pkh)
		old := slots[p.class]
		tk := slotKey{p.pkh, p.class}
		k := watermark.Key{Chain: c.id, PKH: p.pkh, Class: classes[p.class]}
		// An outcome that depends on an unwritten change of this batch stands only if the
		// write succeeds; needsWrite marks those.
		o, err := watermark.Decide(k, old.mark, old.ok, p.mark)
		switch o {
		case watermark.Refuse:
			results[i].err = err
			if touched[tk] {
				d := cur.of(p.pkh)[p.class]
				od, _ := watermark.Decide(k, d.mark, d.ok, p.mark)
				needsWrite[i] = od != watermark.Refuse
			}
			continue
		case watermark.Identical:
			results[i].mark = old.mark
			needsWrite[i] = touched[tk] // else already durable
			continue
		}
		if next == nil {
			next = cur.clone()
			touched = make(map[slotKey]bool)
		}
		slots[p.class] = newSlot(p.mark)
		next.set(p.pkh, slots)
		touched[tk] = true
		needsWrite[i] = true
		results[i].mark = p.mark
	}
	if next == nil {
		return results
	}
	err := c.persist(next, touched)
	c.mu.Lock()
	c.writeErr = err
	c.mu.Unlock()
	if err != nil {
		for i := range batch {
			if needsWrite[i] {
				results[i] = result{err: err}
			}
		}
		return results
	}
	c.state.Store(next.seal())
	return results
}

// slotKey names one slot of a chain's state.
type slotKey struct {
	pkh   string
	class int
}

// persist makes next durable: as part of a journal record when the store has a journal with
// room, else as the whole chain file.
func (c *chain) persist(next *state, touched map[slotKey]bool) error {
	if c.journal == nil {
		return c.write(next)
	}
	c.writes.Add(1)
	part := partial(next, touched)
	payload, err := encodeCompact(part)
	if err == nil {
		err = c.journal.append(c, part, payload)
	}
	if err == nil {
		c.behind = true
		c.scheduleRefresh()
		return nil
	}
	if !errors.Is(err, errJournalFull) {
		// After a failed write or fdatasync the journal's content is unknown: this batch is
		// refused, and the next record starts a new journal.
		return &fault.Error{Kind: fault.Internal, Err: err,
			Msg: fmt.Sprintf("watermark: cannot write the journal for chain %s: %v", c.id, err)}
	}
	if err := c.write(next); err != nil {
		return err
	}
	c.behind = false
	return nil
}

// compact writes the chain file from the durable state if the journal holds marks it lacks, so
// that the store can remove the journal and the directory holds only chain files, as the
// reference reads them (at Close, after the writer stopped).
func (c *chain) compact() error {
	if !c.behind {
		return nil
	}
	if err := c.write(c.state.Load()); err != nil {
		return err
	}
	c.behind = false
	return nil
}

// write makes st durable as the chain file.
func (c *chain) write(st *state) error {
	c.fileMu.Lock()
	defer c.fileMu.Unlock()
	return c.writeLocked(st)
}

// writeRaised makes the durable state raised by part durable as the chain file, unless the chain
// file already holds part: the journal's compaction, from another chain's writer, with part the
// acknowledged marks the journal holds for this chain (its writer may not have published the
// last of them yet).
func (c *chain) writeRaised(part *state) error {
	c.fileMu.Lock()
	defer c.fileMu.Unlock()
	if c.written != nil && covers(c.written, part) {
		return nil
	}
	st := c.state.Load().clone()
	raise(st, part)
	return c.writeLocked(st)
}

func (c *chain) writeLocked(st *state) error {
	c.writes.Add(1)
	data, err := encode(st)
	if err == nil {
		err = writeDurable(c.path, data)
	}
	if err != nil {
		return &fault.Error{Kind: fault.Internal, Err: err,
			Msg: fmt.Sprintf("watermark: cannot write %s: %v", c.path, err)}
	}
	c.written = st.seal()
	c.fileSize.Store(int64(len(data)))
	return nil
}

// close stops accepting requests; a running writer answers what is queued, then returns.
func (c *chain) close() {
	c.mu.Lock()
	c.closed = true
	if c.timer != nil {
		c.timer.Stop()
	}
	c.mu.Unlock()
}

// health returns the last write failure, if any.
func (c *chain) health() error {
	if c.broken != nil {
		return c.broken
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.writeErr
}
