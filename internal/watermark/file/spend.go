package file

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/ecadlabs/gotez/v2/b58"

	"github.com/signatory-go/signatory/internal/durable"
	"github.com/signatory-go/signatory/internal/fault"
	"github.com/signatory-go/signatory/internal/spending"
	"github.com/signatory-go/signatory/internal/watermark"
)

// SpendDirName holds the keys' spending lists, beside watermark_v2: <base_dir>/spending/<pkh>.json,
// each written durably (temp file, fsync, rename, directory fsync) before UpdateSpends returns.
// The watermark lock covers it: one process at a time.
const SpendDirName = "spending"

var _ spending.Store = (*Store)(nil)

type spendSlot struct {
	mu     sync.Mutex
	loaded bool
	list   []spending.Spend
}

func (s *Store) spendDir() string { return filepath.Join(filepath.Dir(s.dir), SpendDirName) }

// spendPath is pkh's file; pkh must be a key address (no path can be made from anything else).
func (s *Store) spendPath(pkh string) (string, error) {
	if _, err := b58.ParsePublicKeyHash([]byte(pkh)); err != nil {
		return "", fault.New(fault.BadRequest, fmt.Sprintf("spending list: %q is not a key address", pkh))
	}
	return filepath.Join(s.spendDir(), pkh+".json"), nil
}

// UpdateSpends implements spending.Store.
func (s *Store) UpdateSpends(ctx context.Context, pkh string, f func([]spending.Spend) ([]spending.Spend, error)) error {
	if err := ctx.Err(); err != nil {
		return fault.Wrap(fault.Unavailable, err)
	}
	path, err := s.spendPath(pkh)
	if err != nil {
		return err
	}
	s.spendGate.RLock() // Close waits for writes in flight before it releases the lock
	defer s.spendGate.RUnlock()
	if s.readOnly || s.spendClosed {
		return watermark.ErrClosed
	}
	v, _ := s.spends.LoadOrStore(pkh, new(spendSlot))
	sl := v.(*spendSlot)
	sl.mu.Lock()
	defer sl.mu.Unlock()
	if !sl.loaded {
		list, err := readSpends(path)
		if err != nil {
			return err
		}
		sl.list, sl.loaded = list, true
	}
	next, err := f(append([]spending.Spend(nil), sl.list...))
	if err != nil {
		return err
	}
	_ = os.MkdirAll(s.spendDir(), 0o700) // when it fails, so does the write below, which says why
	if err := durable.WriteBytes(path, ".spend-tmp-", spending.Encode(next)); err != nil {
		return fault.Wrap(fault.Internal, fmt.Errorf("spending list %s: %w", path, err))
	}
	sl.list = next
	return nil
}

func readSpends(path string) ([]spending.Spend, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fault.Wrap(fault.Internal, err)
	}
	list, err := spending.Decode(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return list, nil
}

// ListSpends implements spending.Store: from the files, so that a read-only store (limits
// show while the daemon runs) sees what the daemon wrote.
func (s *Store) ListSpends(ctx context.Context) (map[string][]spending.Spend, error) {
	if err := ctx.Err(); err != nil {
		return nil, fault.Wrap(fault.Unavailable, err)
	}
	entries, err := os.ReadDir(s.spendDir())
	if errors.Is(err, fs.ErrNotExist) {
		return map[string][]spending.Spend{}, nil
	}
	if err != nil {
		return nil, fault.Wrap(fault.Internal, err)
	}
	out := map[string][]spending.Spend{}
	for _, e := range entries {
		pkh, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok || e.IsDir() {
			continue
		}
		if _, err := b58.ParsePublicKeyHash([]byte(pkh)); err != nil {
			continue // not a key's file
		}
		list, err := readSpends(filepath.Join(s.spendDir(), e.Name()))
		if err != nil {
			return nil, err
		}
		if len(list) > 0 {
			out[pkh] = list
		}
	}
	return out, nil
}
