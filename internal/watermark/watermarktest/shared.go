package watermarktest

// The scenarios that shared (networked) watermark stores (postgres, etcd, dynamodb) pass on top of
// Run: several signers racing through one server (RaceSigners), and the server going away and
// coming back (StoreDown).

import (
	"context"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/signatory-go/signatory/internal/fault"
	"github.com/signatory-go/signatory/internal/testdaemon"
	"github.com/signatory-go/signatory/internal/watermark"
)

// slotOf is a (key, level, round) of RaceSigners.
type slotOf struct {
	key          int
	level, round int32
}

// RaceSigners runs perStore goroutines on each store (each store standing for one signer process
// sharing the server). They all walk through levels 1..levels on the same keys, rounds 0..2, each
// with its own digests, so that most requests collide. It fails t if any (key, level, round) has
// two different digests accepted, or if the stored mark is not the highest accepted one, and
// returns how many requests were accepted and refused.
func RaceSigners(t *testing.T, stores []watermark.Store, keys, levels, perStore int) (accepted, refused int) {
	t.Helper()
	var mu sync.Mutex
	seen := map[slotOf][32]byte{}
	top := map[int]watermark.Mark{}
	var wg sync.WaitGroup
	for si, s := range stores {
		for g := range perStore {
			wg.Go(func() {
				r := rand.New(rand.NewPCG(uint64(si), uint64(g)))
				for l := int32(1); l <= int32(levels); l++ {
					for range 2 {
						id := slotOf{key: r.IntN(keys), level: l, round: r.Int32N(3)}
						m := watermark.Mark{Level: l, Round: id.round, HasDigest: true,
							Digest: [32]byte{byte(si), byte(g), byte(l), byte(id.round), 0x77}}
						_, err := s.Advance(context.Background(), Key(0, id.key, watermark.Attestation), m)
						mu.Lock()
						switch {
						case err == nil:
							accepted++
							if d, ok := seen[id]; ok && d != m.Digest {
								t.Errorf("double sign: key %d level %d round %d accepted %x and %x", id.key, l, id.round, d[:5], m.Digest[:5])
							}
							seen[id] = m.Digest
							if old, ok := top[id.key]; !ok || watermark.Allowed(old, true, m) {
								top[id.key] = m
							}
						case watermark.IsConflict(err):
							refused++
						default:
							t.Errorf("store %d: %v", si, err)
						}
						mu.Unlock()
					}
				}
			})
		}
	}
	wg.Wait()
	if accepted == 0 || refused == 0 {
		t.Errorf("accepted %d, refused %d: the load did not collide", accepted, refused)
	}
	for key, m := range top {
		for si, s := range stores {
			if got, ok := Stored(t, s, Key(0, key, watermark.Attestation)); !ok || got != m {
				t.Errorf("store %d: key %d stored %+v, want the highest accepted %+v", si, key, got, m)
			}
		}
	}
	return accepted, refused
}

// StoreDown records a mark, calls stop, checks that Advance and Health fail with a store error
// (never nil, never a conflict) for requests above, at and below the mark, calls start, and
// checks that the old mark is still enforced and that signing resumes.
func StoreDown(t *testing.T, s watermark.Store, stop, start func()) {
	t.Helper()
	ctx := context.Background()
	k := Key(0, 0, watermark.Block)
	MustAdvance(t, s, k, Mark(10, 1, 1))
	stop()
	for i, m := range []watermark.Mark{Mark(11, 0, 2), Mark(10, 1, 1), Mark(9, 0, 3)} {
		_, err := s.Advance(ctx, k, m)
		if err == nil || watermark.IsConflict(err) {
			t.Fatalf("request %d with the store down: Advance = %v, want a store error", i, err)
		}
		if kind := fault.KindOf(err); kind != fault.Unavailable && kind != fault.Internal {
			t.Fatalf("store down: error of kind %v: %v", kind, err)
		}
		if i == 0 {
			t.Logf("store down: %v", err)
		}
	}
	if err := s.Health(ctx); err == nil {
		t.Fatal("Health with the store down = nil")
	}
	start()
	// The client reconnects in its own time (seconds on a loaded machine); what is tested is what
	// the store enforces once it answers again.
	testdaemon.Eventually(t, time.Minute, "Health after restart", func() error { return s.Health(ctx) })
	MustRefuse(t, s, k, Mark(10, 1, 9))
	MustRefuse(t, s, k, Mark(10, 0, 9))
	MustAdvance(t, s, k, Mark(10, 1, 1)) // identical re-sign
	MustAdvance(t, s, k, Mark(11, 0, 2))
}
