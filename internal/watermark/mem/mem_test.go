package mem_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/signatory-go/signatory/internal/spending"
	"github.com/signatory-go/signatory/internal/watermark"
	"github.com/signatory-go/signatory/internal/watermark/mem"
	"github.com/signatory-go/signatory/internal/watermark/watermarktest"
)

func TestConformance(t *testing.T) {
	watermarktest.Run(t, func(*testing.T) watermark.Store { return mem.NewStore() }, nil)
}

func TestSpendConformance(t *testing.T) {
	watermarktest.RunSpends(t, func(*testing.T) spending.Store { return mem.NewStore() },
		func(_ *testing.T, s spending.Store) spending.Store { return s }, nil)
}

func TestName(t *testing.T) {
	s := mem.NewStore()
	if s.Name() != "mem" || s.Health(t.Context()) != nil {
		t.Fatal("Name or Health")
	}
}

func BenchmarkAdvance(b *testing.B) {
	b.Run("serial", func(b *testing.B) {
		s := mem.NewStore()
		k := watermarktest.Key(0, 0, watermark.Block)
		for i := 0; b.Loop(); i++ {
			if _, err := s.Advance(context.Background(), k, watermarktest.Mark(int32(i+1), 0, 1)); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("parallel", func(b *testing.B) {
		s := mem.NewStore()
		var next atomic.Int32
		b.SetParallelism(16)
		b.RunParallel(func(pb *testing.PB) {
			k := watermarktest.Key(0, int(next.Add(1)), watermark.Block)
			for l := int32(1); pb.Next(); l++ {
				if _, err := s.Advance(context.Background(), k, watermarktest.Mark(l, 0, 1)); err != nil {
					panic(fmt.Sprint(err))
				}
			}
		})
	})
}
