package postgres

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/signatory-go/signatory/internal/watermark"
	"github.com/signatory-go/signatory/internal/watermark/watermarktest"
	"github.com/signatory-go/signatory/test/servers"
)

// BenchmarkAdvance against a scratch PostgreSQL on loopback (fsync on): serial is one key at rising
// levels, each Advance a committed transaction; parallel runs 32 goroutines with a key each over
// the default pool (max(4, CPUs) connections), whose concurrent commits share WAL flushes.
func BenchmarkAdvance(b *testing.B) {
	pg := servers.StartPostgres(b)
	b.Run("serial", func(b *testing.B) {
		s := openStore(b, pg.DSN(), freshTable())
		defer s.Close()
		k := watermarktest.Key(0, 0, watermark.Block)
		for i := 0; b.Loop(); i++ {
			if err := s.Advance(context.Background(), k, watermarktest.M(int32(i+1), 0, 1)); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("parallel", func(b *testing.B) {
		s := openStore(b, pg.DSN(), freshTable())
		defer s.Close()
		var next atomic.Int32
		b.SetParallelism(16)
		b.RunParallel(func(pb *testing.PB) {
			k := watermarktest.Key(0, int(next.Add(1)), watermark.Block)
			for l := int32(1); pb.Next(); l++ {
				if err := s.Advance(context.Background(), k, watermarktest.M(l, 0, 1)); err != nil {
					panic(fmt.Sprint(err))
				}
			}
		})
	})
}
