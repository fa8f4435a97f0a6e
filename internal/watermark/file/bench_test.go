package file

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/signatory-go/signatory/internal/watermark"
	"github.com/signatory-go/signatory/internal/watermark/watermarktest"
)

func benchStore(b *testing.B, opts ...Option) *Store {
	s, err := Open(b.TempDir(), append([]Option{WithLogger(slog.New(slog.DiscardHandler))}, opts...)...)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	return s
}

// reportWrites adds the writes per Advance: a chain's file writes and journal appends, and the
// journal's records (each one fdatasync).
func reportWrites(b *testing.B, s *Store) {
	var n int64
	s.chains.Range(func(_, v any) bool { n += v.(*chain).writes.Load(); return true })
	b.ReportMetric(float64(n)/float64(b.N), "writes/op")
	if s.journal != nil { // the writers have stopped: no record is being written
		b.ReportMetric(float64(s.journal.records)/float64(b.N), "records/op")
	}
}

// BenchmarkAdvance: serial is one durable write per request; parallel runs 16 goroutines per
// core with a key each, on one chain (group commit shares the fsyncs) or on a chain each
// (independent writers; with the journal, their batches share its writes).
func BenchmarkAdvance(b *testing.B) {
	for _, journal := range []bool{false, true} {
		b.Run(map[bool]string{false: "serial", true: "serial-journal"}[journal], func(b *testing.B) {
			var opts []Option
			if journal {
				opts = append(opts, WithJournal(DefaultJournalSize))
			}
			s := benchStore(b, opts...)
			k := watermarktest.Key(0, 0, watermark.Block)
			for i := 0; b.Loop(); i++ {
				m := watermarktest.Mark(int32(i+1), 0, 1)
				m.Signature = "edsigtXwQk7vJvUGLVjSDqE3egYMVYVvDctZCXnXrbecmB85kfN51fib1NKq6aDiVHYDNGMid1EW7hfq92ZUXYsag8Gyx4GFyU6"
				if _, err := s.Advance(context.Background(), k, m); err != nil {
					b.Fatal(err)
				}
			}
			reportWrites(b, s)
		})
	}
	for _, tc := range []struct {
		perChain, journal bool
	}{{false, false}, {true, false}, {false, true}, {true, true}} {
		perChain := tc.perChain
		name := map[bool]string{false: "parallel-one-chain", true: "parallel-chain-each"}[perChain]
		var opts []Option
		if tc.journal {
			name += "-journal"
			opts = append(opts, WithJournal(DefaultJournalSize))
		}
		b.Run(name, func(b *testing.B) {
			s := benchStore(b, opts...)
			var next atomic.Int32
			b.SetParallelism(16)
			b.RunParallel(func(pb *testing.PB) {
				g := int(next.Add(1))
				k := watermarktest.Key(0, g, watermark.Block)
				if perChain {
					k.Chain = watermarktest.Chain(g)
				}
				for l := int32(1); pb.Next(); l++ {
					if _, err := s.Advance(context.Background(), k, watermarktest.Mark(l, 0, 1)); err != nil {
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

// BenchmarkDatasyncFloor is the cost of the smallest durable write: 200 bytes written into a
// preallocated file, then fdatasync (the floor under a journaled Advance).
func BenchmarkDatasyncFloor(b *testing.B) {
	f, err := os.Create(filepath.Join(b.TempDir(), "floor"))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	const size = 1 << 20
	if _, err := f.Write(make([]byte, size)); err != nil {
		b.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		b.Fatal(err)
	}
	data := make([]byte, 200)
	off := int64(0)
	for b.Loop() {
		if _, err := f.WriteAt(data, off); err != nil {
			b.Fatal(err)
		}
		if err := datasync(f); err != nil {
			b.Fatal(err)
		}
		off = (off + int64(len(data))) % (size - int64(len(data)))
	}
}

// BenchmarkAdvanceManyKeys: serial journaled Advances of one key on a chain that holds the marks
// of 1 or 10,000 keys: the cost of a batch must not grow with the keys its chain holds.
func BenchmarkAdvanceManyKeys(b *testing.B) {
	for _, keys := range []int{1, 10_000} {
		b.Run(fmt.Sprintf("keys-%d", keys), func(b *testing.B) {
			s := benchStore(b, WithJournal(DefaultJournalSize))
			ctx := context.Background()
			for i := range keys {
				if _, err := s.Advance(ctx, watermarktest.Key(0, i, watermark.Attestation), watermarktest.Mark(1, 0, 1)); err != nil {
					b.Fatal(err)
				}
			}
			k := watermarktest.Key(0, 0, watermark.Block)
			for i := 0; b.Loop(); i++ {
				if _, err := s.Advance(ctx, k, watermarktest.Mark(int32(i+1), 0, 1)); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
