// Package mem is the in-memory watermark store (driver "mem"): the same rule as the file store,
// nothing persisted, one lock per key so that different keys never wait on each other.
package mem

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/signatory-go/signatory/internal/fault"
	"github.com/signatory-go/signatory/internal/watermark"
)

// Store is an in-memory watermark.Store. The zero value is not usable; call New.
type Store struct {
	marks  sync.Map // watermark.Key → *slot
	closed atomic.Bool
}

type slot struct {
	mu   sync.Mutex
	mark watermark.Mark
	ok   bool // mark is set
}

var _ watermark.Store = (*Store)(nil)

// New returns an empty store.
func New() *Store { return new(Store) }

var errClosed = fault.New(fault.Unavailable, "watermark store is closed")

// Advance implements watermark.Store.
func (s *Store) Advance(ctx context.Context, k watermark.Key, req watermark.Mark) error {
	if err := k.Check(); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fault.Wrap(fault.Unavailable, err)
	}
	if s.closed.Load() {
		return errClosed
	}
	v, ok := s.marks.Load(k)
	if !ok {
		v, _ = s.marks.LoadOrStore(k, new(slot))
	}
	sl := v.(*slot)
	sl.mu.Lock()
	defer sl.mu.Unlock()
	if !watermark.Allowed(sl.mark, sl.ok, req) {
		return watermark.ErrConflict
	}
	sl.mark, sl.ok = req, true
	return nil
}

// List implements watermark.Store.
func (s *Store) List(ctx context.Context) ([]watermark.Entry, error) {
	if err := ctx.Err(); err != nil {
		return nil, fault.Wrap(fault.Unavailable, err)
	}
	var out []watermark.Entry
	s.marks.Range(func(k, v any) bool {
		sl := v.(*slot)
		sl.mu.Lock()
		m, ok := sl.mark, sl.ok
		sl.mu.Unlock()
		if ok {
			out = append(out, watermark.Entry{Key: k.(watermark.Key), Mark: m})
		}
		return true
	})
	slices.SortFunc(out, func(a, b watermark.Entry) int { return watermark.Compare(a.Key, b.Key) })
	return out, nil
}

// Name implements watermark.Store.
func (s *Store) Name() string { return "mem" }

// Health implements watermark.Store.
func (s *Store) Health(context.Context) error {
	if s.closed.Load() {
		return errClosed
	}
	return nil
}

// Close implements watermark.Store. Advance calls that already hold their key's lock finish;
// later ones fail with an Unavailable error.
func (s *Store) Close() error {
	s.closed.Store(true)
	return nil
}
