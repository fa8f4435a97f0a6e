package dynamodb

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	ddb "github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"gopkg.in/yaml.v3"

	"github.com/signatory-go/signatory/internal/backend"
	"github.com/signatory-go/signatory/internal/config"
	"github.com/signatory-go/signatory/internal/fault"
	"github.com/signatory-go/signatory/internal/spending"
	"github.com/signatory-go/signatory/internal/watermark"
	"github.com/signatory-go/signatory/internal/watermark/dynamodb/dynamotest"
	wt "github.com/signatory-go/signatory/internal/watermark/watermarktest"
)

var tableSeq atomic.Int64

func newTable() string { return fmt.Sprintf("wm_%d_%d", time.Now().UnixNano()%1e6, tableSeq.Add(1)) }

func open(t testing.TB, srv *dynamotest.Server, table string, timeout time.Duration) *Store {
	t.Helper()
	s, err := Open(t.Context(), testConfig(srv, table, timeout), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func testConfig(srv *dynamotest.Server, table string, timeout time.Duration) Config {
	return Config{Table: table, Region: dynamotest.Region, AccessKeyID: dynamotest.AccessKey,
		SecretAccessKey: dynamotest.SecretKey, Endpoint: srv.Endpoint, Timeout: config.Duration(timeout)}
}

// TestConformance runs the suite every watermark store passes, each subtest on its own table.
func TestConformance(t *testing.T) {
	srv := dynamotest.Start(t)
	tables := sync.Map{} // *Store → table
	openFn := func(t *testing.T) watermark.Store {
		table := newTable()
		s := open(t, srv, table, 10*time.Second)
		tables.Store(s, table)
		return s
	}
	reopen := func(t *testing.T, old watermark.Store) watermark.Store {
		table, _ := tables.Load(old)
		old.Close()
		s := open(t, srv, table.(string), 10*time.Second)
		tables.Store(s, table)
		return s
	}
	wt.Run(t, openFn, reopen)
}

// TestEmulatorDown: a frozen emulator makes Advance fail as Internal within the store's timeout,
// and a killed one fails at once; nothing is stored, and once the emulator is back the same
// payload is accepted and a different one at the same level and round is refused.
func TestEmulatorDown(t *testing.T) {
	t.Parallel()
	srv := dynamotest.Start(t)
	s := open(t, srv, newTable(), 3*time.Second)
	defer s.Close()
	k := wt.Key(0, 0, watermark.Block)
	wt.MustAdvance(t, s, k, wt.Mark(10, 0, 1))

	// A frozen emulator never answers: an error is the store's timeout at work (no wall-clock
	// bound is asserted, so a loaded machine cannot fail this test).
	expectInternal := func(what string, m watermark.Mark) {
		t.Helper()
		_, err := s.Advance(t.Context(), k, m)
		if err == nil || watermark.IsConflict(err) || fault.KindOf(err) != fault.Internal {
			t.Fatalf("%s: Advance = %v, want an Internal error", what, err)
		}
		if s.Health(t.Context()) == nil {
			t.Fatalf("%s: Health = nil", what)
		}
	}
	srv.Pause()
	expectInternal("paused", wt.Mark(11, 0, 2))
	srv.Resume()
	wt.MustAdvance(t, s, k, wt.Mark(11, 0, 2)) // the retry of the same payload is served
	wt.MustRefuse(t, s, k, wt.Mark(11, 0, 3))

	srv.Stop()
	expectInternal("stopped", wt.Mark(12, 0, 4))
	srv.Restart()
	if err := s.Health(t.Context()); err != nil {
		t.Fatalf("Health after restart: %v", err)
	}
	wt.MustRefuse(t, s, k, wt.Mark(11, 0, 5)) // the watermark survived the restart
	wt.MustAdvance(t, s, k, wt.Mark(12, 0, 4))
}

// TestStoreDown is the scenario every shared store passes: with the emulator stopped Advance
// fails with a store error (never nil, never a conflict) above, at and below the mark, and
// Health fails; after a restart the old mark is still enforced and signing resumes.
func TestStoreDown(t *testing.T) {
	t.Parallel()
	srv := dynamotest.Start(t)
	s := open(t, srv, newTable(), 30*time.Second)
	defer s.Close()
	wt.StoreDown(t, s, srv.Stop, srv.Start)
}

// TestTwoSigners is a conflicting concurrent load through two Store instances (two signer
// processes) on one table: for every (key, level, round) at most one digest is ever accepted.
func TestTwoSigners(t *testing.T) {
	t.Parallel()
	srv := dynamotest.Start(t)
	table := newTable()
	a, b := open(t, srv, table, 30*time.Second), open(t, srv, table, 30*time.Second)
	defer a.Close()
	defer b.Close()
	accepted, refused := wt.RaceSigners(t, []watermark.Store{a, b}, 3, 30, 8)
	t.Logf("two signers: %d accepted, %d refused", accepted, refused)
}

// TestReferenceItems: items written by the reference (kind names) are read and respected; its
// attestation_with_dal item is folded into the attestation entry (at a tie, the attestation item's
// mark), as is an endorsement item of its older releases; an item of a kind no release wrote
// fails List, naming it, rather than being skipped.
func TestReferenceItems(t *testing.T) {
	t.Parallel()
	srv := dynamotest.Start(t)
	var logs bytes.Buffer
	s, err := Open(t.Context(), testConfig(srv, "watermark", 5*time.Second), slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	k := wt.Key(0, 0, watermark.Attestation)
	digest := [32]byte{7}
	for _, kind := range []string{"attestation", "attestation_with_dal", "endorsement"} {
		refPut(t, s, k, kind, 34, 4, digest)
	}
	es, err := s.List(t.Context())
	want := watermark.Entry{Key: k, Mark: watermark.Mark{Level: 34, Round: 4, Digest: digest, HasDigest: true}}
	if err != nil || len(es) != 1 || es[0] != want {
		t.Fatalf("List = %v, %v; want [%v]", es, err, want)
	}
	// A preendorsement item of another key, higher than nothing: listed as a preattestation.
	pk := wt.Key(1, 1, watermark.Preattestation)
	refPut(t, s, pk, "preendorsement", 20, 0, digest)
	if es, err := s.List(t.Context()); err != nil || len(es) != 2 || es[1].Key != pk && es[0].Key != pk {
		t.Fatalf("List = %v, %v; want the preendorsement as a preattestation", es, err)
	}
	other := refItem(k, "attestation", 1, 0, digest)
	other["request"] = &types.AttributeValueMemberS{Value: "dal_page"}
	rawPut(t, s, other)
	if _, err := s.List(t.Context()); err == nil || !strings.Contains(err.Error(), "dal_page") {
		t.Fatalf("List with an unreadable item: %v", err)
	}
	wt.MustRefuse(t, s, k, wt.Mark(34, 4, 8))
	wt.MustAdvance(t, s, k, watermark.Mark{Level: 34, Round: 4, Digest: digest, HasDigest: true})
	wt.MustAdvance(t, s, k, wt.Mark(34, 5, 8))
	if m, ok := rawMark(t, s, k, requestDAL); !ok || m != wt.Mark(34, 5, 8) {
		t.Fatalf("attestation_with_dal item = %+v (present %v), want raised to 34/5", m, ok)
	}
}

// TestTable: two processes creating one table at once both succeed; a table with another key
// schema is refused with a clear error.
func TestTable(t *testing.T) {
	t.Parallel()
	srv := dynamotest.Start(t)
	table := newTable()
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i := range errs {
		wg.Go(func() {
			s, err := Open(t.Context(), testConfig(srv, table, 5*time.Second), slog.New(slog.DiscardHandler))
			if err == nil {
				_, err = s.Advance(t.Context(), wt.Key(0, i, watermark.Block), wt.Mark(1, 0, 1))
				s.Close()
			}
			errs[i] = err
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("store %d: %v", i, err)
		}
	}

	s := open(t, srv, newTable(), 5*time.Second)
	defer s.Close()
	_, err := s.client.CreateTable(t.Context(), &ddb.CreateTableInput{
		TableName:            aws.String("other"),
		AttributeDefinitions: []types.AttributeDefinition{{AttributeName: aws.String("pkh"), AttributeType: types.ScalarAttributeTypeS}},
		KeySchema:            []types.KeySchemaElement{{AttributeName: aws.String("pkh"), KeyType: types.KeyTypeHash}},
		BillingMode:          types.BillingModePayPerRequest,
	})
	if err != nil {
		t.Fatal(err)
	}
	_, err = Open(t.Context(), testConfig(srv, "other", 5*time.Second), nil)
	if err == nil || !strings.Contains(err.Error(), `table other`) || !strings.Contains(err.Error(), `hash key "idx"`) {
		t.Fatalf("Open over a foreign table = %v", err)
	}
}

func TestConfigErrors(t *testing.T) {
	t.Setenv("AWS_REGION", "")
	t.Setenv("AWS_DEFAULT_REGION", "")
	t.Setenv("AWS_CONFIG_FILE", "/nonexistent")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
	for name, c := range map[string]struct{ yaml, want string }{
		"half credentials": {"region: us-east-1\nsecret_access_key: s3cr3t\n", "must be given together"},
		"no region":        {"table: t\n", "region is not set"},
		"bad timeout":      {"region: us-east-1\ntimeout: [1]\n", "invalid duration"},
	} {
		var n yaml.Node
		if err := yaml.Unmarshal([]byte(c.yaml), &n); err != nil {
			t.Fatal(err)
		}
		_, err := New(t.Context(), "watermark", n.Content[0], backend.Env{})
		if err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "s3cr3t") {
			t.Errorf("%s: %v, want %q", name, err, c.want)
		}
	}
}

// BenchmarkAdvance measures one conditional PutItem through dynalite (an emulator on loopback:
// the figure is our overhead plus the emulator's, not DynamoDB's latency).
func BenchmarkAdvance(b *testing.B) {
	srv := dynamotest.Start(b)
	s := open(b, srv, newTable(), 10*time.Second)
	defer s.Close()
	var seq atomic.Int32 // a fresh key for every run, since -count repeats sub-benchmarks on one table
	b.Run("rising", func(b *testing.B) {
		k := wt.Key(0, int(seq.Add(1)), watermark.Block)
		level := int32(0)
		for b.Loop() {
			level++
			if _, err := s.Advance(context.Background(), k, wt.Mark(level, 0, byte(level))); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("parallel-keys", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			k := wt.Key(1, int(seq.Add(1)), watermark.Attestation)
			level := int32(0)
			for pb.Next() {
				level++
				if _, err := s.Advance(context.Background(), k, wt.Mark(level, 0, byte(level))); err != nil {
					b.Fatal(err)
				}
			}
		})
	})
}

// TestSpendConformance runs the spending-list suite: each store on a table of its own, share a
// second client (another signer) on the same table, reopen a new client after Close.
func TestSpendConformance(t *testing.T) {
	srv := dynamotest.Start(t)
	openOn := func(t *testing.T, table string) *Store {
		s := open(t, srv, table, 30*time.Second)
		t.Cleanup(func() { s.Close() })
		return s
	}
	wt.RunSpends(t, func(t *testing.T) spending.Store {
		return openOn(t, newTable())
	}, func(t *testing.T, s spending.Store) spending.Store {
		return openOn(t, s.(*Store).Table())
	}, func(t *testing.T, s spending.Store) spending.Store {
		if err := s.(*Store).Close(); err != nil {
			t.Fatal(err)
		}
		return openOn(t, s.(*Store).Table())
	})
}

// TestSpendStoreDown: with the emulator stopped UpdateSpends fails with a store error of the kind
// Advance gives for the same outage (never a spending refusal, f never called); after a restart
// the recorded spend still counts.
func TestSpendStoreDown(t *testing.T) {
	t.Parallel()
	srv := dynamotest.Start(t)
	s := open(t, srv, newTable(), 10*time.Second)
	defer s.Close()
	// The kind of Advance's errors with the emulator down (Internal: this store reports every
	// error but an ended context as Internal), checked to be the same for Advance below.
	wt.SpendStoreDown(t, s, func() {
		srv.Stop()
		if _, err := s.Advance(t.Context(), wt.Key(0, 1, watermark.Block), wt.Mark(1, 0, 1)); fault.KindOf(err) != fault.Internal {
			t.Fatalf("Advance with the emulator stopped: %v", err)
		}
	}, srv.Start, fault.Internal)
}

// TestSpendItems: a spending list is the item (spending#<pkh>, spending) with its version, which
// List skips without a warning; a refusal writes nothing; an item that does not decode is an
// Internal error (f not called).
func TestSpendItems(t *testing.T) {
	t.Parallel()
	srv := dynamotest.Start(t)
	var logs bytes.Buffer
	s, err := Open(t.Context(), testConfig(srv, newTable(), 10*time.Second), slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := t.Context()
	k := wt.Key(0, 1, watermark.Block)
	wt.MustAdvance(t, s, k, wt.Mark(1, 0, 1))
	w := spending.Windows{Count: 5, CountPeriod: time.Hour}
	for i := range 2 {
		if _, err := spending.Record(ctx, s, k.PKH, wt.SpendAt(fmt.Sprint(i), time.Now(), 7), w); err != nil {
			t.Fatal(err)
		}
	}
	get := func(pkh string) map[string]types.AttributeValue {
		out, err := s.client.GetItem(ctx, &ddb.GetItemInput{TableName: aws.String(s.table), Key: spendKey(pkh), ConsistentRead: aws.Bool(true)})
		if err != nil {
			t.Fatal(err)
		}
		return out.Item
	}
	if it := get(k.PKH); it == nil || it[attrVersion].(*types.AttributeValueMemberN).Value != "2" {
		t.Fatalf("spending item %v, want version 2", it)
	}
	if es, err := s.List(ctx); err != nil || len(es) != 1 || es[0].Key != k || strings.Contains(logs.String(), "skipped") {
		t.Fatalf("List = %v, %v; want the mark only, without a warning:\n%s", es, err, &logs)
	}
	wt.SpendRecords(t, s, func(pkh string) bool { return get(pkh) != nil }, func(pkh string) {
		bad := spendKey(pkh)
		bad[attrVersion] = &types.AttributeValueMemberN{Value: "1"}
		bad[attrSpends] = &types.AttributeValueMemberS{Value: "{not json"}
		rawPut(t, s, bad)
	})
}
