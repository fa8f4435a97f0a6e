package etcd

import (
	"context"
	"fmt"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/signatory-go/signatory/internal/fault"
	"github.com/signatory-go/signatory/internal/spending"
	"github.com/signatory-go/signatory/internal/watermark"
)

// The spending lists (spending.Store) are kept under the store's prefix, one etcd key per
// key, <prefix>spending/<pkh>, holding the list as spending.Encode writes it; a list is
// changed as a mark is advanced, by a compare-and-swap on the key's revision. The segment
// "spending" cannot be a chain id (base58 "Net…"), and these keys have two segments where marks
// have three.

// spendingDir is the segment under the prefix that holds the spending lists.
const spendingDir = "spending/"

func (s *Store) spendKey(pkh string) string { return s.prefix + spendingDir + pkh }

var _ spending.Store = (*Store)(nil)

// UpdateSpends implements spending.Store: read pkh's list, call f, and put f's result only
// if the key's ModRevision is still the one read (CreateRevision 0 when it was absent); a lost
// race calls f again over the list that won. f's error is returned as it is, nothing written.
func (s *Store) UpdateSpends(ctx context.Context, pkh string, f func([]spending.Spend) ([]spending.Spend, error)) error {
	if pkh == "" || strings.Contains(pkh, "/") {
		return fault.New(fault.Internal, "invalid key for a spending list: "+pkh)
	}
	if err := ctx.Err(); err != nil {
		return fault.Wrap(fault.Unavailable, err)
	}
	s.inflight.RLock()
	defer s.inflight.RUnlock()
	if s.closed.Load() {
		return watermark.ErrClosed
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	key := s.spendKey(pkh)
	resp, err := s.cli.Get(ctx, key)
	if err != nil {
		return s.fail(ctx, "update "+key, err)
	}
	kvs := resp.Kvs
	for range maxRaces {
		var (
			old []spending.Spend
			cmp clientv3.Cmp
		)
		if len(kvs) > 0 {
			if old, err = spending.Decode(kvs[0].Value); err != nil {
				return &fault.Error{Kind: fault.Internal, Msg: "etcd watermark store: " + key + ": " + err.Error(), Err: err}
			}
			cmp = clientv3.Compare(clientv3.ModRevision(key), "=", kvs[0].ModRevision)
		} else {
			cmp = clientv3.Compare(clientv3.CreateRevision(key), "=", 0)
		}
		next, err := f(old)
		if err != nil {
			return err
		}
		tr, err := s.cli.Txn(ctx).If(cmp).Then(clientv3.OpPut(key, string(spending.Encode(next)))).Else(clientv3.OpGet(key)).Commit()
		if err != nil {
			return s.fail(ctx, "update "+key, err)
		}
		if tr.Succeeded {
			return nil
		}
		kvs = tr.Responses[0].GetResponseRange().GetKvs() // lost a race: f again over the winner's list
	}
	return fault.New(fault.Unavailable, fmt.Sprintf("etcd watermark store: update %s: lost %d races in a row", key, maxRaces))
}

// ListSpends implements spending.Store: one range read of <prefix>spending/.
func (s *Store) ListSpends(ctx context.Context) (map[string][]spending.Spend, error) {
	if err := ctx.Err(); err != nil {
		return nil, fault.Wrap(fault.Unavailable, err)
	}
	s.inflight.RLock()
	defer s.inflight.RUnlock()
	if s.closed.Load() {
		return nil, watermark.ErrClosed
	}
	dir := s.prefix + spendingDir
	ctx, cancel := context.WithTimeout(ctx, s.timeout) // a stopped server must not hang the caller
	defer cancel()
	resp, err := s.cli.Get(ctx, dir, clientv3.WithPrefix())
	if err != nil {
		return nil, s.fail(ctx, "list spending lists", err)
	}
	out := make(map[string][]spending.Spend, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		pkh := strings.TrimPrefix(string(kv.Key), dir)
		if pkh == "" || strings.Contains(pkh, "/") {
			return nil, fault.New(fault.Internal, fmt.Sprintf("etcd watermark store: unexpected key %q under %s", kv.Key, dir))
		}
		l, err := spending.Decode(kv.Value)
		if err != nil {
			return nil, &fault.Error{Kind: fault.Internal, Msg: "etcd watermark store: " + string(kv.Key) + ": " + err.Error(), Err: err}
		}
		if len(l) > 0 {
			out[pkh] = l
		}
	}
	return out, nil
}
