package postgrestest_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/signatory-go/signatory/internal/watermark/postgres/postgrestest"
)

// TestRestart starts a scratch server, writes a row, stops it, restarts it and reads the row back.
func TestRestart(t *testing.T) {
	t.Parallel()
	p := postgrestest.Start(t)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	exec := func(sql string) int {
		c, err := pgx.Connect(ctx, p.DSN)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close(ctx)
		var n int
		if err := c.QueryRow(ctx, sql).Scan(&n); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
		return n
	}
	exec("WITH x AS (SELECT 1) SELECT 1") // connect works
	execOnly(t, ctx, p.DSN, "CREATE TABLE t AS SELECT 7 AS n")
	p.Stop()
	if _, err := pgx.Connect(ctx, p.DSN); err == nil {
		t.Fatal("connected to a stopped server")
	}
	p.Start()
	if n := exec("SELECT n FROM t"); n != 7 {
		t.Fatalf("n = %d", n)
	}
	p.Restart()
	if n := exec("SELECT n FROM t"); n != 7 {
		t.Fatalf("after Restart: n = %d", n)
	}
}

func execOnly(t *testing.T, ctx context.Context, dsn, sql string) {
	c, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	if _, err := c.Exec(ctx, sql); err != nil {
		t.Fatal(err)
	}
}
