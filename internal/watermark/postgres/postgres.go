// Package postgres is the PostgreSQL watermark store (driver "postgres"): one row per (chain, key,
// class) holding the mark and the signature released for it, decided with watermark.Decide and
// advanced in one transaction under the row's lock, so that several signers can share one database
// without ever signing twice, nor releasing two signatures for one mark.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"gopkg.in/yaml.v3"

	"github.com/signatory-go/signatory/internal/backend"
	"github.com/signatory-go/signatory/internal/fault"
	"github.com/signatory-go/signatory/internal/spending"
	"github.com/signatory-go/signatory/internal/watermark"
)

// Store is a watermark.Store over a PostgreSQL table. It is safe for concurrent use, also by many
// processes: the row lock taken by SELECT … FOR UPDATE orders the requests of one key, and requests
// of different keys touch different rows.
type Store struct {
	pool    *pgxpool.Pool
	table   string // sanitized, possibly schema-qualified
	timeout time.Duration
	closed  atomic.Bool

	insert, lock, update, load, list string
	// the statements of the spending lists, over <table>_spending (see spend.go)
	spendInsert, spendLock, spendUpdate, spendList string
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

// Open connects, creates or migrates the schema, and returns the store. It fails when the database
// cannot be reached within c.ConnectTimeout: a signer must not start without its watermarks.
func Open(ctx context.Context, c Config, log *slog.Logger) (*Store, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	pc, err := pgxpool.ParseConfig(c.DSN)
	if err != nil {
		return nil, fmt.Errorf("watermark.config.dsn: %w", err)
	}
	if c.PasswordEnv != "" {
		pw, ok := os.LookupEnv(c.PasswordEnv)
		if !ok {
			return nil, fmt.Errorf("watermark.config.password_env: environment variable %s is not set", c.PasswordEnv)
		}
		pc.ConnConfig.Password = pw
	}
	if c.MaxConns > 0 {
		pc.MaxConns = c.MaxConns
	}
	if pc.ConnConfig.ConnectTimeout == 0 {
		pc.ConnConfig.ConnectTimeout = time.Duration(c.ConnectTimeout)
	}
	if _, ok := pc.ConnConfig.RuntimeParams["application_name"]; !ok {
		pc.ConnConfig.RuntimeParams["application_name"] = "signatory"
	}
	table := pgx.Identifier(strings.Split(c.Table, "."))
	s := &Store{table: table.Sanitize(), timeout: time.Duration(c.Timeout)}
	s.insert = "INSERT INTO " + s.table + " (chain_id, pkh, class, level, round, digest, signature) " +
		"VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (chain_id, pkh, class) DO NOTHING"
	s.load = "SELECT level, round, digest, signature FROM " + s.table + " WHERE chain_id = $1 AND pkh = $2 AND class = $3"
	s.lock = s.load + " FOR UPDATE"
	s.update = "UPDATE " + s.table + " SET level = $4, round = $5, digest = $6, signature = $7, updated_at = now() " +
		"WHERE chain_id = $1 AND pkh = $2 AND class = $3"
	s.list = "SELECT chain_id, pkh, class, level, round, digest, signature FROM " + s.table
	s.spendStatements(spendingTable(table).Sanitize())

	ctx, cancel := context.WithTimeout(ctx, time.Duration(c.ConnectTimeout))
	defer cancel()
	s.pool, err = pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, fmt.Errorf("postgres watermark store: %w", err)
	}
	from, err := migrate(ctx, s.pool, table)
	if err != nil {
		s.pool.Close()
		return nil, fmt.Errorf("postgres watermark store %s at %s:%d: %w", s.table, pc.ConnConfig.Host, pc.ConnConfig.Port, err)
	}
	if from != SchemaVersion {
		log.Info("postgres watermark schema migrated", "table", s.table, "from", from, "to", SchemaVersion)
	}
	log.Info("postgres watermark store ready", "table", s.table, "host", pc.ConnConfig.Host,
		"port", pc.ConnConfig.Port, "database", pc.ConnConfig.Database, "schema_version", SchemaVersion)
	return s, nil
}

// maxAttempts bounds the tries of one Advance or Load. Only connection-level failures are retried.
// A retry of Advance is safe even when an earlier COMMIT did reach the database unacknowledged: the
// same request then finds its own record (same level, round and digest, and its own signature),
// which Decide finds Identical, and that record is returned as if the retry had written it; or,
// for a mark without a digest, the retry is refused and the caller releases nothing.
const maxAttempts = 3

// Advance implements watermark.Store: in one READ COMMITTED transaction it inserts the row if it is
// missing (then req is the first mark: a Write), else locks it with SELECT … FOR UPDATE, applies
// watermark.Decide and updates it on a Write only. Every failure returns an error and nothing is
// signed.
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
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	var (
		m   watermark.Mark
		err error
	)
	for attempt := 1; attempt <= maxAttempts; attempt++ {
		m, err = s.advanceOnce(ctx, k, req)
		if err == nil || watermark.IsConflict(err) || !retryable(err) || ctx.Err() != nil {
			break
		}
	}
	switch {
	case err == nil:
		return m, nil
	case watermark.IsConflict(err): // Decide's refusal, naming the stored mark
		return watermark.Mark{}, err
	case s.closed.Load():
		return watermark.Mark{}, watermark.ErrClosed
	}
	return watermark.Mark{}, s.fail("advance "+k.Chain+"/"+k.PKH+"/"+string(k.Class), err)
}

// advanceOnce runs the transaction in two round trips: BEGIN, INSERT and SELECT … FOR UPDATE in one
// pipeline, then UPDATE and COMMIT (or COMMIT or ROLLBACK alone) in another. A connection left
// inside a transaction by an error is destroyed by the pool on release, which rolls the
// transaction back. It returns the record whose signature the caller releases, or Decide's refusal.
func (s *Store) advanceOnce(ctx context.Context, k watermark.Key, req watermark.Mark) (watermark.Mark, error) {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return watermark.Mark{}, err
	}
	defer conn.Release()
	c := conn.Conn()
	var digest []byte
	if req.HasDigest {
		digest = req.Digest[:]
	}
	var sig *string // NULL when req carries no signature
	if req.Signature != "" {
		sig = &req.Signature
	}
	args := []any{k.Chain, k.PKH, string(k.Class), req.Level, req.Round, digest, sig}
	inserted, stored, err := s.lockRow(ctx, c, args)
	if err != nil {
		return watermark.Mark{}, err
	}
	if inserted { // the first mark of this key: nothing to compare (Decide: Write)
		return req, finish(ctx, c, "COMMIT")
	}
	switch o, refusal := watermark.Decide(k, stored, true, req); o {
	case watermark.Write:
		return req, updateAndCommit(ctx, c, s.update, args...)
	case watermark.Identical: // the stored record stands, committed and durable: nothing to write
		return stored, finish(ctx, c, "COMMIT")
	default:
		if err := finish(ctx, c, "ROLLBACK"); err != nil {
			return watermark.Mark{}, err
		}
		return watermark.Mark{}, refusal
	}
}

// lockRow opens the transaction, inserts the row if it is missing and locks it, in one round
// trip. inserted reports that the row is new (it holds args); otherwise stored is the locked record.
func (s *Store) lockRow(ctx context.Context, c *pgx.Conn, args []any) (inserted bool, stored watermark.Mark, err error) {
	b := &pgx.Batch{}
	b.Queue("BEGIN ISOLATION LEVEL READ COMMITTED")
	b.Queue(s.insert, args...)
	b.Queue(s.lock, args[:3]...)
	br := c.SendBatch(ctx, b)
	_, err = br.Exec()
	var tag pgconn.CommandTag
	if err == nil {
		tag, err = br.Exec()
	}
	var d []byte
	var sig *string
	if err == nil {
		err = br.QueryRow().Scan(&stored.Level, &stored.Round, &d, &sig)
	}
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = setRecord(&stored, d, sig)
	}
	if err != nil {
		return false, watermark.Mark{}, err
	}
	return tag.RowsAffected() == 1, stored, nil
}

// setRecord fills in m's digest and signature from their columns, which are NULL when the mark
// has none. A digest of another length than 32 bytes is an Internal error.
func setRecord(m *watermark.Mark, digest []byte, sig *string) error {
	switch {
	case len(digest) == 32:
		m.Digest, m.HasDigest = [32]byte(digest), true
	case digest != nil:
		return fault.New(fault.Internal, fmt.Sprintf("stored digest of %d bytes", len(digest)))
	}
	if sig != nil {
		m.Signature = *sig
	}
	return nil
}

// updateAndCommit runs stmt (an UPDATE of the locked row) with args and commits, in one round
// trip.
func updateAndCommit(ctx context.Context, c *pgx.Conn, stmt string, args ...any) error {
	b := &pgx.Batch{}
	b.Queue(stmt, args...)
	b.Queue("COMMIT")
	br := c.SendBatch(ctx, b)
	tag, err := br.Exec()
	if err == nil && tag.RowsAffected() != 1 {
		err = fault.New(fault.Internal, fmt.Sprintf("update touched %d rows", tag.RowsAffected()))
	}
	var commit pgconn.CommandTag
	if err == nil {
		commit, err = br.Exec()
	}
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	if err == nil && commit.String() != "COMMIT" {
		err = fmt.Errorf("commit answered %q", commit.String())
	}
	return err
}

// Load implements watermark.Store: a plain read of the row, without a lock, retried like Advance
// on connection-level failures.
func (s *Store) Load(ctx context.Context, k watermark.Key) (watermark.Mark, bool, error) {
	if err := k.Check(); err != nil {
		return watermark.Mark{}, false, err
	}
	if err := ctx.Err(); err != nil {
		return watermark.Mark{}, false, fault.Wrap(fault.Unavailable, err)
	}
	if s.closed.Load() {
		return watermark.Mark{}, false, watermark.ErrClosed
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	var (
		m   watermark.Mark
		d   []byte
		sig *string
		err error
	)
	for attempt := 1; attempt <= maxAttempts; attempt++ {
		m, d, sig = watermark.Mark{}, nil, nil
		err = s.pool.QueryRow(ctx, s.load, k.Chain, k.PKH, string(k.Class)).Scan(&m.Level, &m.Round, &d, &sig)
		if err == nil || errors.Is(err, pgx.ErrNoRows) || !retryable(err) || ctx.Err() != nil {
			break
		}
	}
	switch {
	case err == nil:
		if err := setRecord(&m, d, sig); err != nil {
			return watermark.Mark{}, false, s.fail("load "+k.Chain+"/"+k.PKH+"/"+string(k.Class), err)
		}
		return m, true, nil
	case errors.Is(err, pgx.ErrNoRows):
		return watermark.Mark{}, false, nil
	case s.closed.Load():
		return watermark.Mark{}, false, watermark.ErrClosed
	}
	return watermark.Mark{}, false, s.fail("load "+k.Chain+"/"+k.PKH+"/"+string(k.Class), err)
}

// finish ends the transaction with COMMIT or ROLLBACK. A COMMIT that PostgreSQL turns into a
// ROLLBACK (the transaction had failed) is an error.
func finish(ctx context.Context, c *pgx.Conn, stmt string) error {
	tag, err := c.Exec(ctx, stmt)
	if err == nil && tag.String() != stmt {
		err = fmt.Errorf("%s answered %q", stmt, tag.String())
	}
	return err
}

// retryable reports whether err is a connection-level failure worth one more try: a broken or
// reset connection (e.g. a pooled connection to a server that restarted), a server shutting down
// or starting, or a serialization failure.
func retryable(err error) bool {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return strings.HasPrefix(pe.Code, "08") || strings.HasPrefix(pe.Code, "57P") ||
			pe.Code == "40001" || pe.Code == "40P01"
	}
	var fe *fault.Error
	return !errors.As(err, &fe) && !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded)
}

// fail wraps a store error: Unavailable, with a message that names the store and the cause.
func (s *Store) fail(op string, err error) error {
	if fe := (*fault.Error)(nil); errors.As(err, &fe) && fe.Kind == fault.Internal {
		return &fault.Error{Kind: fault.Internal, Msg: "postgres watermark store: " + op + ": " + err.Error(), Err: err}
	}
	return &fault.Error{Kind: fault.Unavailable, Msg: "postgres watermark store: " + op + ": " + err.Error(), Err: err}
}

// List implements watermark.Store.
func (s *Store) List(ctx context.Context) ([]watermark.Entry, error) {
	if err := ctx.Err(); err != nil {
		return nil, fault.Wrap(fault.Unavailable, err)
	}
	if s.closed.Load() {
		return nil, watermark.ErrClosed
	}
	rows, err := s.pool.Query(ctx, s.list)
	if err != nil {
		return nil, s.fail("list", err)
	}
	var out []watermark.Entry
	for rows.Next() {
		var e watermark.Entry
		var class string
		var d []byte
		var sig *string
		if err := rows.Scan(&e.Chain, &e.PKH, &class, &e.Level, &e.Round, &d, &sig); err != nil {
			rows.Close()
			return nil, s.fail("list", err)
		}
		e.Class = watermark.Class(class)
		if err := setRecord(&e.Mark, d, sig); err != nil {
			rows.Close()
			return nil, s.fail("list "+e.Chain+"/"+e.PKH+"/"+class, err)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, s.fail("list", err)
	}
	slices.SortFunc(out, func(a, b watermark.Entry) int { return watermark.Compare(a.Key, b.Key) })
	return out, nil
}

// Name implements watermark.Store.
func (s *Store) Name() string { return Driver }

// Health implements watermark.Store: a round trip to the database, bounded by the store's timeout.
func (s *Store) Health(ctx context.Context) error {
	if s.closed.Load() {
		return watermark.ErrClosed
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	if err := s.pool.Ping(ctx); err != nil {
		return s.fail("ping", err)
	}
	return nil
}

// Close implements watermark.Store: new calls fail at once, and Close waits for the connections
// of calls in progress to be returned.
func (s *Store) Close() error {
	s.closed.Store(true)
	s.pool.Close()
	return nil
}
