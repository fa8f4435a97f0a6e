package postgres

import (
	"testing"

	"github.com/signatory-go/signatory/internal/watermark"
	"github.com/signatory-go/signatory/internal/watermark/postgres/postgrestest"
	"github.com/signatory-go/signatory/internal/watermark/watermarktest"
)

// BenchmarkAdvance against a scratch PostgreSQL on loopback (fsync on): serial is one key at rising
// levels, each Advance a committed transaction; parallel runs 32 goroutines with a key each over
// the default pool (max(4, CPUs) connections), whose concurrent commits share WAL flushes.
func BenchmarkAdvance(b *testing.B) {
	pg := postgrestest.Start(b)
	watermarktest.BenchAdvance(b, func(b *testing.B) watermark.Store { return openStore(b, pg.DSN, freshTable()) })
}
