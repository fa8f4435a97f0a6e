package watermarktest

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/signatory-go/signatory/internal/watermark"
)

// BenchAdvance measures a store's Advance: "serial" is one key at rising levels; "parallel" runs
// 16 goroutines per CPU, each with a key of its own. open returns a fresh store each time; the
// benchmark closes it.
func BenchAdvance(b *testing.B, open func(b *testing.B) watermark.Store) {
	b.Run("serial", func(b *testing.B) {
		s := open(b)
		defer s.Close()
		k := Key(0, 0, watermark.Block)
		for i := 0; b.Loop(); i++ {
			if _, err := s.Advance(context.Background(), k, Mark(int32(i+1), 0, 1)); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("parallel", func(b *testing.B) {
		s := open(b)
		defer s.Close()
		var next atomic.Int32
		b.SetParallelism(16)
		b.RunParallel(func(pb *testing.PB) {
			k := Key(0, int(next.Add(1)), watermark.Block)
			for l := int32(1); pb.Next(); l++ {
				if _, err := s.Advance(context.Background(), k, Mark(l, 0, 1)); err != nil {
					panic(fmt.Sprint(err))
				}
			}
		})
	})
}
