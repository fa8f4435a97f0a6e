package file

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/signatory-go/signatory/internal/watermark"
	"github.com/signatory-go/signatory/internal/watermark/watermarktest"
)

func benchStore(b *testing.B) *Store {
	s, err := Open(b.TempDir(), WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	return s
}

// reportWrites adds the file writes (each one fsync of the file and one of the dir) per Advance.
func reportWrites(b *testing.B, s *Store) {
	var n int64
	s.chains.Range(func(_, v any) bool { n += v.(*chain).writes.Load(); return true })
	b.ReportMetric(float64(n)/float64(b.N), "writes/op")
}

// BenchmarkAdvance: serial is one durable write per request; parallel runs 32 goroutines with a key
// each, on one chain (group commit shares the fsyncs) or on a chain each (independent writers).
func BenchmarkAdvance(b *testing.B) {
	b.Run("serial", func(b *testing.B) {
		s := benchStore(b)
		k := watermarktest.Key(0, 0, watermark.Block)
		for i := 0; b.Loop(); i++ {
			if _, err := s.Advance(context.Background(), k, watermarktest.M(int32(i+1), 0, 1)); err != nil {
				b.Fatal(err)
			}
		}
		reportWrites(b, s)
	})
	for _, perChain := range []bool{false, true} {
		name := map[bool]string{false: "parallel-one-chain", true: "parallel-chain-each"}[perChain]
		b.Run(name, func(b *testing.B) {
			s := benchStore(b)
			var next atomic.Int32
			b.SetParallelism(16)
			b.RunParallel(func(pb *testing.PB) {
				g := int(next.Add(1))
				k := watermarktest.Key(0, g, watermark.Block)
				if perChain {
					k.Chain = watermarktest.Chain(g)
				}
				for l := int32(1); pb.Next(); l++ {
					if _, err := s.Advance(context.Background(), k, watermarktest.M(l, 0, 1)); err != nil {
						panic(fmt.Sprint(err))
					}
				}
			})
			reportWrites(b, s)
		})
	}
}

// BenchmarkFsyncFloor is the cost of one durable write of 200 bytes (temp file, fsync, close,
// rename, directory fsync): the floor under a serial Advance.
func BenchmarkFsyncFloor(b *testing.B) {
	dir := b.TempDir()
	path := filepath.Join(dir, "floor.json")
	data := make([]byte, 200)
	for b.Loop() {
		if err := writeDurable(path, data); err != nil {
			b.Fatal(err)
		}
	}
}
