package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"gopkg.in/yaml.v3"

	"github.com/signatory-go/signatory/internal/config"
	"github.com/signatory-go/signatory/internal/fault"
	"github.com/signatory-go/signatory/internal/spending"
	"github.com/signatory-go/signatory/internal/watermark"
	"github.com/signatory-go/signatory/internal/watermark/postgres/postgrestest"
	"github.com/signatory-go/signatory/internal/watermark/watermarktest"
)

var tableSeq atomic.Int32

// freshTable returns a table name not used before in this process.
func freshTable() string { return fmt.Sprintf("wm_%d", tableSeq.Add(1)) }

func openStore(t testing.TB, dsn, table string) *Store {
	t.Helper()
	s, err := Open(t.Context(), Config{DSN: dsn, Table: table, Timeout: config.Duration(5 * time.Second),
		ConnectTimeout: config.Duration(10 * time.Second)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestConformance(t *testing.T) {
	pg := postgrestest.Start(t)
	tables := map[watermark.Store]string{}
	var mu sync.Mutex
	watermarktest.Run(t, func(t *testing.T) watermark.Store {
		s := openStore(t, pg.DSN, freshTable())
		mu.Lock()
		tables[s] = s.table
		mu.Unlock()
		return s
	}, func(t *testing.T, old watermark.Store) watermark.Store {
		if err := old.Close(); err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		table := tables[old]
		mu.Unlock()
		s := openStore(t, pg.DSN, strings.Trim(table, `"`))
		mu.Lock()
		tables[s] = table
		mu.Unlock()
		return s
	})
}

// TestStoreDown: with the server stopped Advance fails with a store error (never nil, never a
// conflict); after a restart the old mark is still enforced and signing resumes.
func TestStoreDown(t *testing.T) {
	t.Parallel()
	pg := postgrestest.Start(t)
	s := openStore(t, pg.DSN, freshTable())
	defer s.Close()
	watermarktest.StoreDown(t, s, pg.Stop, pg.Start)
}

// TestDeadline: a request stuck behind a row lock held by another session returns when its
// context's deadline passes, with an Unavailable error that wraps context.DeadlineExceeded.
func TestDeadline(t *testing.T) {
	t.Parallel()
	pg := postgrestest.Start(t)
	table := freshTable()
	s := openStore(t, pg.DSN, table)
	defer s.Close()
	k := watermarktest.Key(0, 0, watermark.Attestation)
	watermarktest.MustAdvance(t, s, k, watermarktest.Mark(1, 0, 1))
	ctx := t.Context()
	c, err := pgx.Connect(ctx, pg.DSN)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	tx, err := c.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, "SELECT 1 FROM "+table+" FOR UPDATE"); err != nil {
		t.Fatal(err)
	}
	dctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	_, err = s.Advance(dctx, k, watermarktest.Mark(2, 0, 2))
	if err == nil || fault.KindOf(err) != fault.Unavailable || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Advance behind a lock = %v, want Unavailable wrapping DeadlineExceeded", err)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	watermarktest.MustAdvance(t, s, k, watermarktest.Mark(2, 0, 3)) // the timed-out request changed nothing
}

// TestTwoSigners is a conflicting concurrent load through two Store instances (two signer
// processes) on one table: for every (key, level, round) at most one digest is ever accepted.
func TestTwoSigners(t *testing.T) {
	t.Parallel()
	pg := postgrestest.Start(t)
	table := freshTable()
	a, b := openStore(t, pg.DSN, table), openStore(t, pg.DSN, table)
	defer a.Close()
	defer b.Close()
	accepted, refused := watermarktest.RaceSigners(t, []watermark.Store{a, b}, 3, 30, 8)
	t.Logf("two signers: %d accepted, %d refused", accepted, refused)
}

func TestMigration(t *testing.T) {
	t.Parallel()
	pg := postgrestest.Start(t)
	ctx := t.Context()
	// Three signers starting together on a fresh table: one creates it, the others find it.
	table := freshTable()
	var wg sync.WaitGroup
	errs := make([]error, 3)
	for i := range errs {
		wg.Go(func() {
			s, err := Open(ctx, Config{DSN: pg.DSN, Table: table, Timeout: config.Duration(time.Second),
				ConnectTimeout: config.Duration(10 * time.Second)}, nil)
			if err == nil {
				s.Close()
			}
			errs[i] = err
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatalf("concurrent start: %v", err)
		}
	}
	c, err := pgx.Connect(ctx, pg.DSN)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	var v int
	if err := c.QueryRow(ctx, "SELECT version FROM "+table+"_schema_version").Scan(&v); err != nil || v != SchemaVersion {
		t.Fatalf("schema version = %d, %v; want %d", v, err, SchemaVersion)
	}
	// A role that may only read and write the rows opens the existing schema and signs.
	for _, q := range []string{"CREATE ROLE limited LOGIN", "GRANT SELECT, INSERT, UPDATE ON " + table + " TO limited",
		"GRANT SELECT ON " + table + "_schema_version TO limited",
		"GRANT SELECT, INSERT, UPDATE ON " + table + "_spending TO limited"} {
		if _, err := c.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	limited := openStore(t, strings.Replace(pg.DSN, "//test@", "//limited@", 1), table)
	watermarktest.MustAdvance(t, limited, watermarktest.Key(0, 0, watermark.Block), watermarktest.Mark(1, 0, 1))
	watermarktest.MustAdvance(t, limited, watermarktest.Key(0, 0, watermark.Block), watermarktest.Mark(2, 0, 1))
	if _, err := spending.Record(ctx, limited, watermarktest.PKH(0), watermarktest.SpendAt("l", time.Now(), 1),
		spending.Windows{Amount: 10, AmountPeriod: time.Hour}); err != nil {
		t.Fatal(err)
	}
	limited.Close()
	// A schema newer than the code is refused.
	if _, err := c.Exec(ctx, "UPDATE "+table+"_schema_version SET version = 99"); err != nil {
		t.Fatal(err)
	}
	_, err = Open(ctx, Config{DSN: pg.DSN, Table: table, Timeout: config.Duration(time.Second), ConnectTimeout: config.Duration(5 * time.Second)}, nil)
	if err == nil || !strings.Contains(err.Error(), "newer") {
		t.Fatalf("Open on schema version 99 = %v", err)
	}
	// A schema-qualified table.
	if _, err := c.Exec(ctx, "CREATE SCHEMA wm"); err != nil {
		t.Fatal(err)
	}
	s := openStore(t, pg.DSN, "wm.marks")
	watermarktest.MustAdvance(t, s, watermarktest.Key(0, 0, watermark.Block), watermarktest.Mark(1, 0, 1))
	s.Close()
}

func TestOpenUnreachable(t *testing.T) {
	t.Parallel()
	start := time.Now()
	_, err := Open(t.Context(), Config{DSN: "postgres://x@127.0.0.1:1/x?sslmode=disable", Table: "w",
		Timeout: config.Duration(time.Second), ConnectTimeout: config.Duration(2 * time.Second)}, nil)
	if err == nil {
		t.Fatal("Open on a closed port succeeded")
	}
	if time.Since(start) > 10*time.Second {
		t.Fatalf("Open took %v", time.Since(start))
	}
}

func TestParseConfig(t *testing.T) {
	cases := []struct {
		yaml, err string
	}{
		{"dsn: postgres://a@h/d\n", ""},
		{"dsn: postgres://a@h/d\ntable: s.t\ntimeout: 2s\nmax_conns: 3\n", ""},
		{"table: t\n", "dsn is required"},
		{"dsn: x\ntabel: t\n", `line 2: unknown config key "tabel"`},
		{"dsn: x\ntable: a;drop\n", "want [schema.]name"},
		{"dsn: x\ntable: a.b.c\n", "want [schema.]name"},
		{"dsn: x\nmax_conns: -1\n", "negative"},
		{"- a\n", "expected a mapping of settings"},
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
			} else if cfg.Table == "" || cfg.Timeout <= 0 || cfg.ConnectTimeout <= 0 {
				t.Errorf("%q: defaults not set: %+v", c.yaml, cfg)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), c.err) {
			t.Errorf("%q: error %v, want %q", c.yaml, err, c.err)
		}
	}
	_, err := Open(t.Context(), Config{DSN: "postgres://a@127.0.0.1:1/d", PasswordEnv: "WM_TEST_NOT_SET_ANYWHERE",
		Table: "t", Timeout: config.Duration(time.Second), ConnectTimeout: config.Duration(time.Second)}, nil)
	if err == nil || !strings.Contains(err.Error(), "WM_TEST_NOT_SET_ANYWHERE is not set") {
		t.Fatalf("unset password_env: %v", err)
	}
}

// TestPreviousSchemaRows: rows written at schema version 1 (before signatures were kept) are read
// after the migration with Signature "" and still enforced: identical bytes with a signature are
// refused on an ECDSA (tz2) key and recorded and returned on a deterministic (tz1) key. A signer of
// version 1 still running after the migration writes marks that keep no stale signature.
func TestPreviousSchemaRows(t *testing.T) {
	t.Parallel()
	pg := postgrestest.Start(t)
	ctx := t.Context()
	c, err := pgx.Connect(ctx, pg.DSN)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	table := freshTable()
	tz1 := watermark.Key{Chain: watermarktest.Chain(0), PKH: watermarktest.PKH(1), Class: watermark.Block}
	tz2 := watermark.Key{Chain: watermarktest.Chain(0), PKH: watermarktest.SecpPKH(1), Class: watermark.Block}
	nod := watermark.Key{Chain: watermarktest.Chain(0), PKH: watermarktest.SecpPKH(2), Class: watermark.Attestation}
	// Version 1 as its code left it: the table, its version, and rows inserted by its statement.
	v1Insert := "INSERT INTO " + table + " (chain_id, pkh, class, level, round, digest) VALUES ($1, $2, $3, $4, $5, $6)"
	v1Update := "UPDATE " + table + " SET level = $4, round = $5, digest = $6, updated_at = now() " +
		"WHERE chain_id = $1 AND pkh = $2 AND class = $3"
	d := watermarktest.Mark(9, 0, 1).Digest
	for _, q := range []struct {
		sql  string
		args []any
	}{
		{fmt.Sprintf(migrations[0], table), nil},
		{"CREATE TABLE " + table + "_schema_version (version integer NOT NULL)", nil},
		{"INSERT INTO " + table + "_schema_version (version) VALUES (1)", nil},
		{v1Insert, []any{tz1.Chain, tz1.PKH, string(tz1.Class), 9, 0, d[:]}},
		{v1Insert, []any{tz2.Chain, tz2.PKH, string(tz2.Class), 9, 0, d[:]}},
		{v1Insert, []any{nod.Chain, nod.PKH, string(nod.Class), 4, 1, nil}},
	} {
		if _, err := c.Exec(ctx, q.sql, q.args...); err != nil {
			t.Fatalf("%s: %v", q.sql, err)
		}
	}
	s := openStore(t, pg.DSN, table)
	defer s.Close()
	var v int
	if err := c.QueryRow(ctx, "SELECT version FROM "+table+"_schema_version").Scan(&v); err != nil || v != SchemaVersion {
		t.Fatalf("schema version after migration = %d, %v; want %d", v, err, SchemaVersion)
	}
	for k, want := range map[watermark.Key]watermark.Mark{tz1: watermarktest.Mark(9, 0, 1), tz2: watermarktest.Mark(9, 0, 1),
		nod: {Level: 4, Round: 1}} {
		if m, ok, err := s.Load(ctx, k); err != nil || !ok || m != want {
			t.Fatalf("Load(%v) of a version 1 row = %+v, %v, %v; want %+v", k, m, ok, err, want)
		}
		if m, ok := watermarktest.Stored(t, s, k); !ok || m != want {
			t.Fatalf("List shows %v = %+v, %v; want %+v", k, m, ok, want)
		}
	}
	watermarktest.MustRefuse(t, s, tz2, watermarktest.SignedMark(9, 0, 1, 1))
	watermarktest.MustRefuse(t, s, tz2, watermarktest.SignedMark(9, 0, 2, 1))
	watermarktest.MustRefuse(t, s, nod, watermarktest.SignedMark(4, 1, 1, 1))
	watermarktest.MustAdvanceSig(t, s, tz1, watermarktest.SignedMark(9, 0, 1, 1), 1)
	watermarktest.MustAdvanceSig(t, s, tz1, watermarktest.SignedMark(9, 0, 1, 2), 1)
	if m, ok, err := s.Load(ctx, tz1); err != nil || !ok || m != watermarktest.SignedMark(9, 0, 1, 1) {
		t.Fatalf("Load after recording = %+v, %v, %v", m, ok, err)
	}
	if m, ok, err := s.Load(ctx, tz2); err != nil || !ok || m != watermarktest.Mark(9, 0, 1) {
		t.Fatalf("the refusals changed the tz2 row: %+v, %v, %v", m, ok, err)
	}
	// A version 1 signer still running moves tz1 to a new mark: the signature of the old one goes.
	d2 := watermarktest.Mark(10, 0, 2).Digest
	if _, err := c.Exec(ctx, v1Update, tz1.Chain, tz1.PKH, string(tz1.Class), 10, 0, d2[:]); err != nil {
		t.Fatal(err)
	}
	if m, ok, err := s.Load(ctx, tz1); err != nil || !ok || m != watermarktest.Mark(10, 0, 2) {
		t.Fatalf("Load after a version 1 update = %+v, %v, %v; want no signature", m, ok, err)
	}
	watermarktest.MustAdvanceSig(t, s, tz1, watermarktest.SignedMark(10, 0, 2, 3), 3)
}

// TestSpendConformance runs the spending-list suite: each store on a table of its own, share a
// second connection pool (another signer) on the same table, reopen a new pool after Close.
func TestSpendConformance(t *testing.T) {
	pg := postgrestest.Start(t)
	open := func(t *testing.T, table string) *Store {
		s := openStore(t, pg.DSN, table)
		t.Cleanup(func() { s.Close() })
		return s
	}
	tableOf := func(s spending.Store) string { return strings.Trim(s.(*Store).table, `"`) }
	watermarktest.RunSpends(t, func(t *testing.T) spending.Store {
		return open(t, freshTable())
	}, func(t *testing.T, s spending.Store) spending.Store {
		return open(t, tableOf(s))
	}, func(t *testing.T, s spending.Store) spending.Store {
		if err := s.(*Store).Close(); err != nil {
			t.Fatal(err)
		}
		return open(t, tableOf(s))
	})
}

// TestSpendStoreDown: with the server stopped UpdateSpends fails as Unavailable (never a spending
// refusal, f never called); after a restart the recorded spend still counts.
func TestSpendStoreDown(t *testing.T) {
	t.Parallel()
	pg := postgrestest.Start(t)
	s := openStore(t, pg.DSN, freshTable())
	defer s.Close()
	watermarktest.SpendStoreDown(t, s, pg.Stop, pg.Start, fault.Unavailable)
}

// TestSpendRows: a refusal on a new key leaves no row; a row that does not decode is an Internal
// error for UpdateSpends (f not called) and ListSpends, never read as an empty list.
func TestSpendRows(t *testing.T) {
	t.Parallel()
	pg := postgrestest.Start(t)
	table := freshTable()
	s := openStore(t, pg.DSN, table)
	defer s.Close()
	ctx := t.Context()
	c, err := pgx.Connect(ctx, pg.DSN)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	watermarktest.SpendRecords(t, s, func(string) bool { // any row at all
		var n int
		if err := c.QueryRow(ctx, "SELECT count(*) FROM "+table+"_spending").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n != 0
	}, func(pkh string) { // a digest of one byte
		if _, err := c.Exec(ctx, "INSERT INTO "+table+`_spending (pkh, spends) VALUES ($1, '[{"id":"x","digest":"00","at":0,"amount":1}]')`, pkh); err != nil {
			t.Fatal(err)
		}
	})
}

// TestSpendingMigration: a database of schema version 2 (the watermark table only) gets the
// spending table at the first start; its marks are kept, and a second start changes nothing.
func TestSpendingMigration(t *testing.T) {
	t.Parallel()
	pg := postgrestest.Start(t)
	ctx := t.Context()
	c, err := pgx.Connect(ctx, pg.DSN)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	table := freshTable()
	for _, q := range []string{
		fmt.Sprintf(migrations[0], table),
		fmt.Sprintf(migrations[1], table, table+"_clear_sig"),
		"CREATE TABLE " + table + "_schema_version (version integer NOT NULL)",
		"INSERT INTO " + table + "_schema_version (version) VALUES (2)",
	} {
		if _, err := c.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	k := watermarktest.Key(0, 0, watermark.Block)
	d := watermarktest.Mark(5, 0, 1).Digest
	if _, err := c.Exec(ctx, "INSERT INTO "+table+" (chain_id, pkh, class, level, round, digest) VALUES ($1, $2, $3, 5, 0, $4)",
		k.Chain, k.PKH, string(k.Class), d[:]); err != nil {
		t.Fatal(err)
	}
	w := spending.Windows{Count: 1, CountPeriod: time.Hour}
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range 2 {
		s := openStore(t, pg.DSN, table)
		var v int
		if err := c.QueryRow(ctx, "SELECT version FROM "+table+"_schema_version").Scan(&v); err != nil || v != SchemaVersion || SchemaVersion != 3 {
			t.Fatalf("schema version = %d, %v; want %d = 3", v, err, SchemaVersion)
		}
		watermarktest.MustRefuse(t, s, k, watermarktest.Mark(5, 0, 2))
		_, err := spending.Record(ctx, s, k.PKH, watermarktest.SpendAt(fmt.Sprint(i), at, 0), w)
		if (i == 0) != (err == nil) {
			t.Fatalf("start %d: RecordSpend = %v", i, err)
		}
		s.Close()
	}
}
