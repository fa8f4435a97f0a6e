// Package audit keeps an append-only, hash-chained JSON-lines journal of every signature issued
// and every refusal, durably written before a signature leaves the process, and verifies it.
package audit

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/blake2b"

	"github.com/signatory-go/signatory/internal/durable"
)

// Entry is one journal line. Prev is the hex blake2b-256 of the previous line's bytes (without
// its newline), "" for the very first line of a journal; rotation carries it into the next file.
type Entry struct {
	Time    time.Time `json:"time"`
	PKH     string    `json:"pkh"`
	Kind    string    `json:"kind,omitempty"`
	Chain   string    `json:"chain_id,omitempty"`
	Level   *int32    `json:"level,omitempty"`
	Round   *int32    `json:"round,omitempty"`
	Digest  string    `json:"payload_blake2b,omitempty"`
	Client  string    `json:"client"`
	Outcome string    `json:"outcome"` // "signed" or "refused"
	Status  int       `json:"status"`
	Reason  string    `json:"reason,omitempty"`
	Prev    string    `json:"prev"`
}

// Journal appends entries to a file. It is safe for concurrent use; concurrent records share
// one fsync.
type Journal struct {
	path    string
	maxSize int64

	mu      sync.Mutex
	cond    *sync.Cond
	queue   []*pending
	closed  bool
	done    chan struct{}
	f       *os.File
	size    int64
	prev    string
	lastErr error
}

type pending struct {
	e   Entry
	err error
	ok  chan struct{}
}

// Open opens (creating 0600) the journal at path and continues its chain. maxSize > 0 rotates
// the file when it grows past that many bytes: it is renamed to path.<UTC timestamp> and a new
// file continues the chain.
func Open(path string, maxSize int64) (*Journal, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("audit journal: %w", err)
	}
	prev, err := lastHash(path)
	if err != nil {
		return nil, err
	}
	if prev == "" {
		// A fresh file after rotation continues from the newest rotated file.
		if rotated, _ := Rotated(path); len(rotated) > 0 {
			if prev, err = lastHash(rotated[len(rotated)-1]); err != nil {
				return nil, err
			}
		}
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("audit journal: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	j := &Journal{path: path, maxSize: maxSize, f: f, size: fi.Size(), prev: prev, done: make(chan struct{})}
	j.cond = sync.NewCond(&j.mu)
	go j.writer()
	return j, nil
}

// lastHash returns the hash of the last line of the file at path, "" when it is empty or absent.
func lastHash(path string) (string, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("audit journal: %w", err)
	}
	defer f.Close()
	var last []byte
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if len(sc.Bytes()) > 0 {
			last = append(last[:0], sc.Bytes()...)
		}
	}
	if err := sc.Err(); err != nil {
		return "", fmt.Errorf("audit journal %s: %w", path, err)
	}
	if last == nil {
		return "", nil
	}
	return hashLine(last), nil
}

func hashLine(line []byte) string {
	h := blake2b.Sum256(line)
	return hex.EncodeToString(h[:])
}

// Rotated lists the rotated files of the journal at path, oldest first.
func Rotated(path string) ([]string, error) {
	m, err := filepath.Glob(path + ".*")
	if err != nil {
		return nil, err
	}
	sort.Strings(m)
	return m, nil
}

// Record appends e and returns once it is on disk (written and fsynced), or the error.
func (j *Journal) Record(ctx context.Context, e Entry) error {
	p := &pending{e: e, ok: make(chan struct{})}
	j.mu.Lock()
	if j.closed {
		j.mu.Unlock()
		return errors.New("audit journal is closed")
	}
	j.queue = append(j.queue, p)
	j.cond.Signal()
	j.mu.Unlock()
	select {
	case <-p.ok:
		return p.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (j *Journal) writer() {
	defer close(j.done)
	for {
		j.mu.Lock()
		for len(j.queue) == 0 && !j.closed {
			j.cond.Wait()
		}
		if len(j.queue) == 0 && j.closed {
			j.mu.Unlock()
			return
		}
		batch := j.queue
		j.queue = nil
		j.mu.Unlock()
		err := j.writeBatch(batch)
		for _, p := range batch {
			p.err = err
			close(p.ok)
		}
	}
}

func (j *Journal) writeBatch(batch []*pending) error {
	var buf bytes.Buffer
	prev := j.prev
	for _, p := range batch {
		p.e.Prev = prev
		line, err := json.Marshal(p.e)
		if err != nil {
			return err
		}
		prev = hashLine(line)
		buf.Write(line)
		buf.WriteByte('\n')
	}
	if _, err := j.f.Write(buf.Bytes()); err != nil {
		j.lastErr = err
		return fmt.Errorf("audit journal: cannot write %s: %w", j.path, err)
	}
	if err := j.f.Sync(); err != nil {
		j.lastErr = err
		return fmt.Errorf("audit journal: cannot sync %s: %w", j.path, err)
	}
	j.prev, j.size, j.lastErr = prev, j.size+int64(buf.Len()), nil
	if j.maxSize > 0 && j.size >= j.maxSize {
		if err := j.rotate(); err != nil {
			j.lastErr = err
		}
	}
	return nil
}

// rotate renames the full file aside and starts a new one; the chain continues through j.prev.
func (j *Journal) rotate() error {
	if err := j.f.Close(); err != nil {
		return err
	}
	aside := j.path + "." + time.Now().UTC().Format("20060102T150405.000000000Z")
	if err := os.Rename(j.path, aside); err != nil {
		return fmt.Errorf("audit journal: rotate: %w", err)
	}
	f, err := os.OpenFile(j.path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("audit journal: rotate: %w", err)
	}
	j.f, j.size = f, 0
	// The rename and the new file must survive a crash, or the chain could restart from a file
	// the journal no longer has.
	if err := durable.SyncDir(filepath.Dir(j.path)); err != nil {
		return fmt.Errorf("audit journal: rotate: %w", err)
	}
	return nil
}

// Health reports the last write error, if any.
func (j *Journal) Health(ctx context.Context) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.lastErr
}

// Close finishes queued records and closes the file.
func (j *Journal) Close() error {
	j.mu.Lock()
	if j.closed {
		j.mu.Unlock()
		return nil
	}
	j.closed = true
	j.cond.Signal()
	j.mu.Unlock()
	<-j.done
	return j.f.Close()
}

// VerifyError locates the first broken line.
type VerifyError struct {
	File string
	Line int
	Msg  string
}

func (e *VerifyError) Error() string { return fmt.Sprintf("%s: line %d: %s", e.File, e.Line, e.Msg) }

// Verify checks the chain through files given oldest first (rotated files, then the current one)
// and returns the number of lines checked, or a *VerifyError at the first broken line: a changed,
// removed, inserted or reordered line breaks the chain there. The first line must start the
// journal (empty prev) unless partial is set, for when older rotated files were deleted.
func Verify(partial bool, files ...string) (int, error) {
	prev := ""
	n := 0
	for fi, name := range files {
		f, err := os.Open(name)
		if err != nil {
			return n, err
		}
		r := bufio.NewReader(f)
		line := 0
		for {
			b, err := r.ReadBytes('\n')
			if len(b) == 0 && errors.Is(err, io.EOF) {
				break
			}
			line++
			if err != nil && !errors.Is(err, io.EOF) {
				f.Close()
				return n, err
			}
			if !bytes.HasSuffix(b, []byte("\n")) {
				f.Close()
				return n, &VerifyError{name, line, "truncated line (no newline)"}
			}
			b = bytes.TrimSuffix(b, []byte("\n"))
			var e Entry
			if err := json.Unmarshal(b, &e); err != nil {
				f.Close()
				return n, &VerifyError{name, line, "not a journal entry: " + err.Error()}
			}
			if fi == 0 && line == 1 && e.Prev != "" && !partial {
				f.Close()
				return n, &VerifyError{name, line, "the first line continues an earlier file: the journal's start is missing (verify all rotated files, or use partial verification)"}
			}
			if e.Prev != prev && !(fi == 0 && line == 1) {
				f.Close()
				return n, &VerifyError{name, line, "hash chain broken: the line before it was changed, removed or reordered, or this line was"}
			}
			prev = hashLine(b)
			n++
		}
		f.Close()
	}
	return n, nil
}

// Files returns the journal's files oldest first: rotated ones, then path itself.
func Files(path string) ([]string, error) {
	rotated, err := Rotated(path)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, r := range rotated {
		if !strings.HasSuffix(r, ".tmp") {
			out = append(out, r)
		}
	}
	return append(out, path), nil
}
