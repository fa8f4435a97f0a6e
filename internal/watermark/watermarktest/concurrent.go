package watermarktest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/signatory-go/signatory/internal/watermark"
)

// testConcurrentSameKey is W9 at scale: goroutines race on one key, level and round with two
// digests. Exactly the goroutines carrying the winning digest succeed; all others get ErrConflict.
func testConcurrentSameKey(t *testing.T, s watermark.Store) {
	const n = 50
	k := Key(0, 0, watermark.Block)
	errs := make([]error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			_, errs[i] = s.Advance(context.Background(), k, Mark(2, 0, byte(0xA1+i%2)))
		})
	}
	close(start)
	wg.Wait()
	var ok [2]int
	for i, err := range errs {
		switch {
		case err == nil:
			ok[i%2]++
		case !watermark.IsConflict(err):
			t.Fatalf("goroutine %d: %v", i, err)
		}
	}
	if !(ok[0] == n/2 && ok[1] == 0) && !(ok[0] == 0 && ok[1] == n/2) {
		t.Fatalf("successes per digest = %v, want all %d of one digest and none of the other", ok, n/2)
	}
	winner := byte(0xA1)
	if ok[1] > 0 {
		winner = 0xA2
	}
	expectStored(t, s, k, Mark(2, 0, winner))
}

// testConcurrentManyKeys: different keys (and chains) never refuse each other.
func testConcurrentManyKeys(t *testing.T, s watermark.Store) {
	const n, levels = 32, 10
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for g := range n {
		wg.Go(func() {
			k := Key(g%3, g, watermark.Attestation)
			for l := int32(1); l <= levels; l++ {
				if _, err := s.Advance(context.Background(), k, Mark(l, 0, byte(g))); err != nil {
					errs <- fmt.Errorf("key %d level %d: %w", g, l, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	es, err := s.List(context.Background())
	if err != nil || len(es) != n {
		t.Fatalf("List = %d entries, %v; want %d", len(es), err, n)
	}
	for g := range n {
		expectStored(t, s, Key(g%3, g, watermark.Attestation), Mark(levels, 0, byte(g)))
	}
}

type accepted struct {
	key          int
	level, round int32
	digest       [32]byte
}

// testRisingStress: goroutines race through rising levels on a few shared keys, each with its
// own digests. For every (key, level, round) at most one digest may ever be accepted, and the
// stored mark is the highest accepted one.
func testRisingStress(t *testing.T, s watermark.Store) {
	const goroutines, levels, keys = 8, 40, 3
	var mu sync.Mutex
	var got []accepted
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(g), 1))
			for l := int32(1); l <= levels; l++ {
				a := accepted{key: r.IntN(keys), level: l, round: r.Int32N(3)}
				a.digest = [32]byte{byte(g), byte(l), byte(a.round), 0x5A}
				m := watermark.Mark{Level: a.level, Round: a.round, Digest: a.digest, HasDigest: true}
				_, err := s.Advance(context.Background(), Key(0, a.key, watermark.Block), m)
				if err != nil && !watermark.IsConflict(err) {
					t.Errorf("goroutine %d: %v", g, err)
					return
				}
				if err == nil {
					mu.Lock()
					got = append(got, a)
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	type lr struct {
		key          int
		level, round int32
	}
	seen := map[lr][32]byte{}
	top := map[int]accepted{}
	for _, a := range got {
		id := lr{a.key, a.level, a.round}
		if d, ok := seen[id]; ok && d != a.digest {
			t.Fatalf("double sign: key %d level %d round %d accepted digests %x and %x", a.key, a.level, a.round, d[:4], a.digest[:4])
		}
		seen[id] = a.digest
		if b, ok := top[a.key]; !ok || a.level > b.level || (a.level == b.level && a.round > b.round) {
			top[a.key] = a
		}
	}
	if len(got) == 0 {
		t.Fatal("nothing accepted")
	}
	for key, a := range top {
		expectStored(t, s, Key(0, key, watermark.Block),
			watermark.Mark{Level: a.level, Round: a.round, Digest: a.digest, HasDigest: true})
	}
}
