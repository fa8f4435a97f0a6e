package servers_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/signatory-go/signatory/test/servers"
)

// TestPostgresRestart starts a scratch server, writes a row, restarts it and reads the row back.
func TestPostgresRestart(t *testing.T) {
	t.Parallel()
	p := servers.StartPostgres(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	exec := func(sql string) int {
		c, err := pgx.Connect(ctx, p.DSN())
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
	execOnly(t, ctx, p.DSN(), "CREATE TABLE t AS SELECT 7 AS n")
	p.Stop()
	if _, err := pgx.Connect(ctx, p.DSN()); err == nil {
		t.Fatal("connected to a stopped server")
	}
	p.Start()
	if n := exec("SELECT n FROM t"); n != 7 {
		t.Fatalf("n = %d", n)
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

// TestEtcdRestart starts a scratch etcd and restarts it.
func TestEtcdRestart(t *testing.T) {
	t.Parallel()
	e := servers.StartEtcd(t)
	e.Stop()
	e.Start()
	if e.Endpoint() == "" {
		t.Fatal("no endpoint")
	}
}
