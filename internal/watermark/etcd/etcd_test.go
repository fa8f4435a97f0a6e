package etcd

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	tz "github.com/ecadlabs/gotez/v2"
	clientv3 "go.etcd.io/etcd/client/v3"
	"gopkg.in/yaml.v3"

	"github.com/signatory-go/signatory/internal/config"
	"github.com/signatory-go/signatory/internal/fault"
	"github.com/signatory-go/signatory/internal/spending"
	"github.com/signatory-go/signatory/internal/watermark"
	"github.com/signatory-go/signatory/internal/watermark/etcd/etcdtest"
	"github.com/signatory-go/signatory/internal/watermark/watermarktest"
)

var prefixSeq atomic.Int32

// freshPrefix returns a key prefix not used before in this process.
func freshPrefix() string { return fmt.Sprintf("/test/%d/", prefixSeq.Add(1)) }

func openStore(t testing.TB, endpoint, prefix string) *Store {
	t.Helper()
	s, err := Open(t.Context(), Config{Endpoints: []string{endpoint}, Prefix: prefix,
		DialTimeout: config.Duration(5 * time.Second), Timeout: config.Duration(5 * time.Second)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestConformance(t *testing.T) {
	e := etcdtest.Start(t)
	watermarktest.Run(t, func(t *testing.T) watermark.Store {
		return openStore(t, e.Endpoint, freshPrefix())
	}, func(t *testing.T, old watermark.Store) watermark.Store {
		prefix := old.(*Store).prefix
		if err := old.Close(); err != nil {
			t.Fatal(err)
		}
		return openStore(t, e.Endpoint, prefix)
	})
}

// TestStoreDown: with the server stopped Advance fails with a store error (never nil, never a
// conflict); after a restart the old mark is still enforced and signing resumes.
func TestStoreDown(t *testing.T) {
	t.Parallel()
	e := etcdtest.Start(t)
	s, err := Open(t.Context(), Config{Endpoints: []string{e.Endpoint}, Prefix: freshPrefix(),
		DialTimeout: config.Duration(5 * time.Second), Timeout: config.Duration(time.Second)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	watermarktest.StoreDown(t, s, e.Stop, e.Start)
}

// TestDeadline: with the server gone, Advance returns by the caller's deadline with an
// Unavailable error that wraps context.DeadlineExceeded, and refuses nothing it should not.
func TestDeadline(t *testing.T) {
	t.Parallel()
	e := etcdtest.Start(t)
	s := openStore(t, e.Endpoint, freshPrefix())
	defer s.Close()
	k := watermarktest.Key(0, 0, watermark.Attestation)
	watermarktest.MustAdvance(t, s, k, watermarktest.Mark(1, 0, 1))
	e.Stop()
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	_, err := s.Advance(ctx, k, watermarktest.Mark(2, 0, 2))
	if err == nil || fault.KindOf(err) != fault.Unavailable || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Advance with the server gone = %v, want Unavailable wrapping DeadlineExceeded", err)
	}
	e.Start()
	watermarktest.MustAdvance(t, s, k, watermarktest.Mark(2, 0, 3)) // the timed-out request changed nothing
}

// TestTwoSigners is a conflicting concurrent load through two Store instances (two signer
// processes) on one prefix: for every (key, level, round) at most one digest is ever accepted.
func TestTwoSigners(t *testing.T) {
	t.Parallel()
	e := etcdtest.Start(t)
	prefix := freshPrefix()
	a, b := openStore(t, e.Endpoint, prefix), openStore(t, e.Endpoint, prefix)
	defer a.Close()
	defer b.Close()
	accepted, refused := watermarktest.RaceSigners(t, []watermark.Store{a, b}, 3, 30, 8)
	t.Logf("two signers: %d accepted, %d refused", accepted, refused)
}

// TestCorruptValue: a value that does not decode refuses (Internal), it is never read as no mark.
func TestCorruptValue(t *testing.T) {
	t.Parallel()
	e := etcdtest.Start(t)
	prefix := freshPrefix()
	s := openStore(t, e.Endpoint, prefix)
	defer s.Close()
	k := watermarktest.Key(0, 0, watermark.Block)
	if _, err := s.cli.Put(t.Context(), s.key(k), "{not json"); err != nil {
		t.Fatal(err)
	}
	_, err := s.Advance(t.Context(), k, watermarktest.Mark(1, 0, 1))
	if err == nil || watermark.IsConflict(err) || fault.KindOf(err) != fault.Internal {
		t.Fatalf("Advance over a corrupt value = %v", err)
	}
	if _, err := s.List(t.Context()); err == nil {
		t.Fatal("List over a corrupt value succeeded")
	}
}

// TestAuth enables etcd authentication and checks that the store signs in with the user and
// password taken from the environment, and that a wrong password fails at start.
func TestAuth(t *testing.T) {
	e := etcdtest.Start(t)
	ctx := t.Context()
	root, err := clientv3.New(clientv3.Config{Endpoints: []string{e.Endpoint}, DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	steps := []func() error{
		func() error { _, err := root.UserAdd(ctx, "root", "rootpw"); return err },
		func() error { _, err := root.UserGrantRole(ctx, "root", "root"); return err },
		func() error { _, err := root.UserAdd(ctx, "signer", "s3cret"); return err },
		func() error { _, err := root.RoleAdd(ctx, "wm"); return err },
		func() error {
			_, err := root.RoleGrantPermission(ctx, "wm", "/auth/", clientv3.GetPrefixRangeEnd("/auth/"), clientv3.PermissionType(clientv3.PermReadWrite))
			return err
		},
		func() error { _, err := root.UserGrantRole(ctx, "signer", "wm"); return err },
		func() error { _, err := root.AuthEnable(ctx); return err },
	}
	for i, f := range steps {
		if err := f(); err != nil {
			t.Fatalf("auth setup step %d: %v", i, err)
		}
	}
	t.Setenv("WM_TEST_ETCD_USER", "signer")
	t.Setenv("WM_TEST_ETCD_PASSWORD", "s3cret")
	c := Config{Endpoints: []string{e.Endpoint}, Prefix: "/auth/", UsernameEnv: "WM_TEST_ETCD_USER",
		PasswordEnv: "WM_TEST_ETCD_PASSWORD", DialTimeout: config.Duration(5 * time.Second), Timeout: config.Duration(5 * time.Second)}
	s, err := Open(ctx, c, nil)
	if err != nil {
		t.Fatal(err)
	}
	watermarktest.MustAdvance(t, s, watermarktest.Key(0, 0, watermark.Block), watermarktest.Mark(1, 0, 1))
	watermarktest.MustRefuse(t, s, watermarktest.Key(0, 0, watermark.Block), watermarktest.Mark(1, 0, 2))
	s.Close()
	t.Setenv("WM_TEST_ETCD_PASSWORD", "wrong")
	if s, err := Open(ctx, c, nil); err == nil {
		s.Close()
		t.Fatal("Open with a wrong password succeeded")
	}
	c.Prefix = "/elsewhere/" // the user may not read here
	t.Setenv("WM_TEST_ETCD_PASSWORD", "s3cret")
	if s, err := Open(ctx, c, nil); err == nil {
		s.Close()
		t.Fatal("Open on a prefix without permission succeeded")
	}
}

func TestParseConfig(t *testing.T) {
	cases := []struct {
		yaml, err string
	}{
		{"endpoints: [http://127.0.0.1:2379]\n", ""},
		{"endpoints: http://127.0.0.1:2379\nprefix: /x\ndial_timeout: 2s\n", ""},
		{"prefix: /x/\n", "endpoints is required"},
		{"endpoints: [a]\nprefx: /x/\n", `line 2: unknown config key "prefx"`},
		{"endpoints: [a]\ntimeout: soon\n", "soon"},
	}
	for _, c := range cases {
		var n yaml.Node
		if err := yaml.Unmarshal([]byte(c.yaml), &n); err != nil {
			t.Fatal(err)
		}
		cfg, err := ParseConfig(n.Content[0])
		if c.err == "" {
			if err != nil {
				t.Errorf("%q: %v", c.yaml, err)
			} else if !strings.HasSuffix(cfg.Prefix, "/") || cfg.Timeout <= 0 || cfg.DialTimeout <= 0 {
				t.Errorf("%q: defaults not set: %+v", c.yaml, cfg)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), c.err) {
			t.Errorf("%q: error %v, want %q", c.yaml, err, c.err)
		}
	}
	bad := []Config{
		{Endpoints: []string{"x"}, PasswordEnv: "WM_TEST_NOT_SET_ANYWHERE", Username: "u"},
		{Endpoints: []string{"x"}, UsernameEnv: "WM_TEST_NOT_SET_ANYWHERE"},
		{Endpoints: []string{"x"}, TLS: &TLSConfig{CertFile: "c"}},
		{Endpoints: []string{"x"}, TLS: &TLSConfig{CAFile: "/nonexistent/ca.pem"}},
	}
	for i, c := range bad {
		if s, err := Open(t.Context(), c, nil); err == nil {
			s.Close()
			t.Errorf("bad config %d opened", i)
		}
	}
}

func TestOpenUnreachable(t *testing.T) {
	t.Parallel()
	start := time.Now()
	_, err := Open(t.Context(), Config{Endpoints: []string{"http://127.0.0.1:1"}, Prefix: "/x/",
		DialTimeout: config.Duration(time.Second), Timeout: config.Duration(time.Second)}, nil)
	if err == nil {
		t.Fatal("Open on a closed port succeeded")
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("Open took %v", d)
	}
}

// TestPreviousFormatValues: values written before signatures were kept (no "signature" field) are
// read with Signature "" and still enforced: identical bytes with a signature are refused on an
// ECDSA (tz2) key and recorded and returned on a deterministic (tz1) key.
func TestPreviousFormatValues(t *testing.T) {
	t.Parallel()
	e := etcdtest.Start(t)
	s := openStore(t, e.Endpoint, freshPrefix())
	defer s.Close()
	ctx := t.Context()
	tz1 := watermark.Key{Chain: watermarktest.Chain(0), PKH: watermarktest.PKH(1), Class: watermark.Block}
	tz2 := watermark.Key{Chain: watermarktest.Chain(0), PKH: watermarktest.SecpPKH(1), Class: watermark.Block}
	nod := watermark.Key{Chain: watermarktest.Chain(0), PKH: watermarktest.SecpPKH(2), Class: watermark.Attestation}
	vh := tz.BlockPayloadHash(watermarktest.Mark(9, 0, 1).Digest).String()
	for k, v := range map[watermark.Key]string{
		tz1: `{"level":9,"round":0,"digest":"` + vh + `"}`,
		tz2: `{"level":9,"round":0,"digest":"` + vh + `"}`,
		nod: `{"level":4,"round":1,"digest":null}`,
	} {
		if _, err := s.cli.Put(ctx, s.key(k), v); err != nil {
			t.Fatal(err)
		}
	}
	for k, want := range map[watermark.Key]watermark.Mark{tz1: watermarktest.Mark(9, 0, 1), tz2: watermarktest.Mark(9, 0, 1),
		nod: {Level: 4, Round: 1}} {
		if m, ok, err := s.Load(ctx, k); err != nil || !ok || m != want {
			t.Fatalf("Load(%v) of a previous-format value = %+v, %v, %v; want %+v", k, m, ok, err, want)
		}
		if m, ok := watermarktest.Stored(t, s, k); !ok || m != want {
			t.Fatalf("List shows %v = %+v, %v; want %+v", k, m, ok, want)
		}
	}
	watermarktest.MustRefuse(t, s, tz2, watermarktest.SignedMark(9, 0, 1, 1))
	watermarktest.MustRefuse(t, s, tz2, watermarktest.SignedMark(9, 0, 2, 1))
	watermarktest.MustRefuse(t, s, nod, watermarktest.SignedMark(4, 1, 1, 1))
	watermarktest.MustAdvance(t, s, tz2, watermarktest.Mark(9, 0, 1)) // an import of the same mark: unchanged
	watermarktest.MustAdvanceSig(t, s, tz1, watermarktest.SignedMark(9, 0, 1, 1), 1)
	watermarktest.MustAdvanceSig(t, s, tz1, watermarktest.SignedMark(9, 0, 1, 2), 1)
	if m, ok, err := s.Load(ctx, tz1); err != nil || !ok || m != watermarktest.SignedMark(9, 0, 1, 1) {
		t.Fatalf("Load after recording = %+v, %v, %v", m, ok, err)
	}
	resp, err := s.cli.Get(ctx, s.key(tz2))
	if err != nil || len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != `{"level":9,"round":0,"digest":"`+vh+`"}` {
		t.Fatalf("the tz2 value changed: %v, %v", resp, err)
	}
}

// TestSpendConformance runs the spending-list suite: each store under a prefix of its own, share
// a second client (another signer) on the same prefix, reopen a new client after Close.
func TestSpendConformance(t *testing.T) {
	e := etcdtest.Start(t)
	open := func(t *testing.T, prefix string) *Store {
		s := openStore(t, e.Endpoint, prefix)
		t.Cleanup(func() { s.Close() })
		return s
	}
	watermarktest.RunSpends(t, func(t *testing.T) spending.Store {
		return open(t, freshPrefix())
	}, func(t *testing.T, s spending.Store) spending.Store {
		return open(t, s.(*Store).prefix)
	}, func(t *testing.T, s spending.Store) spending.Store {
		if err := s.(*Store).Close(); err != nil {
			t.Fatal(err)
		}
		return open(t, s.(*Store).prefix)
	})
}

// TestSpendStoreDown: with the server stopped UpdateSpends fails as Unavailable (never a spending
// refusal, f never called); after a restart the recorded spend still counts.
func TestSpendStoreDown(t *testing.T) {
	t.Parallel()
	e := etcdtest.Start(t)
	s, err := Open(t.Context(), Config{Endpoints: []string{e.Endpoint}, Prefix: freshPrefix(),
		DialTimeout: config.Duration(5 * time.Second), Timeout: config.Duration(time.Second)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	watermarktest.SpendStoreDown(t, s, e.Stop, e.Start, fault.Unavailable)
}

// TestSpendKeys: spending lists live at <prefix>spending/<pkh>, List shows the marks only, a
// refusal writes nothing, and a value that does not decode is an Internal error (f not called).
func TestSpendKeys(t *testing.T) {
	t.Parallel()
	e := etcdtest.Start(t)
	prefix := freshPrefix()
	s := openStore(t, e.Endpoint, prefix)
	defer s.Close()
	ctx := t.Context()
	k := watermarktest.Key(0, 1, watermark.Block)
	watermarktest.MustAdvance(t, s, k, watermarktest.Mark(1, 0, 1))
	w := spending.Windows{Count: 5, CountPeriod: time.Hour}
	if _, err := spending.Record(ctx, s, k.PKH, watermarktest.SpendAt("a", time.Now(), 7), w); err != nil {
		t.Fatal(err)
	}
	resp, err := s.cli.Get(ctx, prefix+"spending/"+k.PKH)
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("%sspending/%s: %v, %v", prefix, k.PKH, resp, err)
	}
	if es, err := s.List(ctx); err != nil || len(es) != 1 || es[0].Key != k {
		t.Fatalf("List = %v, %v; want the mark only", es, err)
	}
	watermarktest.SpendRecords(t, s, func(pkh string) bool {
		resp, err := s.cli.Get(ctx, s.spendKey(pkh))
		if err != nil {
			t.Fatal(err)
		}
		return len(resp.Kvs) != 0
	}, func(pkh string) {
		if _, err := s.cli.Put(ctx, s.spendKey(pkh), "{not json"); err != nil {
			t.Fatal(err)
		}
	})
	if err := s.UpdateSpends(ctx, "a/b", func(l []spending.Spend) ([]spending.Spend, error) { return l, nil }); fault.KindOf(err) != fault.Internal {
		t.Fatalf("UpdateSpends of a key with a slash = %v", err)
	}
}
