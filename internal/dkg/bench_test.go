package dkg

import (
	"fmt"
	"testing"
	"time"
)

// BenchmarkCeremony: one key-generation ceremony among n members in this process, over loopback
// HTTP (every message signed and encrypted), all honest; and a resharing from 3 members to 4.
// BenchmarkFloorSign, one tz4 signature, is the floor the ratios in docs/benchmarks.md are to.
func BenchmarkCeremony(b *testing.B) {
	for _, n := range []int{3, 5, 7} {
		b.Run(fmt.Sprintf("n=%d", n), func(b *testing.B) {
			for b.Loop() {
				b.StopTimer()
				g := newGroup(b, n, n/2+1)
				b.StartTimer()
				out := g.run(b, time.Minute, nil)
				for i, o := range out {
					if o.err != nil {
						b.Fatalf("member %d: %v", i, o.err)
					}
				}
			}
		})
	}
}

func BenchmarkResharing(b *testing.B) {
	for b.Loop() {
		b.StopTimer()
		ps := newParties(b, 4)
		gen1 := map[int]*party{1: ps[0], 2: ps[1], 3: ps[2]}
		r1 := anyResult(ceremonyRun(b, 2, gen1, nil, nil))
		b.StartTimer()
		ceremonyRun(b, 3, map[int]*party{1: ps[0], 2: ps[1], 3: ps[2], 4: ps[3]}, r1, gen1)
	}
}

func BenchmarkFloorSign(b *testing.B) {
	k, err := NewIdentityKey()
	if err != nil {
		b.Fatal(err)
	}
	msg := []byte("floor")
	for b.Loop() {
		if _, err := k.Sign(msg); err != nil {
			b.Fatal(err)
		}
	}
}
