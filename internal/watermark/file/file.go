// Package file is the default watermark store (driver "file"): one JSON file per chain in
// <base_dir>/watermark_v2, in the reference implementation's format, written durably with group commit.
//
// The Store holds an exclusive flock on <base_dir>/watermark_v2/signatory.lock from Open to Close:
// a second process (another `signatory serve`, or `signatory watermark import`) on the same
// directory fails to open, naming the holder, instead of signing from its own stale memory.
//
// Every Advance that returns nil has its mark on disk: by default as part of a record in the
// store's journal (one write and one fdatasync for the batches of every chain, journal.go), the
// chain file being rewritten at most chain_file_lag later and at every clean stop; with journal:
// false as the whole chain file (temp file, fsync, rename, directory fsync). Requests for one
// chain are batched by that chain's writer goroutine, so concurrent requests share one fsync; a
// chain waits for another only to share the journal's next write. A chain file that does not
// parse is left untouched and its chain refuses to sign until the operator repairs it; other
// chains keep working.
package file

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/ecadlabs/gotez/v2/b58"
	"gopkg.in/yaml.v3"

	"github.com/signatory-go/signatory/internal/backend"
	"github.com/signatory-go/signatory/internal/fault"
	"github.com/signatory-go/signatory/internal/watermark"
	"github.com/signatory-go/signatory/internal/yamlstrict"
)

// DirName is the watermark directory under the base dir, as in the reference implementation.
const DirName = "watermark_v2"

// Store is the file watermark.Store. Create it with Open.
type Store struct {
	dir      string
	log      *slog.Logger
	problems []error // found at Open: files ignored
	lock     *dirLock
	readOnly bool
	// journalSize > 0 turns the journal on (see journal.go); the chain files are then at most
	// chainLag behind it while running.
	journalSize int64
	journal     *journal // nil: off, or read-only
	// broken is set at Open when a journal is damaged: it may have held marks of any chain, so
	// no chain signs until the operator repairs it.
	broken error
	// vanished is set at a read-only Open when a journal listed was gone when read (a daemon
	// compacted it meanwhile).
	vanished bool
	chainLag time.Duration
	after    func(time.Duration, func()) *time.Timer // time.AfterFunc; tests replace it

	chains sync.Map // chain id → *chain

	spends      sync.Map     // pkh → *spendSlot
	spendGate   sync.RWMutex // held for reading by UpdateSpends, for writing by Close
	spendClosed bool

	mu     sync.Mutex // guards closed and chain creation; never held during I/O
	closed bool
	wg     sync.WaitGroup // writers
}

var _ watermark.Store = (*Store)(nil)

// Option configures Open.
type Option func(*Store)

// Driver is the name of this backend in the config's watermark.driver.
const Driver = "file"

// New is the driver's constructor: the store under env.BaseDir (read-only when env.ReadOnly).
// The file store takes no settings.
func New(_ context.Context, _ string, node *yaml.Node, env backend.Env) (watermark.Store, error) {
	var cfg Config
	if err := yamlstrict.Decode(node, &cfg); err != nil {
		return nil, fmt.Errorf("watermark.config: %w", err)
	}
	opts := []Option{WithLogger(env.Log())}
	if cfg.Journal == nil || *cfg.Journal {
		opts = append(opts, WithJournal(DefaultJournalSize))
	}
	if cfg.ChainFileLag != 0 {
		if cfg.ChainFileLag < time.Millisecond || cfg.ChainFileLag > MaxChainFileLag {
			return nil, fmt.Errorf("watermark.config.chain_file_lag: %s is not between 1ms and %s", cfg.ChainFileLag, MaxChainFileLag)
		}
		if cfg.Journal != nil && !*cfg.Journal {
			return nil, fmt.Errorf("watermark.config.chain_file_lag: set, but the journal is off (journal: false): every commit already writes the chain file")
		}
		opts = append(opts, WithChainFileLag(cfg.ChainFileLag))
	}
	if env.ReadOnly {
		opts = append(opts, ReadOnly())
	}
	return Open(env.BaseDir, opts...)
}

// Config is the file store's watermark.config section.
type Config struct {
	// Journal (on unless false) makes each group commit part of one write and one fdatasync into
	// the store's preallocated journal instead of a whole-file replace (see docs/watermarks.md).
	// The chain files are brought up to date at most ChainFileLag after a change, and at every
	// start and clean stop. With journal: false every commit replaces the chain file.
	Journal *bool `yaml:"journal"`
	// ChainFileLag bounds how far the chain files may lag the journal while running (default
	// DefaultChainFileLag).
	ChainFileLag time.Duration `yaml:"chain_file_lag"`
}

// DefaultChainFileLag is how long after a journaled change its chain file is rewritten, by
// default; MaxChainFileLag is the most the config accepts.
const (
	DefaultChainFileLag = time.Second
	MaxChainFileLag     = time.Hour
)

// WithJournal turns the journal on, preallocated to at least size bytes, with the chain files at
// most DefaultChainFileLag behind it unless WithChainFileLag says otherwise.
func WithJournal(size int64) Option { return func(s *Store) { s.journalSize = size } }

// WithChainFileLag sets how long after a journaled change its chain file is rewritten; 0 or less
// means only at start and clean stop (and when a journal is full).
func WithChainFileLag(d time.Duration) Option {
	return func(s *Store) {
		s.chainLag = d
		if d <= 0 {
			s.chainLag = -1
		}
	}
}

// WithLogger sets the logger for problems found at Open (default slog.Default()).
func WithLogger(l *slog.Logger) Option { return func(s *Store) { s.log = l } }

// ReadOnly opens a snapshot for reading (`watermark show`) while a daemon may hold the directory:
// no lock is taken, nothing is created or removed, and Advance always fails. Each chain file is
// replaced by an atomic rename, so every file read is whole.
func ReadOnly() Option { return func(s *Store) { s.readOnly = true } }

// readDir lists the watermark directory at Open (a variable for the tests of its failure).
var readDir = os.ReadDir

// readAttempts is how many times a read-only Open reads the directory while a daemon's
// compactions change it under it.
const readAttempts = 5

// Open loads every <chain>.json in <base>/watermark_v2, creating the directory (0700) if needed.
// Unparseable chain files and file names that are not chain ids do not make Open fail: they are
// logged and reported by Health, and a corrupt chain refuses every Advance.
func Open(base string, opts ...Option) (*Store, error) {
	s := &Store{dir: filepath.Join(base, DirName), log: slog.Default()}
	for _, o := range opts {
		o(s)
	}
	if s.chainLag == 0 {
		s.chainLag = DefaultChainFileLag
	}
	if s.readOnly {
		// A running daemon may compact while this reads: a journal listed, then removed before it
		// is read, had its marks written into chain files this may have read before. Read
		// everything again then.
		for attempt := 1; ; attempt++ {
			entries, err := readDir(s.dir)
			if err != nil && !errors.Is(err, fs.ErrNotExist) {
				return nil, fmt.Errorf("watermark: %w", err)
			}
			s.loadAll(entries)
			if !s.vanished {
				break
			}
			if attempt == readAttempts {
				err := fmt.Errorf("watermark: the directory changed at each of %d reads (a daemon compacting its journal): marks written meanwhile may be missing", attempt)
				s.problems = append(s.problems, err)
				break
			}
			s.chains.Clear()
			s.problems, s.broken, s.vanished = nil, nil, false
		}
		s.closed = true // no writer runs, Advance fails
		return s, nil
	}
	if err := makeDir(s.dir); err != nil {
		return nil, fmt.Errorf("watermark: %w", err)
	}
	// The lock comes before anything is read: another process's writes would otherwise be
	// invisible to this one's memory.
	lock, err := lockDir(s.dir)
	if err != nil {
		return nil, fmt.Errorf("watermark: %w", err)
	}
	s.lock = lock
	entries, err := readDir(s.dir)
	if err != nil {
		lock.release()
		return nil, fmt.Errorf("watermark: %w", err)
	}
	if s.journalSize > 0 {
		s.journal = newJournal(s.dir, s.journalSize, s.log)
	}
	s.loadAll(entries)
	return s, nil
}

// loadAll loads every chain of the directory: its chain file, raised by the journals a crash left
// (a writable store then writes the chain files and removes the journals, so that the directory
// holds only chain files, as the reference reads them).
func (s *Store) loadAll(entries []fs.DirEntry) {
	journals := map[string][]uint64{}
	var storeJournals []uint64
	for _, e := range entries {
		name := e.Name()
		if chain, epoch, ok := parseJournalName(name); ok {
			if chain+"." == storeJournalPrefix {
				storeJournals = append(storeJournals, epoch)
			} else {
				journals[chain] = append(journals[chain], epoch)
			}
			continue
		}
		s.load(name)
	}
	for chain, epochs := range journals {
		s.loadJournals(chain, epochs)
	}
	s.loadStoreJournals(storeJournals)
}

// loadStoreJournals raises the chains by the store's journals (in any order: marks only rise) and (writable)
// writes the chain files they raised and removes them. A journal that holds marks of a chain
// whose chain file is corrupt, or that could not be written, stays: its marks are nowhere else.
func (s *Store) loadStoreJournals(epochs []uint64) {
	if len(epochs) == 0 {
		return
	}
	if s.journal != nil {
		// The next journal is of a later epoch than any kept: never one of their names. (The
		// listing is in name order, where epoch 10 comes before 9.)
		s.journal.epoch = slices.Max(epochs)
	}
	raised := map[*chain]*state{}
	keep := false
	for _, epoch := range epochs {
		path := filepath.Join(s.dir, storeJournalName(epoch))
		data, err := os.ReadFile(path)
		if err == nil {
			_, err = replayStoreJournal(data, epoch, func(id string, part *state) {
				c := s.chainForJournal(id)
				if c.broken != nil {
					keep = true
					return
				}
				st := raised[c]
				if st == nil {
					st = c.state.Load().clone()
					raised[c] = st
				}
				raise(st, part)
			})
		}
		if s.readOnly && errors.Is(err, fs.ErrNotExist) {
			s.vanished = true
			continue
		}
		if err != nil {
			bad := &fault.Error{Kind: fault.Internal, Err: fault.WithReason(fault.ReasonCorrupt, err), Msg: fmt.Sprintf(
				"watermark journal %s is corrupt (%v): no chain signs until the operator repairs the file", path, err)}
			s.log.Error(bad.Error())
			if s.broken == nil {
				s.broken = bad
			}
			continue // the marks of every record read are shown (List); nothing is written or removed
		}
	}
	for c, st := range raised {
		c.state.Store(st.seal())
	}
	if s.broken != nil {
		return
	}
	if s.readOnly {
		return
	}
	for c, st := range raised {
		if err := c.write(st); err != nil {
			c.broken = err
			keep = true
			s.log.Error("watermark: cannot bring the chain file up to date from the journal", "chain", c.id, "err", err)
		}
	}
	if keep {
		s.log.Warn("watermark: journals kept: they hold marks of a chain whose file is corrupt or could not be written", "epochs", epochs)
		return
	}
	for _, epoch := range epochs {
		if err := os.Remove(filepath.Join(s.dir, storeJournalName(epoch))); err != nil {
			s.log.Warn("watermark: cannot remove a replayed journal", "err", err)
		}
	}
}

// chainForJournal returns the chain id that a journal names, creating it when its chain file
// does not exist (the journal held its first marks). id is a valid chain id.
func (s *Store) chainForJournal(id string) *chain {
	if v, ok := s.chains.Load(id); ok {
		return v.(*chain)
	}
	c := newChain(id, s.dir, filepath.Join(s.dir, id+".json"), emptyState())
	s.journalize(c)
	if !s.readOnly {
		c.start, c.enter = s.startWriter, s.enterWriter
	} else {
		c.closed = true
	}
	s.chains.Store(id, c)
	return c
}

// loadJournals raises chain's state by its journals of an earlier version (one per chain), in any
// order (marks only rise: raise keeps the higher of two marks, and of two at one level and round
// the one with a signature), writes its chain file and removes them.
func (s *Store) loadJournals(id string, epochs []uint64) {
	if _, err := b58.ParseChainID([]byte(id)); err != nil {
		err := fmt.Errorf("watermark journal of %s: name is not a chain id (%w); file ignored", id, err)
		s.log.Error(err.Error())
		s.problems = append(s.problems, err)
		return
	}
	c := s.chainForJournal(id) // a journal without its chain file starts from nothing
	if c.broken != nil {
		return
	}
	st := c.state.Load().clone()
	for _, epoch := range epochs {
		path := filepath.Join(s.dir, journalName(id, epoch))
		data, err := os.ReadFile(path)
		if err == nil {
			_, err = replayJournal(st, data, epoch)
		}
		if s.readOnly && errors.Is(err, fs.ErrNotExist) {
			s.vanished = true
			continue
		}
		if err != nil {
			c.broken = &fault.Error{Kind: fault.Internal, Err: fault.WithReason(fault.ReasonCorrupt, err), Msg: fmt.Sprintf(
				"watermark journal %s is corrupt (%v): chain %s refuses to sign until the operator repairs the file",
				path, err, id)}
			s.log.Error(c.broken.Error())
			return
		}
	}
	c.state.Store(st.seal())
	if s.readOnly {
		return
	}
	if err := c.write(st); err != nil {
		c.broken = err
		s.log.Error("watermark: cannot bring the chain file up to date from its journal", "chain", id, "err", err)
		return
	}
	for _, epoch := range epochs {
		if err := os.Remove(filepath.Join(s.dir, journalName(id, epoch))); err != nil {
			s.log.Warn("watermark: cannot remove a replayed journal", "chain", id, "err", err)
		}
	}
}

// makeDir creates dir with mode 0700 when it is missing, and makes its entry durable (once per
// Open: an fsync of its parent costs nothing worth a check whether it is new).
func makeDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	return syncDir(filepath.Dir(dir))
}

// load handles one directory entry at Open.
func (s *Store) load(name string) {
	path := filepath.Join(s.dir, name)
	if strings.HasPrefix(name, tmpPrefix) {
		if s.readOnly {
			return
		}
		if err := os.Remove(path); err != nil {
			s.log.Warn("watermark: cannot remove stale temp file", "path", path, "err", err)
		}
		return
	}
	id, ok := strings.CutSuffix(name, ".json")
	if !ok {
		return
	}
	if fi, err := os.Stat(path); err == nil && !fi.Mode().IsRegular() {
		return
	}
	if _, err := b58.ParseChainID([]byte(id)); err != nil {
		err := fmt.Errorf("watermark file %s: name is not a chain id (%w); file ignored", path, err)
		s.log.Error(err.Error())
		s.problems = append(s.problems, err)
		return
	}
	c := newChain(id, s.dir, path, emptyState())
	data, err := os.ReadFile(path)
	var st *state
	if err == nil {
		st, err = decode(data)
	}
	if err != nil {
		c.broken = &fault.Error{Kind: fault.Internal, Err: fault.WithReason(fault.ReasonCorrupt, err), Msg: fmt.Sprintf(
			"watermark file %s is corrupt (%v): chain %s refuses to sign until the operator repairs the file",
			path, err, id)}
		s.log.Error(c.broken.Error())
		s.chains.Store(id, c)
		return
	}
	c.state.Store(st.seal())
	s.journalize(c)
	s.chains.Store(id, c)
	if s.readOnly {
		c.closed = true
		return
	}
	c.start, c.enter = s.startWriter, s.enterWriter
}

// journalize gives c the store's journal settings.
func (s *Store) journalize(c *chain) {
	c.journal = s.journal
	c.lag, c.after, c.log = max(s.chainLag, 0), s.after, s.log // 0: no background rewrite
}

// enterWriter counts a chain's writer that runs in a request's goroutine, which Close waits for
// as for startWriter's; it is called with the chain's mu held, as startWriter is.
func (s *Store) enterWriter() (done func()) {
	s.wg.Add(1)
	return s.wg.Done
}

// startWriter runs a chain's writer in a goroutine that Close waits for.
func (s *Store) startWriter(run func()) {
	s.wg.Add(1)
	go func() { defer s.wg.Done(); run() }()
}

// chain returns the chain for id, creating it (and its writer) on first use.
func (s *Store) chain(id string) (*chain, error) {
	if v, ok := s.chains.Load(id); ok {
		return v.(*chain), nil
	}
	if _, err := b58.ParseChainID([]byte(id)); err != nil {
		return nil, &fault.Error{Kind: fault.Internal, Err: err, Msg: "watermark: invalid chain id " + id}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, watermark.ErrClosed
	}
	if v, ok := s.chains.Load(id); ok {
		return v.(*chain), nil
	}
	c := newChain(id, s.dir, filepath.Join(s.dir, id+".json"), emptyState())
	s.journalize(c)
	c.start, c.enter = s.startWriter, s.enterWriter
	s.chains.Store(id, c)
	return c, nil
}

// Advance implements watermark.Store.
func (s *Store) Advance(ctx context.Context, k watermark.Key, req watermark.Mark) (watermark.Mark, error) {
	if err := k.Check(); err != nil {
		return watermark.Mark{}, err
	}
	if err := ctx.Err(); err != nil {
		return watermark.Mark{}, unavailable(err)
	}
	if s.broken != nil {
		return watermark.Mark{}, s.broken
	}
	c, err := s.chain(k.Chain)
	if err != nil {
		return watermark.Mark{}, err
	}
	if c.broken != nil {
		return watermark.Mark{}, c.broken
	}
	// A key hash already in the file is valid; a new one must be, or the file would not load.
	if !c.state.Load().has(k.PKH) {
		if _, err := b58.ParsePublicKeyHash([]byte(k.PKH)); err != nil {
			return watermark.Mark{}, &fault.Error{Kind: fault.Internal, Err: err, Msg: "watermark: invalid key hash " + k.PKH}
		}
	}
	return c.advance(ctx, k.PKH, classIndex(k.Class), req)
}

// Load implements watermark.Store: the durable record, from memory.
func (s *Store) Load(ctx context.Context, k watermark.Key) (watermark.Mark, bool, error) {
	if err := k.Check(); err != nil {
		return watermark.Mark{}, false, err
	}
	if err := ctx.Err(); err != nil {
		return watermark.Mark{}, false, unavailable(err)
	}
	if s.broken != nil {
		return watermark.Mark{}, false, s.broken
	}
	v, ok := s.chains.Load(k.Chain)
	if !ok {
		return watermark.Mark{}, false, nil
	}
	c := v.(*chain)
	if c.broken != nil {
		return watermark.Mark{}, false, c.broken
	}
	sl := c.state.Load().of(k.PKH)[classIndex(k.Class)]
	return sl.mark, sl.ok, nil
}

// List implements watermark.Store. Chains whose file is corrupt are left out, and then the
// error names them alongside the entries of the other chains.
func (s *Store) List(ctx context.Context) ([]watermark.Entry, error) {
	if err := ctx.Err(); err != nil {
		return nil, unavailable(err)
	}
	var out []watermark.Entry
	var errs []error
	if s.broken != nil {
		errs = append(errs, s.broken)
	}
	s.chains.Range(func(_, v any) bool {
		c := v.(*chain)
		if c.broken != nil {
			errs = append(errs, c.broken)
			return true
		}
		for pkh, slots := range c.state.Load().all() {
			for i, sl := range slots {
				if sl.ok {
					out = append(out, watermark.Entry{
						Key:  watermark.Key{Chain: c.id, PKH: pkh, Class: classes[i]},
						Mark: sl.mark})
				}
			}
		}
		return true
	})
	slices.SortFunc(out, func(a, b watermark.Entry) int { return watermark.Compare(a.Key, b.Key) })
	return out, joinErrors(errs)
}

// Dir returns the watermark directory, <base>/watermark_v2.
func (s *Store) Dir() string { return s.dir }

// Name implements watermark.Store.
func (s *Store) Name() string { return "file" }

// Health implements watermark.Store: it reports ignored files, corrupt chains and chains whose
// last write failed.
func (s *Store) Health(ctx context.Context) error {
	s.mu.Lock()
	closed := s.closed && !s.readOnly
	s.mu.Unlock()
	if closed {
		return watermark.ErrClosed
	}
	errs := slices.Clone(s.problems)
	if s.broken != nil {
		errs = append(errs, s.broken)
	}
	if s.journal != nil {
		if err := s.journal.health(); err != nil {
			errs = append(errs, err)
		}
	}
	s.chains.Range(func(_, v any) bool {
		if err := v.(*chain).health(); err != nil {
			errs = append(errs, err)
		}
		return true
	})
	return joinErrors(errs)
}

// joinErrors returns nil or one Internal error whose message lists errs, sorted.
func joinErrors(errs []error) error {
	if len(errs) == 0 {
		return nil
	}
	msgs := make([]string, len(errs))
	for i, e := range errs {
		msgs[i] = e.Error()
	}
	slices.Sort(msgs)
	return &fault.Error{Kind: fault.Internal, Msg: strings.Join(msgs, "; "), Err: errors.Join(errs...)}
}

// Close implements watermark.Store: queued requests are written and answered, then the writers
// stop. Later Advance calls fail with an Unavailable error. Close is idempotent.
func (s *Store) Close() error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.spendGate.Lock()
	s.spendClosed = true
	s.spendGate.Unlock()
	s.chains.Range(func(_, v any) bool {
		v.(*chain).close()
		return true
	})
	s.wg.Wait()
	if s.readOnly {
		// A snapshot (watermark show) changes nothing: the journals it read may be a running
		// daemon's, which hold acknowledged marks its chain files do not have yet.
		return nil
	}
	// With the writers stopped, bring every journaled chain file up to date and remove the
	// journal: after a clean stop the directory holds only chain files, which the reference reads.
	var errs []error
	s.chains.Range(func(_, v any) bool {
		if err := v.(*chain).compact(); err != nil {
			errs = append(errs, err)
		}
		return true
	})
	if s.journal != nil {
		if err := s.journal.close(len(errs) == 0); err != nil {
			errs = append(errs, err)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return errors.Join(append(errs, s.lock.release())...)
}
