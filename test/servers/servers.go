// Package servers is what is left of the former home of the scratch PostgreSQL and etcd servers,
// which are now internal/watermark/postgres/postgrestest and internal/watermark/etcd/etcdtest.
//
// Deprecated: use postgrestest.Start. This forwarder has no code of its own and stays only while
// internal/cli/watermark_io_test.go still imports it; delete this package once that import is
// changed to postgrestest (pg.DSN() becomes the field pg.DSN).
package servers

import (
	"testing"

	"github.com/signatory-go/signatory/internal/watermark/postgres/postgrestest"
)

// Postgres is a postgrestest.Server with the former DSN method.
type Postgres struct{ *postgrestest.Server }

// DSN returns the URL of the server's "postgres" database as user "test".
func (p Postgres) DSN() string { return p.Server.DSN }

// StartPostgres is postgrestest.Start.
//
// Deprecated: use postgrestest.Start.
func StartPostgres(tb testing.TB) Postgres { return Postgres{postgrestest.Start(tb)} }
