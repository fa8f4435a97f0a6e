// Package mem is the in-memory watermark store (driver "mem"): the same rule as the file store,
// nothing persisted, one lock per key so that different keys never wait on each other.
package mem

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/signatory-go/signatory/internal/backend"
	"github.com/signatory-go/signatory/internal/fault"
	"github.com/signatory-go/signatory/internal/spending"
	"github.com/signatory-go/signatory/internal/watermark"
	"github.com/signatory-go/signatory/internal/yamlstrict"
	"gopkg.in/yaml.v3"
)

// Store is an in-memory watermark.Store. The zero value is not usable; call New.
type Store struct {
	marks  sync.Map // watermark.Key → *slot
	closed atomic.Bool

	spendMu sync.Mutex
	spends  map[string][]spending.Spend // pkh → spending list
}

type slot struct {
	mu   sync.Mutex
	mark watermark.Mark
	ok   bool // mark is set
}

var (
	_ watermark.Store = (*Store)(nil)
	_ spending.Store  = (*Store)(nil)
)

// Driver is the name of this backend in the config's watermark.driver.
const Driver = "mem"

// NewStore returns an empty store.
func NewStore() *Store { return new(Store) }

// New is the driver's constructor: an empty store. The mem store takes no settings, and keeps
// nothing across restarts (for tests and throw-away signers only).
func New(_ context.Context, _ string, node *yaml.Node, _ backend.Env) (watermark.Store, error) {
	if err := yamlstrict.Decode(node, &struct{}{}); err != nil {
		return nil, fmt.Errorf("watermark.config: %w", err)
	}
	return NewStore(), nil
}

// Advance implements watermark.Store.
func (s *Store) Advance(ctx context.Context, k watermark.Key, req watermark.Mark) (watermark.Mark, error) {
	if err := k.Check(); err != nil {
		return watermark.Mark{}, err
	}
	if err := ctx.Err(); err != nil {
		return watermark.Mark{}, fault.Wrap(fault.Unavailable, err)
	}
	if s.closed.Load() {
		return watermark.Mark{}, watermark.ErrClosed
	}
	v, ok := s.marks.Load(k)
	if !ok {
		v, _ = s.marks.LoadOrStore(k, new(slot))
	}
	sl := v.(*slot)
	sl.mu.Lock()
	defer sl.mu.Unlock()
	switch o, err := watermark.Decide(k, sl.mark, sl.ok, req); o {
	case watermark.Write:
		sl.mark, sl.ok = req, true
		return req, nil
	case watermark.Identical:
		return sl.mark, nil
	default:
		return watermark.Mark{}, err
	}
}

// Load implements watermark.Store.
func (s *Store) Load(ctx context.Context, k watermark.Key) (watermark.Mark, bool, error) {
	if err := ctx.Err(); err != nil {
		return watermark.Mark{}, false, fault.Wrap(fault.Unavailable, err)
	}
	if s.closed.Load() {
		return watermark.Mark{}, false, watermark.ErrClosed
	}
	v, ok := s.marks.Load(k)
	if !ok {
		return watermark.Mark{}, false, nil
	}
	sl := v.(*slot)
	sl.mu.Lock()
	defer sl.mu.Unlock()
	return sl.mark, sl.ok, nil
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
		return watermark.ErrClosed
	}
	return nil
}

// Close implements watermark.Store. Advance calls that already hold their key's lock finish;
// later ones fail with an Unavailable error.
func (s *Store) Close() error {
	s.closed.Store(true)
	return nil
}

var _ spending.Store = (*Store)(nil)

// UpdateSpends implements spending.Store.
func (s *Store) UpdateSpends(ctx context.Context, pkh string, f func([]spending.Spend) ([]spending.Spend, error)) error {
	if err := ctx.Err(); err != nil {
		return fault.Wrap(fault.Unavailable, err)
	}
	if s.closed.Load() {
		return watermark.ErrClosed
	}
	s.spendMu.Lock()
	defer s.spendMu.Unlock()
	next, err := f(slices.Clone(s.spends[pkh]))
	if err != nil {
		return err
	}
	if s.spends == nil {
		s.spends = map[string][]spending.Spend{}
	}
	s.spends[pkh] = next
	return nil
}

// ListSpends implements spending.Store.
func (s *Store) ListSpends(ctx context.Context) (map[string][]spending.Spend, error) {
	if err := ctx.Err(); err != nil {
		return nil, fault.Wrap(fault.Unavailable, err)
	}
	s.spendMu.Lock()
	defer s.spendMu.Unlock()
	out := make(map[string][]spending.Spend, len(s.spends))
	for k, v := range s.spends {
		if len(v) > 0 {
			out[k] = slices.Clone(v)
		}
	}
	return out, nil
}
