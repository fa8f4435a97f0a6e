package postgres

import (
	"context"

	"github.com/jackc/pgx/v5"

	"github.com/signatory-go/signatory/internal/fault"
	"github.com/signatory-go/signatory/internal/spending"
	"github.com/signatory-go/signatory/internal/watermark"
)

// The spending lists (spending.Store) are kept in <table>_spending (schema version 3): one
// row per key, its list as spending.Encode writes it. A list is changed as a mark is
// advanced: in one READ COMMITTED transaction under the row's lock, so that signers sharing the
// database apply their spends one after another.

func (s *Store) spendStatements(table string) {
	s.spendInsert = "INSERT INTO " + table + " (pkh) VALUES ($1) ON CONFLICT (pkh) DO NOTHING"
	s.spendLock = "SELECT spends::text FROM " + table + " WHERE pkh = $1 FOR UPDATE"
	s.spendUpdate = "UPDATE " + table + " SET spends = $2::jsonb, updated_at = now() WHERE pkh = $1"
	s.spendList = "SELECT pkh, spends::text FROM " + table
}

var _ spending.Store = (*Store)(nil)

// UpdateSpends implements spending.Store: in one transaction it inserts pkh's row if it is
// missing (an empty list), locks it with SELECT … FOR UPDATE, calls f with the list and writes
// f's result and commits, or rolls back when f fails and returns f's error as it is. A
// connection-level failure is retried like Advance's: f is then called again on the list as
// stored, which holds the first try's result if its COMMIT did reach the database, and
// spending.ApplySpend does not count the same bytes twice, nor does Refund remove twice.
func (s *Store) UpdateSpends(ctx context.Context, pkh string, f func([]spending.Spend) ([]spending.Spend, error)) error {
	if pkh == "" {
		return fault.New(fault.Internal, "spending list of an empty key")
	}
	if err := ctx.Err(); err != nil {
		return fault.Wrap(fault.Unavailable, err)
	}
	if s.closed.Load() {
		return watermark.ErrClosed
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	var err error
	for attempt := 1; attempt <= maxAttempts; attempt++ {
		var ferr error
		ferr, err = s.updateSpendsOnce(ctx, pkh, f)
		if ferr != nil {
			return ferr
		}
		if err == nil || !retryable(err) || ctx.Err() != nil {
			break
		}
	}
	switch {
	case err == nil:
		return nil
	case s.closed.Load():
		return watermark.ErrClosed
	}
	return s.fail("update spending list of "+pkh, err)
}

// updateSpendsOnce runs the transaction in two round trips, as advanceOnce does: BEGIN, INSERT and
// SELECT … FOR UPDATE, then UPDATE and COMMIT (or ROLLBACK alone). ferr is f's refusal, err a
// failure of the store.
func (s *Store) updateSpendsOnce(ctx context.Context, pkh string, f func([]spending.Spend) ([]spending.Spend, error)) (ferr, err error) {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return nil, err
	}
	defer conn.Release()
	c := conn.Conn()
	b := &pgx.Batch{}
	b.Queue("BEGIN ISOLATION LEVEL READ COMMITTED")
	b.Queue(s.spendInsert, pkh)
	b.Queue(s.spendLock, pkh)
	br := c.SendBatch(ctx, b)
	_, err = br.Exec()
	if err == nil {
		_, err = br.Exec()
	}
	var raw string
	if err == nil {
		err = br.QueryRow().Scan(&raw)
	}
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, err // the connection, still in the transaction, is destroyed on release
	}
	old, err := spending.Decode([]byte(raw))
	if err != nil {
		return nil, err
	}
	next, ferr := f(old)
	if ferr != nil {
		return ferr, finish(ctx, c, "ROLLBACK")
	}
	return nil, updateAndCommit(ctx, c, s.spendUpdate, pkh, string(spending.Encode(next)))
}

// ListSpends implements spending.Store: every row with a non-empty list.
func (s *Store) ListSpends(ctx context.Context) (map[string][]spending.Spend, error) {
	if err := ctx.Err(); err != nil {
		return nil, fault.Wrap(fault.Unavailable, err)
	}
	if s.closed.Load() {
		return nil, watermark.ErrClosed
	}
	rows, err := s.pool.Query(ctx, s.spendList)
	if err != nil {
		return nil, s.fail("list spending lists", err)
	}
	defer rows.Close()
	out := map[string][]spending.Spend{}
	for rows.Next() {
		var pkh, raw string
		if err := rows.Scan(&pkh, &raw); err != nil {
			return nil, s.fail("list spending lists", err)
		}
		l, err := spending.Decode([]byte(raw))
		if err != nil {
			return nil, s.fail("spending list of "+pkh, err)
		}
		if len(l) > 0 {
			out[pkh] = l
		}
	}
	if err := rows.Err(); err != nil {
		return nil, s.fail("list spending lists", err)
	}
	return out, nil
}
