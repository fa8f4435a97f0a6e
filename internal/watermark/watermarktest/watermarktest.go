// Package watermarktest is the conformance suite that every watermark.Store backend passes (Run):
// the rule (docs/watermarks.md), independence of classes, chains and keys, persistence and
// concurrency. Shared stores (postgres, etcd, dynamodb) also pass RaceSigners, several signers
// racing through one server, and StoreDown, the server going away and coming back (shared.go).
// BenchAdvance is the benchmark every store runs.
package watermarktest

import (
	"context"
	"encoding/binary"
	"errors"
	"slices"
	"sync"
	"testing"

	tz "github.com/ecadlabs/gotez/v2"

	"github.com/signatory-go/signatory/internal/fault"
	"github.com/signatory-go/signatory/internal/watermark"
)

// Run runs the suite. open returns a new, empty store; it is called from parallel subtests and
// should register its own cleanup of files or tables with t.Cleanup. The suite closes the stores.
// reopen, when not nil, closes old and returns a store over the same data (a restart); pass nil
// for stores that keep nothing.
func Run(t *testing.T, open func(t *testing.T) watermark.Store, reopen func(t *testing.T, old watermark.Store) watermark.Store) {
	sub := func(name string, f func(t *testing.T, s watermark.Store)) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			s := open(t)
			defer s.Close()
			f(t, s)
		})
	}
	sub("WUnit", testWUnit)
	sub("AllowedTable", testAllowedTable)
	sub("ClassesIndependent", testClasses)
	sub("ChainsIndependent", testChains)
	sub("IdenticalResign", testIdentical)
	sub("ListSorted", testListSorted)
	sub("CanceledContext", testCanceled)
	sub("InvalidKey", testInvalidKey)
	sub("ConcurrentSameKey", testConcurrentSameKey)
	sub("ConcurrentManyKeys", testConcurrentManyKeys)
	sub("ConcurrentRisingStress", testRisingStress)
	t.Run("AdvanceAfterClose", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		k := Key(0, 0, watermark.Block)
		MustAdvance(t, s, k, Mark(1, 0, 1))
		if err := s.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		if _, err := s.Advance(context.Background(), k, Mark(2, 0, 2)); err == nil || watermark.IsConflict(err) {
			t.Fatalf("Advance after Close = %v, want a non-conflict error", err)
		}
	})
	if reopen != nil {
		t.Run("Persistence", func(t *testing.T) {
			t.Parallel()
			testPersistence(t, open, reopen)
		})
	}
	runSignatures(t, sub, open, reopen)
}

// Chain returns a valid base58 chain id; Chain(0) is the zero chain.
func Chain(i int) string {
	var c tz.ChainID
	binary.BigEndian.PutUint32(c[:], uint32(i))
	return c.String()
}

// PKH returns a valid tz1 key hash, distinct for each i.
func PKH(i int) string {
	var h tz.Ed25519PublicKeyHash
	binary.BigEndian.PutUint32(h[:], uint32(i))
	return h.String()
}

// Key returns the key of chain Chain(chain), key PKH(pkh) and class c.
func Key(chain, pkh int, c watermark.Class) watermark.Key {
	return watermark.Key{Chain: Chain(chain), PKH: PKH(pkh), Class: c}
}

// Mark returns a mark with digest {d, 0, …}.
func Mark(level, round int32, d byte) watermark.Mark {
	return watermark.Mark{Level: level, Round: round, Digest: [32]byte{d}, HasDigest: true}
}

// MustAdvance fails t unless Advance returns nil.
func MustAdvance(t testing.TB, s watermark.Store, k watermark.Key, m watermark.Mark) {
	t.Helper()
	if _, err := s.Advance(context.Background(), k, m); err != nil {
		t.Fatalf("Advance(%v, %+v) = %v, want nil", k, m, err)
	}
}

// MustRefuse fails t unless Advance returns ErrConflict (kind Conflict).
func MustRefuse(t testing.TB, s watermark.Store, k watermark.Key, m watermark.Mark) {
	t.Helper()
	_, err := s.Advance(context.Background(), k, m)
	if !watermark.IsConflict(err) || fault.KindOf(err) != fault.Conflict {
		t.Fatalf("Advance(%v, %+v) = %v, want ErrConflict", k, m, err)
	}
}

// Stored returns the stored mark for k, from List.
func Stored(t testing.TB, s watermark.Store, k watermark.Key) (watermark.Mark, bool) {
	t.Helper()
	es, err := s.List(context.Background())
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	for _, e := range es {
		if e.Key == k {
			return e.Mark, true
		}
	}
	return watermark.Mark{}, false
}

func expectStored(t testing.TB, s watermark.Store, k watermark.Key, want watermark.Mark) {
	t.Helper()
	if got, ok := Stored(t, s, k); !ok || got != want {
		t.Fatalf("stored %v = %+v (present %v), want %+v", k, got, ok, want)
	}
}

// testWUnit is the reference's watermark unit table: zero chain, kind0 = block, kind1 = preattestation.
func testWUnit(t *testing.T, s watermark.Store) {
	steps := []struct {
		pkh   int
		class watermark.Class
		level int32
		d     byte
		ok    bool
	}{
		{0, watermark.Block, 124, 0, true},
		{0, watermark.Block, 124, 1, false}, // same level, different digest
		{0, watermark.Block, 123, 2, false}, // lower level
		{0, watermark.Block, 124, 0, true},  // identical repeat
		{1, watermark.Block, 124, 3, true},  // different delegate
		{1, watermark.Block, 125, 4, true},
		{0, watermark.Preattestation, 124, 0, true}, // different kind
	}
	for i, st := range steps {
		k := Key(0, st.pkh, st.class)
		_, err := s.Advance(context.Background(), k, Mark(st.level, 0, st.d))
		if st.ok != (err == nil) || (!st.ok && !watermark.IsConflict(err)) {
			t.Fatalf("step %d: Advance = %v, want ok=%v", i+1, err, st.ok)
		}
	}
	expectStored(t, s, Key(0, 0, watermark.Block), Mark(124, 0, 0))
	expectStored(t, s, Key(0, 1, watermark.Block), Mark(125, 0, 4))
	expectStored(t, s, Key(0, 0, watermark.Preattestation), Mark(124, 0, 0))
}

// testAllowedTable is the reference's Validate table, each case on a fresh key: a success
// replaces the stored mark, a refusal leaves it unchanged.
func testAllowedTable(t *testing.T, s watermark.Store) {
	noHash := watermark.Mark{Level: 1, Round: 1}
	cases := []struct {
		stored, req watermark.Mark
		ok          bool
	}{
		{noHash, Mark(2, 0, 1), true},
		{noHash, Mark(1, 2, 1), true},
		{noHash, Mark(1, 1, 0), false},
		{noHash, watermark.Mark{Level: 1, Round: 1}, false},
		{noHash, Mark(1, 0, 1), false},
		{noHash, Mark(0, 2, 1), false},
		{Mark(1, 1, 0), Mark(2, 0, 1), true},
		{Mark(1, 1, 0), Mark(1, 2, 1), true},
		{Mark(1, 1, 0), Mark(1, 1, 0), true},
		{Mark(1, 1, 0), Mark(1, 0, 1), false},
		{Mark(1, 1, 0), Mark(0, 2, 1), false},
		{Mark(1, 1, 0), Mark(1, 1, 1), false},
		{Mark(6, 3, 0), Mark(7, 2, 1), true},
		{Mark(8, 1, 0), Mark(7, 2, 1), false},
		{Mark(7, 3, 0), Mark(7, 2, 1), false},
	}
	for i, c := range cases {
		k := Key(0, 100+i, watermark.Attestation)
		MustAdvance(t, s, k, c.stored)
		if c.ok {
			MustAdvance(t, s, k, c.req)
			expectStored(t, s, k, c.req)
		} else {
			MustRefuse(t, s, k, c.req)
			expectStored(t, s, k, c.stored)
		}
	}
}

func testClasses(t *testing.T, s watermark.Store) {
	cls := []watermark.Class{watermark.Block, watermark.Preattestation, watermark.Attestation}
	for i, c := range cls {
		MustAdvance(t, s, Key(1, 0, c), Mark(34, 4, byte(10+i)))
	}
	for i, c := range cls {
		MustRefuse(t, s, Key(1, 0, c), Mark(34, 4, byte(20+i)))
		MustAdvance(t, s, Key(1, 0, c), Mark(34, 4, byte(10+i)))
		expectStored(t, s, Key(1, 0, c), Mark(34, 4, byte(10+i)))
	}
}

func testChains(t *testing.T, s watermark.Store) {
	MustAdvance(t, s, Key(1, 0, watermark.Block), Mark(10, 0, 1))
	MustAdvance(t, s, Key(2, 0, watermark.Block), Mark(10, 0, 2))
	MustAdvance(t, s, Key(3, 0, watermark.Block), Mark(5, 0, 3)) // lower level on another chain
	MustRefuse(t, s, Key(1, 0, watermark.Block), Mark(10, 0, 2))
	MustRefuse(t, s, Key(2, 0, watermark.Block), Mark(10, 0, 1))
	expectStored(t, s, Key(3, 0, watermark.Block), Mark(5, 0, 3))
}

func testIdentical(t *testing.T, s watermark.Store) {
	k := Key(0, 0, watermark.Block)
	for range 3 {
		MustAdvance(t, s, k, Mark(2, 0, 0xA1))
	}
	MustRefuse(t, s, k, Mark(2, 0, 0xA2))
	// Without a digest there is nothing to compare: the same level and round is refused.
	k2 := Key(0, 1, watermark.Block)
	MustAdvance(t, s, k2, watermark.Mark{Level: 3})
	MustRefuse(t, s, k2, watermark.Mark{Level: 3})
	MustAdvance(t, s, k2, watermark.Mark{Level: 3, Round: 1})
}

func testListSorted(t *testing.T, s watermark.Store) {
	es, err := s.List(context.Background())
	if err != nil || len(es) != 0 {
		t.Fatalf("List on an empty store = %v, %v", es, err)
	}
	var want []watermark.Entry
	for _, i := range []int{3, 1, 2} {
		for _, p := range []int{7, 5} {
			for _, c := range []watermark.Class{watermark.Preattestation, watermark.Block, watermark.Attestation} {
				e := watermark.Entry{Key: Key(i, p, c), Mark: Mark(int32(i*10+p), 1, byte(p))}
				MustAdvance(t, s, e.Key, e.Mark)
				want = append(want, e)
			}
		}
	}
	slices.SortFunc(want, func(a, b watermark.Entry) int { return watermark.Compare(a.Key, b.Key) })
	got, err := s.List(context.Background())
	if err != nil || !slices.Equal(got, want) {
		t.Fatalf("List = %v, %v\nwant %v", got, err, want)
	}
}

func testCanceled(t *testing.T, s watermark.Store) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	k := Key(0, 0, watermark.Block)
	_, err := s.Advance(ctx, k, Mark(1, 0, 1))
	if err == nil || watermark.IsConflict(err) || fault.KindOf(err) != fault.Unavailable ||
		!errors.Is(err, context.Canceled) {
		t.Fatalf("Advance with a canceled context = %v, want Unavailable wrapping context.Canceled", err)
	}
	if m, ok := Stored(t, s, k); ok {
		t.Fatalf("canceled request was stored: %+v", m)
	}
	MustAdvance(t, s, k, Mark(1, 0, 2))
}

func testInvalidKey(t *testing.T, s watermark.Store) {
	for _, k := range []watermark.Key{
		{Chain: Chain(0), PKH: PKH(0), Class: "generic"},
		{Chain: Chain(0), PKH: PKH(0), Class: "attestation_with_dal"}, // callers map it with ClassOf
		{Chain: Chain(0), PKH: "", Class: watermark.Block},
		{Chain: "", PKH: PKH(0), Class: watermark.Block},
	} {
		if _, err := s.Advance(context.Background(), k, Mark(1, 0, 1)); err == nil || watermark.IsConflict(err) {
			t.Errorf("Advance(%v) = %v, want a non-conflict error", k, err)
		}
	}
}

func testPersistence(t *testing.T, open func(*testing.T) watermark.Store, reopen func(*testing.T, watermark.Store) watermark.Store) {
	s := open(t)
	marks := map[watermark.Key]watermark.Mark{
		Key(0, 0, watermark.Block):          Mark(124, 0, 1),
		Key(0, 0, watermark.Preattestation): Mark(124, 1, 2),
		Key(0, 0, watermark.Attestation):    {Level: 124, Round: 2}, // no digest
		Key(0, 1, watermark.Block):          Mark(7, 2, 3),
		Key(1, 0, watermark.Block):          Mark(1, 0, 4),
	}
	for k, m := range marks {
		MustAdvance(t, s, k, Mark(m.Level-1, 0, 0xFF)) // overwritten below
		MustAdvance(t, s, k, m)
	}
	s = reopen(t, s)
	defer func() { s.Close() }()
	for range 2 {
		for k, m := range marks {
			expectStored(t, s, k, m)
		}
		es, err := s.List(context.Background())
		if err != nil || len(es) != len(marks) {
			t.Fatalf("List after reopen = %v, %v; want %d entries", es, err, len(marks))
		}
		MustRefuse(t, s, Key(0, 0, watermark.Block), Mark(124, 0, 9))
		MustAdvance(t, s, Key(0, 0, watermark.Block), Mark(124, 0, 1))
		MustRefuse(t, s, Key(0, 0, watermark.Attestation), watermark.Mark{Level: 124, Round: 2})
		MustRefuse(t, s, Key(0, 1, watermark.Block), Mark(6, 9, 9))
		s = reopen(t, s) // the refusals and the identical re-sign change nothing
	}
}

// SecpPKH returns a valid tz2 (secp256k1, ECDSA) key hash, distinct for each i.
func SecpPKH(i int) string {
	var h tz.Secp256k1PublicKeyHash
	binary.BigEndian.PutUint32(h[:], uint32(i))
	return h.String()
}

// Signature returns a valid base58 generic signature ("sig…"), distinct for each i. Stores keep
// signatures as opaque text; the signer parses and verifies them.
func Signature(i int) string {
	var s tz.GenericSignature
	binary.BigEndian.PutUint32(s[:], uint32(i))
	return s.String()
}

// SignedMark returns Mark(level, round, d) carrying signature Signature(sig).
func SignedMark(level, round int32, d byte, sig int) watermark.Mark {
	m := Mark(level, round, d)
	m.Signature = Signature(sig)
	return m
}

// MustAdvanceSig fails t unless Advance returns nil and the record whose signature is Signature(want).
func MustAdvanceSig(t testing.TB, s watermark.Store, k watermark.Key, m watermark.Mark, want int) {
	t.Helper()
	got, err := s.Advance(context.Background(), k, m)
	if err != nil {
		t.Fatalf("Advance(%v, %+v) = %v, want nil", k, m, err)
	}
	if got.Signature != Signature(want) || got.Level != m.Level || got.Round != m.Round || got.Digest != m.Digest {
		t.Fatalf("Advance(%v, %+v) returned %+v, want the record of signature %d", k, m, got, want)
	}
}

// runSignatures is the part of the suite about stored signatures: the first signature released
// for a mark is returned for every identical request, never a second one; an imported mark
// without a signature refuses identical ECDSA bytes and records a deterministic signature;
// Load returns what is stored; concurrent identical commits all get one signature.
// sub is Run's: each test on a fresh store, in parallel.
func runSignatures(t *testing.T, sub func(string, func(*testing.T, watermark.Store)),
	open func(t *testing.T) watermark.Store, reopen func(t *testing.T, old watermark.Store) watermark.Store) {
	sub("StoredSignature", testStoredSignature)
	sub("UnsignedImportedMark", testUnsignedMark)
	sub("Load", testLoad)
	sub("ConcurrentIdenticalCommits", testConcurrentIdentical)
	if reopen != nil {
		t.Run("SignaturePersistence", func(t *testing.T) {
			t.Parallel()
			s := open(t)
			k := watermark.Key{Chain: Chain(4), PKH: SecpPKH(1), Class: watermark.Block}
			MustAdvanceSig(t, s, k, SignedMark(50, 1, 1, 1), 1)
			s = reopen(t, s)
			defer func() { s.Close() }()
			MustAdvanceSig(t, s, k, SignedMark(50, 1, 1, 2), 1) // the stored signature, not the new one
			if m, ok, err := s.Load(context.Background(), k); err != nil || !ok || m != SignedMark(50, 1, 1, 1) {
				t.Fatalf("Load after reopen = %+v, %v, %v", m, ok, err)
			}
			MustRefuse(t, s, k, SignedMark(50, 1, 2, 3))
		})
	}
}

func testStoredSignature(t *testing.T, s watermark.Store) {
	for _, pkh := range []string{PKH(1), SecpPKH(1)} {
		k := watermark.Key{Chain: Chain(1), PKH: pkh, Class: watermark.Attestation}
		MustAdvanceSig(t, s, k, SignedMark(5, 0, 1, 1), 1)
		for i := range 3 {
			MustAdvanceSig(t, s, k, SignedMark(5, 0, 1, 10+i), 1) // identical bytes: the first signature
		}
		if m, _ := Stored(t, s, k); m.Signature != Signature(1) {
			t.Fatalf("List shows %+v, want signature 1", m)
		}
		_, err := s.Advance(context.Background(), k, SignedMark(5, 0, 2, 2))
		var c *watermark.Conflict
		if !watermark.IsConflict(err) || fault.KindOf(err) != fault.Conflict || err.Error() != "watermark validation failed" {
			t.Fatalf("conflicting bytes: %v", err)
		}
		if errors.As(err, &c) && (c.Stored.Level != 5 || c.Stored.Round != 0) {
			t.Fatalf("conflict names stored %d/%d, want 5/0", c.Stored.Level, c.Stored.Round)
		}
		MustAdvanceSig(t, s, k, SignedMark(5, 1, 3, 3), 3)
		MustAdvanceSig(t, s, k, SignedMark(6, 0, 4, 4), 4)
		MustRefuse(t, s, k, SignedMark(5, 0, 1, 1)) // the old identical bytes are now below the mark
		expectStored(t, s, k, SignedMark(6, 0, 4, 4))
	}
}

func testUnsignedMark(t *testing.T, s watermark.Store) {
	// An ECDSA key: the signature released for the imported mark is unknown, a new one would differ.
	k := watermark.Key{Chain: Chain(2), PKH: SecpPKH(2), Class: watermark.Block}
	MustAdvance(t, s, k, Mark(9, 0, 1))
	MustRefuse(t, s, k, SignedMark(9, 0, 1, 1))
	MustAdvance(t, s, k, Mark(9, 0, 1)) // importing the same mark again changes nothing
	expectStored(t, s, k, Mark(9, 0, 1))
	MustAdvanceSig(t, s, k, SignedMark(9, 1, 2, 2), 2)
	// A deterministic key (tz1): the same bytes give the same signature, which is recorded.
	k1 := watermark.Key{Chain: Chain(2), PKH: PKH(2), Class: watermark.Block}
	MustAdvance(t, s, k1, Mark(9, 0, 1))
	MustAdvanceSig(t, s, k1, SignedMark(9, 0, 1, 5), 5)
	MustAdvanceSig(t, s, k1, SignedMark(9, 0, 1, 6), 5)
	expectStored(t, s, k1, SignedMark(9, 0, 1, 5))
	// An import never lowers a mark nor drops a stored signature.
	MustRefuse(t, s, k1, Mark(8, 0, 7))
	MustAdvance(t, s, k1, Mark(9, 0, 1))
	expectStored(t, s, k1, SignedMark(9, 0, 1, 5))
}

func testLoad(t *testing.T, s watermark.Store) {
	k := watermark.Key{Chain: Chain(3), PKH: SecpPKH(3), Class: watermark.Preattestation}
	if m, ok, err := s.Load(context.Background(), k); err != nil || ok {
		t.Fatalf("Load on an empty slot = %+v, %v, %v", m, ok, err)
	}
	MustAdvanceSig(t, s, k, SignedMark(3, 2, 1, 1), 1)
	MustRefuse(t, s, k, SignedMark(3, 2, 2, 2))
	if m, ok, err := s.Load(context.Background(), k); err != nil || !ok || m != SignedMark(3, 2, 1, 1) {
		t.Fatalf("Load = %+v, %v, %v; want %+v", m, ok, err, SignedMark(3, 2, 1, 1))
	}
	MustAdvance(t, s, watermark.Key{Chain: Chain(3), PKH: SecpPKH(4), Class: watermark.Preattestation}, watermark.Mark{Level: 4})
	if m, ok, err := s.Load(context.Background(), watermark.Key{Chain: Chain(3), PKH: SecpPKH(4), Class: watermark.Preattestation}); err != nil || !ok || m != (watermark.Mark{Level: 4}) {
		t.Fatalf("Load of a mark without digest = %+v, %v, %v", m, ok, err)
	}
}

// testConcurrentIdentical: many commits of the same bytes with different signatures (ECDSA
// signed again by racing requests) release exactly one signature between them.
func testConcurrentIdentical(t *testing.T, s watermark.Store) {
	for level := int32(1); level <= 5; level++ {
		k := watermark.Key{Chain: Chain(5), PKH: SecpPKH(5), Class: watermark.Block}
		const n = 12
		got := make([]watermark.Mark, n)
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				got[i], errs[i] = s.Advance(context.Background(), k, SignedMark(level, 0, byte(level), int(level)*100+i))
			})
		}
		wg.Wait()
		for i := range n {
			if errs[i] != nil {
				t.Fatalf("level %d, request %d: %v", level, i, errs[i])
			}
			if got[i].Signature != got[0].Signature {
				t.Fatalf("level %d: two signatures released for one mark: %s and %s", level, got[0].Signature, got[i].Signature)
			}
		}
		if m, _ := Stored(t, s, k); m.Signature != got[0].Signature {
			t.Fatalf("level %d: stored %s, released %s", level, m.Signature, got[0].Signature)
		}
	}
}
