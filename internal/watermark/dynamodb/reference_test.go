package dynamodb

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	ddb "github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	tz "github.com/ecadlabs/gotez/v2"

	"github.com/signatory-go/signatory/internal/fault"
	"github.com/signatory-go/signatory/internal/watermark"
	"github.com/signatory-go/signatory/internal/watermark/dynamodb/dynamotest"
	wt "github.com/signatory-go/signatory/internal/watermark/watermarktest"
)

// refItem is an item in the reference's exact shape (no signature attribute).
// referenceItem is the reference's item struct: fixtures are what the AWS SDK makes of it.
type referenceItem = dynamotest.ReferenceItem

// refItem is the reference's item for a mark of k under kind.
func refItem(k watermark.Key, kind string, level, round int32, digest [32]byte) map[string]types.AttributeValue {
	h := tz.BlockPayloadHash(digest)
	return refItemOf(referenceItem{Idx: k.Chain + "/" + k.PKH, Request: kind, Level: level, Round: round, Digest: &h})
}

func refItemOf(r referenceItem) map[string]types.AttributeValue {
	it, err := attributevalue.MarshalMap(&r)
	if err != nil {
		panic(err)
	}
	return it
}

// referenceReads is the reference's read of an item: UnmarshalMap into its struct.
func referenceReads(it map[string]types.AttributeValue) (referenceItem, error) {
	var r referenceItem
	err := attributevalue.UnmarshalMap(it, &r)
	return r, err
}

// refPut writes a reference item unconditionally (a table the reference left behind).
func refPut(t testing.TB, s *Store, k watermark.Key, kind string, level, round int32, digest [32]byte) {
	t.Helper()
	rawPut(t, s, refItem(k, kind, level, round, digest))
}

func rawPut(t testing.TB, s *Store, it map[string]types.AttributeValue) {
	t.Helper()
	if _, err := s.client.PutItem(t.Context(), &ddb.PutItemInput{TableName: aws.String(s.table), Item: it}); err != nil {
		t.Fatal(err)
	}
}

// referenceSigns is the reference's own write for a request (its watermark check): a PutItem
// conditioned on a strictly higher (level, round). It reports whether the reference would sign.
func referenceSigns(t testing.TB, s *Store, k watermark.Key, kind string, level, round int32, digest [32]byte) bool {
	t.Helper()
	_, err := s.client.PutItem(t.Context(), &ddb.PutItemInput{
		TableName:                 aws.String(s.table),
		Item:                      refItem(k, kind, level, round, digest),
		ConditionExpression:       aws.String("attribute_not_exists(idx) OR lvl < :l OR (lvl = :l AND round < :r)"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":l": num(level), ":r": num(round)},
	})
	if err != nil && !isCondFailed(err) {
		t.Fatal(err)
	}
	return err == nil
}

// rawItem reads one item as stored (nil when there is none).
func rawItem(t testing.TB, s *Store, k watermark.Key, kind string) map[string]types.AttributeValue {
	t.Helper()
	out, err := s.client.GetItem(t.Context(), &ddb.GetItemInput{
		TableName: aws.String(s.table), Key: itemKey(k, kind), ConsistentRead: aws.Bool(true)})
	if err != nil {
		t.Fatal(err)
	}
	return out.Item
}

// rawMark reads one item's mark as stored.
func rawMark(t testing.TB, s *Store, k watermark.Key, kind string) (watermark.Mark, bool) {
	t.Helper()
	it := rawItem(t, s, k, kind)
	if it == nil {
		return watermark.Mark{}, false
	}
	m, err := parseMark(it)
	if err != nil {
		t.Fatal(err)
	}
	return m, true
}

func mustLoad(t testing.TB, s *Store, k watermark.Key, want watermark.Mark) {
	t.Helper()
	if m, ok, err := s.Load(t.Context(), k); err != nil || !ok || m != want {
		t.Fatalf("Load(%v) = %+v, %v, %v; want %+v", k, m, ok, err, want)
	}
}

// TestReferenceDALItem: the reference's attestation_with_dal item blocks our attestations below it
// and other bytes at its level and round, whatever the attestation item holds; it is what Load and
// List show while it is the higher; it does not touch the other classes.
func TestReferenceDALItem(t *testing.T) {
	t.Parallel()
	srv := dynamotest.Start(t)
	s := open(t, srv, newTable(), 10*time.Second)
	defer s.Close()
	x, y := [32]byte{0xD1}, [32]byte{0xD2}
	dalX := watermark.Mark{Level: 100, Round: 2, Digest: x, HasDigest: true}

	for _, pkh := range []string{wt.SecpPKH(1), wt.PKH(1)} {
		k := watermark.Key{Chain: wt.Chain(0), PKH: pkh, Class: watermark.Attestation}
		refPut(t, s, k, "attestation", 50, 0, y) // the reference's plain attestations were lower
		refPut(t, s, k, requestDAL, 100, 2, x)
		mustLoad(t, s, k, dalX)
		if m, _ := wt.Stored(t, s, k); m != dalX {
			t.Fatalf("List shows %+v, want the attestation_with_dal mark %+v", m, dalX)
		}
		for _, m := range []watermark.Mark{
			wt.SignedMark(100, 2, 0xD2, 1), // other bytes at its level and round
			wt.SignedMark(100, 1, 0xD2, 2), // a lower round
			wt.SignedMark(99, 7, 0xD2, 3),  // a lower level
			wt.SignedMark(60, 0, 0xD2, 4),  // above the attestation item, below the other one
		} {
			wt.MustRefuse(t, s, k, m)
		}
		if m, ok := rawMark(t, s, k, "attestation"); !ok || m.Level != 50 {
			t.Fatalf("a refusal changed the attestation item: %+v", m)
		}
		// Other classes of the key are not the DAL item's business.
		for _, c := range []watermark.Class{watermark.Block, watermark.Preattestation} {
			wt.MustAdvanceSig(t, s, watermark.Key{Chain: k.Chain, PKH: pkh, Class: c}, wt.SignedMark(100, 2, 0xD2, 5), 5)
		}
	}

	// The same bytes as the reference's DAL attestation: an ECDSA key cannot sign them again (its
	// signature is unknown); a deterministic one signs them again and the signature is recorded.
	k2 := watermark.Key{Chain: wt.Chain(0), PKH: wt.SecpPKH(1), Class: watermark.Attestation}
	wt.MustRefuse(t, s, k2, watermark.Mark{Level: 100, Round: 2, Digest: x, HasDigest: true, Signature: wt.Signature(6)})
	k1 := watermark.Key{Chain: wt.Chain(0), PKH: wt.PKH(1), Class: watermark.Attestation}
	same := func(sig int) watermark.Mark { m := dalX; m.Signature = wt.Signature(sig); return m }
	wt.MustAdvanceSig(t, s, k1, same(7), 7)
	wt.MustAdvanceSig(t, s, k1, same(8), 7)
	mustLoad(t, s, k1, same(7))

	// Above the DAL item: signed, and the DAL item follows.
	wt.MustAdvanceSig(t, s, k2, wt.SignedMark(100, 3, 0xD2, 9), 9)
	mustLoad(t, s, k2, wt.SignedMark(100, 3, 0xD2, 9))
	if m, _ := rawMark(t, s, k2, requestDAL); m.Level != 100 || m.Round != 3 {
		t.Fatalf("attestation_with_dal item = %+v, want raised to 100/3", m)
	}
	es, err := s.List(t.Context())
	if err != nil || len(es) != 6 {
		t.Fatalf("List = %v, %v; want 6 entries (the DAL items folded)", es, err)
	}
}

// TestDALItemRaised: after this store records an attestation at level L (signed, identical, or
// imported), the attestation_with_dal item is at L or above, so the reference started again on
// the table refuses a DAL attestation at L and below, and takes one above.
func TestDALItemRaised(t *testing.T) {
	t.Parallel()
	srv := dynamotest.Start(t)
	s := open(t, srv, newTable(), 10*time.Second)
	defer s.Close()
	other := [32]byte{0xEE}
	k := watermark.Key{Chain: wt.Chain(1), PKH: wt.SecpPKH(1), Class: watermark.Attestation}
	refPut(t, s, k, requestDAL, 5, 0, other) // the reference's DAL attestation, lower
	for i, m := range []watermark.Mark{wt.SignedMark(10, 0, 1, 1), wt.SignedMark(10, 1, 2, 2), wt.Mark(12, 0, 3), wt.SignedMark(20, 3, 4, 4)} {
		if _, err := s.Advance(t.Context(), k, m); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		if d, ok := rawMark(t, s, k, requestDAL); !ok || d.Level < m.Level || (d.Level == m.Level && d.Round < m.Round) {
			t.Fatalf("step %d: after attesting %d/%d the attestation_with_dal item is %+v", i, m.Level, m.Round, d)
		}
		for _, r := range []int32{0, m.Round} {
			if referenceSigns(t, s, k, requestDAL, m.Level, r, other) {
				t.Fatalf("step %d: the reference would sign a DAL attestation at %d/%d", i, m.Level, r)
			}
		}
	}
	if d, _ := rawMark(t, s, k, requestDAL); d != wt.SignedMark(20, 3, 4, 4) {
		t.Fatalf("attestation_with_dal item = %+v, want the attestation mark", d)
	}
	// Identical requests find it raised already; the reference may go on above.
	wt.MustAdvanceSig(t, s, k, wt.SignedMark(20, 3, 4, 5), 4)
	if !referenceSigns(t, s, k, requestDAL, 21, 0, other) {
		t.Fatal("the reference cannot sign above our mark")
	}
	// Blocks and preattestations have no second item.
	wt.MustAdvance(t, s, watermark.Key{Chain: k.Chain, PKH: k.PKH, Class: watermark.Block}, wt.SignedMark(30, 0, 1, 1))
	es, err := s.List(t.Context())
	if err != nil || len(es) != 2 {
		t.Fatalf("List = %v, %v", es, err)
	}
}

// TestDALCrashWindow: an attestation item left ahead of the attestation_with_dal item (a crash
// between the two writes, its signature never released) is healed by the next identical
// request or Load, which raise the item before they return the signature; and if the reference
// signed a DAL attestation at that level meanwhile, the stored signature is never released.
func TestDALCrashWindow(t *testing.T) {
	t.Parallel()
	srv := dynamotest.Start(t)
	s := open(t, srv, newTable(), 10*time.Second)
	defer s.Close()
	other := [32]byte{0xEE}
	for i, viaLoad := range []bool{false, true} {
		k := watermark.Key{Chain: wt.Chain(2), PKH: wt.SecpPKH(i), Class: watermark.Attestation}
		rawPut(t, s, item(k, "attestation", wt.SignedMark(20, 0, 1, 1)))
		if viaLoad {
			mustLoad(t, s, k, wt.SignedMark(20, 0, 1, 1))
		} else {
			wt.MustAdvanceSig(t, s, k, wt.SignedMark(20, 0, 1, 2), 1)
		}
		if referenceSigns(t, s, k, requestDAL, 20, 0, other) {
			t.Fatalf("viaLoad=%v: the reference would sign a DAL attestation at 20 after ours was returned", viaLoad)
		}
	}
	// The reference ran before any request healed the window, and signed other bytes at 20/0.
	k := watermark.Key{Chain: wt.Chain(2), PKH: wt.SecpPKH(9), Class: watermark.Attestation}
	rawPut(t, s, item(k, "attestation", wt.SignedMark(20, 0, 1, 1)))
	if !referenceSigns(t, s, k, requestDAL, 20, 0, other) {
		t.Fatal("setup: the reference should sign at 20/0")
	}
	wt.MustRefuse(t, s, k, wt.SignedMark(20, 0, 1, 2))
	mustLoad(t, s, k, wt.Mark(20, 0, 1)) // the attestation item's mark, without its signature
	if m, _ := wt.Stored(t, s, k); m.Signature != "" {
		t.Fatalf("List offers the signature: %+v", m)
	}
	wt.MustAdvanceSig(t, s, k, wt.SignedMark(20, 1, 3, 3), 3)
}

// TestItemsWithoutSignature: items written before signatures were kept (our layout without the
// signature attribute) read with Signature "" and are enforced: identical bytes of an ECDSA key
// are refused, those of a deterministic key are signed again and the signature recorded.
func TestItemsWithoutSignature(t *testing.T) {
	t.Parallel()
	srv := dynamotest.Start(t)
	s := open(t, srv, newTable(), 10*time.Second)
	defer s.Close()
	d := [32]byte{0x0D}
	for _, c := range []watermark.Class{watermark.Block, watermark.Preattestation, watermark.Attestation} {
		k2 := watermark.Key{Chain: wt.Chain(3), PKH: wt.SecpPKH(1), Class: c}
		k1 := watermark.Key{Chain: wt.Chain(3), PKH: wt.PKH(1), Class: c}
		old := watermark.Mark{Level: 9, Round: 0, Digest: d, HasDigest: true}
		for _, k := range []watermark.Key{k1, k2} {
			refPut(t, s, k, string(c), 9, 0, d)
			mustLoad(t, s, k, old)
		}
		withSig := func(i int) watermark.Mark { m := old; m.Signature = wt.Signature(i); return m }

		wt.MustRefuse(t, s, k2, withSig(1))
		wt.MustAdvance(t, s, k2, old) // an import of the same mark changes nothing
		if m, _ := rawMark(t, s, k2, string(c)); m != old {
			t.Fatalf("%s: tz2 item = %+v, want unchanged", c, m)
		}
		wt.MustRefuse(t, s, k2, wt.SignedMark(9, 0, 2, 2))

		wt.MustAdvanceSig(t, s, k1, withSig(3), 3)
		wt.MustAdvanceSig(t, s, k1, withSig(4), 3)
		mustLoad(t, s, k1, withSig(3))
		if m, _ := rawMark(t, s, k1, string(c)); m != withSig(3) {
			t.Fatalf("%s: tz1 item = %+v, want the signature recorded", c, m)
		}
		if m, _ := wt.Stored(t, s, k1); m != withSig(3) {
			t.Fatalf("%s: List shows %+v", c, m)
		}
		wt.MustRefuse(t, s, k1, wt.SignedMark(9, 0, 2, 5))
		if c == watermark.Attestation {
			if m, ok := rawMark(t, s, k1, requestDAL); !ok || m.Level != 9 {
				t.Fatalf("attestation_with_dal item = %+v (present %v), want raised to 9", m, ok)
			}
		}
	}
}

// hookClient runs afterRead after each consistent read of an item, to change the item between
// the store's read and its conditional write.
type hookClient struct {
	api
	reads     atomic.Int32
	afterRead func(n int32)
}

func (h *hookClient) GetItem(ctx context.Context, in *ddb.GetItemInput, opt ...func(*ddb.Options)) (*ddb.GetItemOutput, error) {
	out, err := h.api.GetItem(ctx, in, opt...)
	h.afterRead(h.reads.Add(1))
	return out, err
}

func (h *hookClient) Query(ctx context.Context, in *ddb.QueryInput, opt ...func(*ddb.Options)) (*ddb.QueryOutput, error) {
	out, err := h.api.Query(ctx, in, opt...)
	h.afterRead(h.reads.Add(1))
	return out, err
}

// TestCompareAndSwap: a signature recorded over an item without one is written only if the item
// is still as read; when another writer changes it in between, the store reads again and decides
// anew (the other writer's signature is returned, or a higher mark refuses), and an item that
// keeps changing ends in an Internal error after a bounded number of rounds, nothing written.
func TestCompareAndSwap(t *testing.T) {
	t.Parallel()
	srv := dynamotest.Start(t)
	s := open(t, srv, newTable(), 10*time.Second)
	defer s.Close()
	base := s.client
	d := [32]byte{0x0C}
	old := watermark.Mark{Level: 9, Round: 0, Digest: d, HasDigest: true}
	withSig := func(i int) watermark.Mark { m := old; m.Signature = wt.Signature(i); return m }

	for _, c := range []watermark.Class{watermark.Block, watermark.Attestation} {
		t.Run(string(c), func(t *testing.T) {
			// Another signer records its signature for the same bytes between our read and write.
			k := watermark.Key{Chain: wt.Chain(4), PKH: wt.PKH(1), Class: c}
			refPut(t, s, k, string(c), 9, 0, d)
			h := &hookClient{api: base}
			h.afterRead = func(n int32) {
				if n == 1 {
					rawPut(t, s, item(k, string(c), withSig(8)))
				}
			}
			s.client = h
			wt.MustAdvanceSig(t, s, k, withSig(1), 8)
			if n := h.reads.Load(); n != 2 {
				t.Fatalf("%d reads, want 2", n)
			}

			// Another signer goes higher in between: refused.
			k = watermark.Key{Chain: wt.Chain(4), PKH: wt.PKH(2), Class: c}
			refPut(t, s, k, string(c), 9, 0, d)
			h = &hookClient{api: base}
			h.afterRead = func(n int32) {
				if n == 1 {
					rawPut(t, s, item(k, string(c), wt.SignedMark(10, 0, 3, 3)))
				}
			}
			s.client = h
			wt.MustRefuse(t, s, k, withSig(1))

			// The item changes after every read (its round attribute comes and goes: the same
			// mark to Decide, another item to the condition).
			k = watermark.Key{Chain: wt.Chain(4), PKH: wt.PKH(3), Class: c}
			refPut(t, s, k, string(c), 9, 0, d)
			h = &hookClient{api: base}
			h.afterRead = func(n int32) {
				it := refItem(k, string(c), 9, 0, d)
				if n%2 == 1 {
					delete(it, "round")
				}
				rawPut(t, s, it)
			}
			s.client = h
			_, err := s.Advance(t.Context(), k, withSig(1))
			if fault.KindOf(err) != fault.Internal || !strings.Contains(err.Error(), "kept changing") {
				t.Fatalf("Advance over an item that keeps changing = %v", err)
			}
			if n := h.reads.Load(); n != casAttempts {
				t.Fatalf("%d reads, want %d", n, casAttempts)
			}
			s.client = base
			if m, _ := rawMark(t, s, k, string(c)); m.Signature != "" {
				t.Fatalf("item = %+v, want no signature written", m)
			}
		})
	}
}

// TestConcurrentAttestations: two stores (two signer processes) over one table race on one ECDSA
// key's attestations, at each level with two payloads and a signature per request: one payload
// wins, every winner gets one signature, and the attestation_with_dal item ends at the mark.
func TestConcurrentAttestations(t *testing.T) {
	t.Parallel()
	srv := dynamotest.Start(t)
	table := newTable()
	stores := []*Store{open(t, srv, table, 10*time.Second), open(t, srv, table, 10*time.Second)}
	defer stores[0].Close()
	defer stores[1].Close()
	k := watermark.Key{Chain: wt.Chain(5), PKH: wt.SecpPKH(5), Class: watermark.Attestation}
	for level := int32(1); level <= 4; level++ {
		const n = 10
		got := make([]watermark.Mark, n)
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				got[i], errs[i] = stores[i%2].Advance(t.Context(), k, wt.SignedMark(level, 0, byte(10*level)+byte(i/5), int(level)*100+i))
			})
		}
		wg.Wait()
		var winner *watermark.Mark
		for i := range n {
			switch {
			case errs[i] == nil && winner == nil:
				winner = &got[i]
			case errs[i] == nil:
				if got[i] != *winner {
					t.Fatalf("level %d: two records released: %+v and %+v", level, *winner, got[i])
				}
			case !watermark.IsConflict(errs[i]):
				t.Fatalf("level %d, request %d: %v", level, i, errs[i])
			}
		}
		if winner == nil {
			t.Fatalf("level %d: every request refused", level)
		}
		for _, s := range stores {
			mustLoad(t, s, k, *winner)
		}
		if m, _ := rawMark(t, stores[0], k, requestDAL); m != *winner {
			t.Fatalf("level %d: attestation_with_dal item = %+v, want %+v", level, m, *winner)
		}
	}
}

// TestUnreadableDALItem: an attestation_with_dal item that cannot be parsed may hide a higher
// mark, so attestations of that key fail as Internal (not a conflict) rather than guess; the
// other classes go on, and List fails naming the item (an export must not drop it).
func TestUnreadableDALItem(t *testing.T) {
	t.Parallel()
	srv := dynamotest.Start(t)
	s := open(t, srv, newTable(), 10*time.Second)
	defer s.Close()
	k := watermark.Key{Chain: wt.Chain(6), PKH: wt.SecpPKH(6), Class: watermark.Attestation}
	it := refItem(k, requestDAL, 40, 0, [32]byte{1})
	it["lvl"] = &types.AttributeValueMemberS{Value: "forty"}
	rawPut(t, s, it)
	_, err := s.Advance(t.Context(), k, wt.SignedMark(41, 0, 2, 2))
	if err == nil || watermark.IsConflict(err) || fault.KindOf(err) != fault.Internal {
		t.Fatalf("Advance = %v, want an Internal error", err)
	}
	if _, _, err := s.Load(t.Context(), k); fault.KindOf(err) != fault.Internal {
		t.Fatalf("Load = %v, want an Internal error", err)
	}
	if _, ok := rawMark(t, s, k, "attestation"); ok {
		t.Fatal("an attestation item was written")
	}
	wt.MustAdvance(t, s, watermark.Key{Chain: k.Chain, PKH: k.PKH, Class: watermark.Block}, wt.SignedMark(41, 0, 2, 2))
	if es, err := s.List(t.Context()); err == nil || !strings.Contains(err.Error(), k.PKH+"/attestation_with_dal") {
		t.Fatalf("List = %v, %v; want an error naming the item", es, err)
	}
}

// TestReferenceEncodingBothWays: items as the reference writes them (its struct through the AWS
// SDK: the digest Binary, or NULL) are read, respected and raised; and every item this store
// writes, with a digest or without, with a signature or without, is read by the reference's own
// decoding (attributevalue.UnmarshalMap into its struct) as the same level, round and digest.
func TestReferenceEncodingBothWays(t *testing.T) {
	t.Parallel()
	srv := dynamotest.Start(t)
	s := open(t, srv, newTable(), 10*time.Second)
	defer s.Close()
	block := watermark.Key{Chain: wt.Chain(7), PKH: wt.SecpPKH(7), Class: watermark.Block}
	att := watermark.Key{Chain: wt.Chain(7), PKH: wt.SecpPKH(7), Class: watermark.Attestation}
	pre := watermark.Key{Chain: wt.Chain(7), PKH: wt.SecpPKH(7), Class: watermark.Preattestation}
	d := [32]byte{9, 9}
	rawPut(t, s, refItem(block, "block", 50, 1, d))
	rawPut(t, s, refItem(att, "attestation", 60, 0, d))
	rawPut(t, s, refItemOf(referenceItem{Idx: pre.Chain + "/" + pre.PKH, Request: "preattestation", Level: 70})) // NULL digest
	if _, ok := refItem(block, "block", 1, 0, d)["digest"].(*types.AttributeValueMemberB); !ok {
		t.Fatal("the reference's digest is not Binary: the fixture does not show the reference's encoding")
	}
	mustLoad(t, s, block, watermark.Mark{Level: 50, Round: 1, Digest: d, HasDigest: true})
	mustLoad(t, s, pre, watermark.Mark{Level: 70})
	es, err := s.List(t.Context())
	if err != nil || len(es) != 3 {
		t.Fatalf("List = %v, %v", es, err)
	}
	// At and below the reference's marks: refused (identical bytes at the mark excepted).
	wt.MustRefuse(t, s, block, wt.Mark(50, 1, 3))
	wt.MustRefuse(t, s, block, wt.Mark(49, 9, 3))
	wt.MustRefuse(t, s, att, wt.Mark(60, 0, 3))
	wt.MustRefuse(t, s, pre, wt.Mark(70, 0, 3))
	// Raised by us; then the reference reads each item back.
	wt.MustAdvance(t, s, block, wt.SignedMark(51, 0, 4, 4))
	wt.MustAdvance(t, s, att, wt.SignedMark(61, 0, 5, 5))
	wt.MustAdvance(t, s, pre, watermark.Mark{Level: 71}) // a mark without a digest (as an import may hold)
	for _, c := range []struct {
		k    watermark.Key
		kind string
		want watermark.Mark
	}{{block, "block", wt.SignedMark(51, 0, 4, 4)}, {att, "attestation", wt.SignedMark(61, 0, 5, 5)}, {att, requestDAL, wt.SignedMark(61, 0, 5, 5)}, {pre, "preattestation", watermark.Mark{Level: 71}}} {
		it := rawItem(t, s, c.k, c.kind)
		if it == nil {
			t.Fatalf("no %s item", c.kind)
		}
		r, err := referenceReads(it)
		if err != nil {
			t.Fatalf("the reference cannot read our %s item: %v", c.kind, err)
		}
		if r.Level != c.want.Level || r.Round != c.want.Round || (r.Digest != nil) != c.want.HasDigest ||
			r.Digest != nil && [32]byte(*r.Digest) != c.want.Digest || r.Request != c.kind || r.Idx != c.k.Chain+"/"+c.k.PKH {
			t.Fatalf("the reference reads our %s item as %+v, want %+v", c.kind, r, c.want)
		}
	}
}

// TestPutExactOverNull: the conditional write of a mark over an item exactly as read holds when
// the item's digest is NULL (as the reference writes a mark without one), and fails once the item
// changed.
func TestPutExactOverNull(t *testing.T) {
	t.Parallel()
	srv := dynamotest.Start(t)
	s := open(t, srv, newTable(), 10*time.Second)
	defer s.Close()
	k := watermark.Key{Chain: wt.Chain(8), PKH: wt.SecpPKH(8), Class: watermark.Block}
	rawPut(t, s, refItemOf(referenceItem{Idx: k.Chain + "/" + k.PKH, Request: "block", Level: 5}))
	read := rawItem(t, s, k, "block")
	if _, null := read["digest"].(*types.AttributeValueMemberNULL); !null {
		t.Fatalf("the fixture's digest is %T, not NULL", read["digest"])
	}
	if err := s.putExact(t.Context(), k, wt.SignedMark(6, 0, 1, 1), read); err != nil {
		t.Fatalf("over the item as read: %v", err)
	}
	if err := s.putExact(t.Context(), k, wt.SignedMark(7, 0, 1, 1), read); !isCondFailed(err) {
		t.Fatalf("over an item changed since: %v", err)
	}
	mustLoad(t, s, k, wt.SignedMark(6, 0, 1, 1))
}

// TestItemsOfEarlierWriters: an item without a round (read as round 0) is raised by a higher round
// at its level and refuses round 0 with other bytes; an item whose digest is a vh… string (earlier
// versions of this store) takes the signature of identical bytes and keeps refusing others.
func TestItemsOfEarlierWriters(t *testing.T) {
	t.Parallel()
	srv := dynamotest.Start(t)
	s := open(t, srv, newTable(), 10*time.Second)
	defer s.Close()
	noRound := watermark.Key{Chain: wt.Chain(9), PKH: wt.SecpPKH(9), Class: watermark.Block}
	it := refItem(noRound, "block", 5, 0, [32]byte{3})
	delete(it, "round")
	rawPut(t, s, it)
	wt.MustRefuse(t, s, noRound, wt.Mark(5, 0, 4))
	wt.MustAdvance(t, s, noRound, wt.SignedMark(5, 1, 4, 4))
	mustLoad(t, s, noRound, wt.SignedMark(5, 1, 4, 4))

	str := watermark.Key{Chain: wt.Chain(9), PKH: wt.PKH(9), Class: watermark.Preattestation} // tz1: identical bytes may take a signature
	d := wt.Mark(8, 0, 6).Digest
	old := refItem(str, "preattestation", 8, 0, d)
	old["digest"] = &types.AttributeValueMemberS{Value: tz.BlockPayloadHash(d).String()}
	rawPut(t, s, old)
	wt.MustRefuse(t, s, str, wt.Mark(8, 0, 7))
	wt.MustAdvance(t, s, str, wt.SignedMark(8, 0, 6, 6)) // identical bytes: the signature is recorded
	mustLoad(t, s, str, wt.SignedMark(8, 0, 6, 6))
	wt.MustRefuse(t, s, str, wt.SignedMark(8, 0, 7, 7))
}
