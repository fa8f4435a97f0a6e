// Package etcd is the etcd watermark store (driver "etcd"): one key per (chain, key, class) under
// a prefix, holding the mark and the signature released for it, decided with watermark.Decide and
// advanced by a compare-and-swap transaction on the key's revision, so that several signers can
// share one etcd cluster without ever signing twice, nor releasing two signatures for one mark.
// The spending lists of keys with a spending policy are kept under the same prefix (spend.go).
package etcd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ecadlabs/gotez/v2/b58"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"gopkg.in/yaml.v3"

	"github.com/signatory-go/signatory/internal/backend"
	"github.com/signatory-go/signatory/internal/fault"
	"github.com/signatory-go/signatory/internal/spending"
	"github.com/signatory-go/signatory/internal/tezos"
	"github.com/signatory-go/signatory/internal/watermark"
)

// Store is a watermark.Store over etcd. It is safe for concurrent use, also by many processes:
// a write succeeds only if the key has not changed since it was read, so of two racing requests
// one wins and the other re-reads and is checked again.
type Store struct {
	cli     *clientv3.Client
	prefix  string
	timeout time.Duration
	closed  atomic.Bool
	// inflight is held shared by every call and exclusively by Close, so that Close waits for
	// the calls in progress instead of cutting them off.
	inflight sync.RWMutex
}

var (
	_ watermark.Store = (*Store)(nil)
	_ spending.Store  = (*Store)(nil)
)

// New opens the store described by a watermark.config node; see Config.
func New(ctx context.Context, _ string, node *yaml.Node, env backend.Env) (watermark.Store, error) {
	c, err := ParseConfig(node)
	if err != nil {
		return nil, err
	}
	s, err := Open(ctx, c, env.Logger)
	if err != nil {
		return nil, err
	}
	return s, nil
}

// Open connects and checks, within c.DialTimeout, that the cluster answers a read under the
// prefix: a signer must not start without its watermarks.
func Open(ctx context.Context, c Config, log *slog.Logger) (*Store, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	user, password, err := c.credentials()
	if err != nil {
		return nil, err
	}
	tc, err := c.tlsConfig()
	if err != nil {
		return nil, err
	}
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   c.Endpoints,
		DialTimeout: time.Duration(c.DialTimeout),
		Username:    user,
		Password:    password,
		TLS:         tc,
		Logger:      zap.NewNop(), // errors reach the caller and are logged there
		// Reconnect quickly after an outage: gRPC's default backoff grows to two minutes.
		DialOptions: []grpc.DialOption{grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 2 * time.Second},
			MinConnectTimeout: time.Duration(c.DialTimeout),
		})},
	})
	if err != nil {
		return nil, fmt.Errorf("etcd watermark store: %w", err)
	}
	s := &Store{cli: cli, prefix: c.Prefix, timeout: time.Duration(c.Timeout)}
	cctx, cancel := context.WithTimeout(ctx, time.Duration(c.DialTimeout))
	defer cancel()
	resp, err := cli.Get(cctx, s.prefix, clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		cli.Close()
		return nil, fmt.Errorf("etcd watermark store at %s: %w", strings.Join(c.Endpoints, ","), err)
	}
	log.Info("etcd watermark store ready", "endpoints", strings.Join(c.Endpoints, ","), "prefix", s.prefix, "keys", resp.Count)
	return s, nil
}

// stored is a mark as kept in etcd: the fields of the interchange format and the signature
// released for the mark. Values written before signatures were kept have no "signature" (read as
// ""), and a mark without a signature is written without it, in that earlier shape; a reader that
// does not know the field ignores it.
type stored struct {
	Level     int32   `json:"level"`
	Round     int32   `json:"round"`
	Digest    *string `json:"digest"`              // base58 "vh…", null when the mark has no digest
	Signature string  `json:"signature,omitempty"` // base58, opaque here
}

func encode(m watermark.Mark) string {
	v := stored{Level: m.Level, Round: m.Round, Signature: m.Signature}
	if m.HasDigest {
		h := tezos.PayloadHashString(&m.Digest)
		v.Digest = &h
	}
	b, _ := json.Marshal(v)
	return string(b)
}

func decode(key, val []byte) (watermark.Mark, error) {
	var v stored
	if err := json.Unmarshal(val, &v); err != nil {
		return watermark.Mark{}, fault.New(fault.Internal, fmt.Sprintf("etcd watermark store: %s: corrupt value: %v", key, err))
	}
	m := watermark.Mark{Level: v.Level, Round: v.Round, Signature: v.Signature}
	if v.Digest != nil {
		h, err := b58.ParseBlockPayloadHash([]byte(*v.Digest))
		if err != nil {
			return m, fault.New(fault.Internal, fmt.Sprintf("etcd watermark store: %s: corrupt digest: %v", key, err))
		}
		m.Digest, m.HasDigest = *h, true
	}
	return m, nil
}

func (s *Store) key(k watermark.Key) string {
	return s.prefix + k.Chain + "/" + k.PKH + "/" + string(k.Class)
}

// maxRaces bounds the compare-and-swap retries of one Advance. Each lost race means another
// request for the same key was recorded in between, so the loop ends quickly in practice.
const maxRaces = 100

// checkKey returns an Internal error when k cannot name a watermark, or would not make one etcd
// key under the prefix.
func checkKey(k watermark.Key) error {
	if err := k.Check(); err != nil {
		return err
	}
	if strings.Contains(k.Chain, "/") || strings.Contains(k.PKH, "/") {
		return fault.New(fault.Internal, "invalid watermark key "+k.Chain+"/"+k.PKH)
	}
	return nil
}

// Advance implements watermark.Store: read the key, apply watermark.Decide, and on a Write put
// req only if the key's ModRevision is still the one read (CreateRevision 0 when it was absent).
// A lost race decides again against the value that won. Identical returns the stored record,
// read with quorum and so durable, without writing. Every failure returns an error.
func (s *Store) Advance(ctx context.Context, k watermark.Key, req watermark.Mark) (watermark.Mark, error) {
	if err := checkKey(k); err != nil {
		return watermark.Mark{}, err
	}
	if err := ctx.Err(); err != nil {
		return watermark.Mark{}, fault.Wrap(fault.Unavailable, err)
	}
	s.inflight.RLock()
	defer s.inflight.RUnlock()
	if s.closed.Load() {
		return watermark.Mark{}, watermark.ErrClosed
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	key := s.key(k)
	resp, err := s.cli.Get(ctx, key)
	if err != nil {
		return watermark.Mark{}, s.fail(ctx, "advance "+key, err)
	}
	kvs := resp.Kvs
	for range maxRaces {
		var (
			old watermark.Mark
			cmp clientv3.Cmp
		)
		ok := len(kvs) > 0
		if ok {
			if old, err = decode(kvs[0].Key, kvs[0].Value); err != nil {
				return watermark.Mark{}, err
			}
			cmp = clientv3.Compare(clientv3.ModRevision(key), "=", kvs[0].ModRevision)
		} else {
			cmp = clientv3.Compare(clientv3.CreateRevision(key), "=", 0)
		}
		switch o, refusal := watermark.Decide(k, old, ok, req); o {
		case watermark.Refuse:
			return watermark.Mark{}, refusal
		case watermark.Identical:
			return old, nil
		}
		tr, err := s.cli.Txn(ctx).If(cmp).Then(clientv3.OpPut(key, encode(req))).Else(clientv3.OpGet(key)).Commit()
		if err != nil {
			return watermark.Mark{}, s.fail(ctx, "advance "+key, err)
		}
		if tr.Succeeded {
			return req, nil
		}
		kvs = tr.Responses[0].GetResponseRange().GetKvs() // lost a race: decide against the winner
	}
	return watermark.Mark{}, fault.New(fault.Unavailable, fmt.Sprintf("etcd watermark store: advance %s: lost %d races in a row", key, maxRaces))
}

// Load implements watermark.Store: one linearizable read of the key.
func (s *Store) Load(ctx context.Context, k watermark.Key) (watermark.Mark, bool, error) {
	if err := checkKey(k); err != nil {
		return watermark.Mark{}, false, err
	}
	if err := ctx.Err(); err != nil {
		return watermark.Mark{}, false, fault.Wrap(fault.Unavailable, err)
	}
	s.inflight.RLock()
	defer s.inflight.RUnlock()
	if s.closed.Load() {
		return watermark.Mark{}, false, watermark.ErrClosed
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	key := s.key(k)
	resp, err := s.cli.Get(ctx, key)
	if err != nil {
		return watermark.Mark{}, false, s.fail(ctx, "load "+key, err)
	}
	if len(resp.Kvs) == 0 {
		return watermark.Mark{}, false, nil
	}
	m, err := decode(resp.Kvs[0].Key, resp.Kvs[0].Value)
	if err != nil {
		return watermark.Mark{}, false, err
	}
	return m, true, nil
}

// fail wraps a client error: Unavailable, naming the store, and wrapping the context's error when
// the deadline or a cancellation ended the call.
func (s *Store) fail(ctx context.Context, op string, err error) error {
	if s.closed.Load() {
		return watermark.ErrClosed
	}
	if cerr := ctx.Err(); cerr != nil && !errors.Is(err, cerr) {
		err = fmt.Errorf("%w (%w)", cerr, err)
	}
	return &fault.Error{Kind: fault.Unavailable, Msg: "etcd watermark store: " + op + ": " + err.Error(), Err: err}
}

// List implements watermark.Store.
func (s *Store) List(ctx context.Context) ([]watermark.Entry, error) {
	if err := ctx.Err(); err != nil {
		return nil, fault.Wrap(fault.Unavailable, err)
	}
	s.inflight.RLock()
	defer s.inflight.RUnlock()
	if s.closed.Load() {
		return nil, watermark.ErrClosed
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout) // a stopped server must not hang the caller
	defer cancel()
	resp, err := s.cli.Get(ctx, s.prefix, clientv3.WithPrefix())
	if err != nil {
		return nil, s.fail(ctx, "list", err)
	}
	out := make([]watermark.Entry, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		if strings.HasPrefix(string(kv.Key), s.prefix+spendingDir) {
			continue // a spending list (spend.go), not a mark
		}
		parts := strings.Split(strings.TrimPrefix(string(kv.Key), s.prefix), "/")
		if len(parts) != 3 {
			return nil, fault.New(fault.Internal, fmt.Sprintf("etcd watermark store: unexpected key %q under %s", kv.Key, s.prefix))
		}
		e := watermark.Entry{Key: watermark.Key{Chain: parts[0], PKH: parts[1], Class: watermark.Class(parts[2])}}
		if err := e.Key.Check(); err != nil {
			return nil, fault.New(fault.Internal, fmt.Sprintf("etcd watermark store: unexpected key %q under %s", kv.Key, s.prefix))
		}
		if e.Mark, err = decode(kv.Key, kv.Value); err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	slices.SortFunc(out, func(a, b watermark.Entry) int { return watermark.Compare(a.Key, b.Key) })
	return out, nil
}

// Name implements watermark.Store.
func (s *Store) Name() string { return Driver }

// Health implements watermark.Store: a quorum read under the prefix, bounded by the store's timeout.
func (s *Store) Health(ctx context.Context) error {
	s.inflight.RLock()
	defer s.inflight.RUnlock()
	if s.closed.Load() {
		return watermark.ErrClosed
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	if _, err := s.cli.Get(ctx, s.prefix, clientv3.WithPrefix(), clientv3.WithCountOnly()); err != nil {
		return s.fail(ctx, "health", err)
	}
	return nil
}

// Close implements watermark.Store: new calls fail, and Close waits for the calls in progress
// (each bounded by the store's timeout) before closing the client.
func (s *Store) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	s.inflight.Lock()
	defer s.inflight.Unlock()
	return s.cli.Close()
}
