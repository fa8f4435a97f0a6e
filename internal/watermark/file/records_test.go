package file

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/signatory-go/signatory/internal/watermark"
	"github.com/signatory-go/signatory/internal/watermark/watermarktest"
)

// The journal's record reader, the replay and the chain file's mark reader at their exact bounds:
// each case below is one a moved boundary or a swapped operator in them gets wrong (found by
// mutation testing, see docs/testing.md).

// TestParseRecordBounds: a record is read when it is whole, exactly to the last byte, and never
// when its magic, its checksum or its length is wrong.
func TestParseRecordBounds(t *testing.T) {
	t.Parallel()
	payload := []byte(`{"x":1}`)
	rec := appendRecord(nil, chainMagic, 7, payload)

	// A record with no payload is exactly a header long.
	if r, ok := parseRecord(appendRecord(nil, chainMagic, 7, nil), chainMagic); !ok || r.size != journalHeader || len(r.payload) != 0 {
		t.Fatalf("a header-only record: %+v %v", r, ok)
	}
	// A record that ends exactly where the buffer does.
	if r, ok := parseRecord(rec, chainMagic); !ok || r.size != len(rec) || string(r.payload) != string(payload) || r.epoch != 7 {
		t.Fatalf("a record ending at the buffer's end: %+v %v", r, ok)
	}
	// Every shorter cut is no record, without a panic.
	for n := range len(rec) {
		if _, ok := parseRecord(rec[:n], chainMagic); ok {
			t.Fatalf("a record cut to %d of %d bytes was read", n, len(rec))
		}
	}
	// A length past the buffer, by one byte and by far.
	for _, n := range []uint32{uint32(len(payload) + 1), uint32(len(rec)), math.MaxUint32} {
		b := append([]byte(nil), rec...)
		binary.LittleEndian.PutUint32(b[12:], n)
		if _, ok := parseRecord(b, chainMagic); ok {
			t.Fatalf("a record claiming %d payload bytes of %d was read", n, len(payload))
		}
	}
	// Another magic, with a checksum that matches.
	b := append([]byte(nil), rec...)
	copy(b, "SWJ0")
	if _, ok := parseRecord(b, chainMagic); ok {
		t.Fatal("a record with another magic was read")
	}
	// A changed payload byte.
	b = append([]byte(nil), rec...)
	b[len(b)-2]++
	if _, ok := parseRecord(b, chainMagic); ok {
		t.Fatal("a record whose checksum does not match was read")
	}
}

// TestReplayBounds: replay stops at the first record that is not whole or not of the journal's
// epoch, and calls the journal damaged only when a whole record follows a broken one, wherever
// that record ends.
func TestReplayBounds(t *testing.T) {
	t.Parallel()
	pkh := watermarktest.PKH(0)
	rec := func(epoch uint64, level int32) []byte {
		st := emptyState()
		var slots keyMarks
		slots[classIndex(watermark.Block)] = newSlot(watermarktest.Mark(level, 0, 1))
		st.set(pkh, slots)
		p, err := encodeCompact(st)
		if err != nil {
			t.Fatal(err)
		}
		return appendRecord(nil, chainMagic, epoch, p)
	}
	level := func(st *state) int32 { return st.of(pkh)[classIndex(watermark.Block)].mark.Level }
	damaged := func(b []byte) []byte { b = append([]byte(nil), b...); b[len(b)-2]++; return b }
	cat := func(parts ...[]byte) []byte { return slices.Concat(parts...) }
	zeros := make([]byte, 64)

	// Nothing at all, and only zeros.
	for _, data := range [][]byte{nil, zeros} {
		if tail, err := replayJournal(emptyState(), data, 1); tail != 0 || err != nil {
			t.Fatalf("%d bytes: tail %d, %v", len(data), tail, err)
		}
	}
	// A damaged first record, then zeros: a torn tail at offset 0.
	if tail, err := replayJournal(emptyState(), cat(damaged(rec(1, 5)), zeros), 1); tail != 0 || err != nil {
		t.Fatalf("a torn first record: tail %d, %v", tail, err)
	}
	// Two records, the whole journal: both replayed, the tail at the end.
	st := emptyState()
	data := cat(rec(1, 5), rec(1, 6))
	if tail, err := replayJournal(st, data, 1); tail != len(data) || err != nil || level(st) != 6 {
		t.Fatalf("two records: tail %d of %d, level %d, %v", tail, len(data), level(st), err)
	}
	// A record of another epoch ends the replay: it is not this journal's.
	st = emptyState()
	first := rec(1, 5)
	if tail, err := replayJournal(st, cat(first, rec(2, 9), zeros), 1); tail != len(first) || err != nil || level(st) != 5 {
		t.Fatalf("a record of another epoch: tail %d, level %d, %v", tail, level(st), err)
	}
	// A damaged record followed by a whole one is damage, also when the whole one is a bare
	// header ending exactly at the end of the file.
	for name, after := range map[string][]byte{
		"a record then zeros":         cat(rec(1, 6), zeros),
		"a header-only record at end": appendRecord(nil, chainMagic, 1, nil),
	} {
		_, err := replayJournal(emptyState(), cat(rec(1, 4), damaged(rec(1, 5)), after), 1)
		if err == nil || !strings.Contains(err.Error(), "damaged") {
			t.Fatalf("%s after a damaged record: %v", name, err)
		}
	}
}

// TestRaiseNeverLowers: a replayed record older than the chain file (a crash between the chain
// file's rewrite and the journal's removal) changes nothing, signed or not; only a higher mark, or
// the same level and round with a signature the state lacks, raises it.
func TestRaiseNeverLowers(t *testing.T) {
	t.Parallel()
	pkh := watermarktest.PKH(0)
	at := func(level, round int32, sig string) *state {
		st := emptyState()
		var slots keyMarks
		m := watermarktest.Mark(level, round, 1)
		m.Signature = sig
		slots[classIndex(watermark.Block)] = newSlot(m)
		st.set(pkh, slots)
		return st
	}
	for _, c := range []struct {
		name         string
		have, record *state
		raised       bool
	}{
		{"a lower level, signed, over an unsigned mark", at(10, 0, ""), at(5, 0, "s"), false},
		{"a lower level, signed, over a signed mark", at(10, 0, "a"), at(5, 0, "b"), false},
		{"a lower round, signed, over an unsigned mark", at(10, 1, ""), at(10, 0, "s"), false},
		{"the same round of a lower level, signed", at(10, 1, ""), at(9, 1, "s"), false},
		{"the same mark, signed, over a signed one", at(10, 0, "a"), at(10, 0, "b"), false},
		{"the same mark, unsigned, over a signed one", at(10, 0, "a"), at(10, 0, ""), false},
		{"the same mark, signed, over an unsigned one", at(10, 0, ""), at(10, 0, "s"), true},
		{"a higher round", at(10, 0, "a"), at(10, 1, ""), true},
		{"a higher level, lower round", at(10, 5, "a"), at(11, 0, ""), true},
	} {
		want := c.have.of(pkh)
		if c.raised {
			want = c.record.of(pkh)
		}
		raise(c.have, c.record)
		if got := c.have.of(pkh); got != want {
			t.Errorf("%s: %+v, want %+v", c.name, got[classIndex(watermark.Block)].mark, want[classIndex(watermark.Block)].mark)
		}
	}
}

// TestHigher: the order of marks, at and around each comparison.
func TestHigher(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		a, b [2]int32
		want bool
	}{
		{[2]int32{11, 0}, [2]int32{10, 5}, true},
		{[2]int32{10, 5}, [2]int32{10, 4}, true},
		{[2]int32{10, 4}, [2]int32{10, 4}, false},
		{[2]int32{10, 3}, [2]int32{10, 4}, false},
		{[2]int32{9, 9}, [2]int32{10, 0}, false},
	} {
		a, b := watermarktest.Mark(c.a[0], c.a[1], 1), watermarktest.Mark(c.b[0], c.b[1], 1)
		if got := higher(a, b); got != c.want {
			t.Errorf("higher(%v, %v) = %v", c.a, c.b, got)
		}
	}
}

// TestJournalFillsExactly: a record that fits the journal's last byte is written there; the next
// one makes the journal full, and the file never grows past its preallocated size. The next
// journal has the next epoch, and the full one is gone.
func TestJournalFillsExactly(t *testing.T) {
	t.Parallel()
	c := testChain(t)
	j := newJournal(c.dir, 0, nil)
	c.journal = j
	part := emptyState()
	var slots keyMarks
	slots[classIndex(watermark.Block)] = newSlot(watermarktest.Mark(5, 0, 1))
	part.set(watermarktest.PKH(0), slots)
	payload, err := encodeCompact(part)
	if err != nil {
		t.Fatal(err)
	}
	if err := j.append(c, part, payload); err != nil {
		t.Fatal(err)
	}
	// The journal ends exactly where a second such record would.
	record := int64(journalHeader + len(`{"`+c.id+`":`) + len(payload) + 1)
	size := j.off + record
	path := filepath.Join(c.dir, storeJournalName(1))
	if err := os.Truncate(path, size); err != nil {
		t.Fatal(err)
	}
	j.fsize = size
	if err := j.append(c, part, payload); err != nil {
		t.Fatalf("a record that fits exactly: %v", err)
	}
	if j.epoch != 1 || j.off != size {
		t.Fatalf("a record that fits exactly went to epoch %d, offset %d of %d", j.epoch, j.off, size)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if int64(len(data)) != size {
		t.Fatalf("journal is %d bytes, preallocated %d", len(data), size)
	}
	records := 0
	if tail, err := replayStoreJournal(data, 1, func(string, *state) { records++ }); err != nil || int64(tail) != size || records != 2 {
		t.Fatalf("replay: tail %d of %d, %d chain parts (want 2), %v", tail, size, records, err)
	}
	full := j.f
	if err := j.append(c, part, payload); err != nil {
		t.Fatal(err)
	}
	if j.epoch != 2 || j.records != 3 {
		t.Fatalf("after a record past the end: epoch %d (want 2), %d records written (want 3)", j.epoch, j.records)
	}
	if err := full.Close(); !errors.Is(err, os.ErrClosed) {
		t.Fatalf("the full journal's file was left open (closing it: %v)", err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("the full journal is still there: %v", err)
	}
	if err := j.close(true); err != nil {
		t.Fatal(err)
	}
}

// TestDecodeMarkBounds: levels and rounds are read up to the int32 range and refused one past it;
// a signature needs a hash and must not be empty.
func TestDecodeMarkBounds(t *testing.T) {
	t.Parallel()
	hash := watermarktest.Mark(1, 0, 1)
	h := newSlot(hash).hash
	ok := []string{
		`{"level": 2147483647, "round": 2147483647}`,
		`{"level": -2147483648, "round": -2147483648}`,
		`{"level": 5, "hash": "` + h + `", "signature": "sig"}`,
	}
	bad := []string{
		`{"level": 2147483648}`,
		`{"level": -2147483649}`,
		`{"level": 5, "round": 2147483648}`,
		`{"level": 5, "round": -2147483649}`,
		`{"level": 5, "signature": "sig"}`,
		`{"level": 5, "hash": "` + h + `", "signature": ""}`,
		`{"level": 5, "hash": null, "signature": "sig"}`,
		`null`, `{}`, `{"level": null}`, `[]`, `5`,
	}
	for _, s := range ok {
		if _, err := decodeMark([]byte(s)); err != nil {
			t.Errorf("%s: %v", s, err)
		}
	}
	for _, s := range bad {
		if m, err := decodeMark([]byte(s)); err == nil {
			t.Errorf("%s: read as %+v", s, m)
		}
	}
}

// TestDecodeSaysWhy: a chain file that is not what the reference writes is refused with the
// JSON decoder's own words (where the file ends early, what it found instead of an object), for
// the operator who repairs it (docs/operations.md).
func TestDecodeSaysWhy(t *testing.T) {
	t.Parallel()
	for text, want := range map[string]string{
		`{"tz1": {"attestation": {"level": 5}`: "unexpected end of JSON input",
		`[]`:                                   "cannot unmarshal array",
		`null`:                                 "top level is not a JSON object",
		`{"x": []}`:                            "cannot unmarshal array",
	} {
		if _, err := decode([]byte(text)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v (want %q)", text, err, want)
		}
	}
}

// TestDecodeKeepsEveryClass: a lower attestation_with_dal beside a higher attestation is skipped,
// and the key's other classes are still read.
func TestDecodeKeepsEveryClass(t *testing.T) {
	t.Parallel()
	pkh := watermarktest.PKH(0)
	st, err := decode([]byte(`{"` + pkh + `": {
		"attestation": {"level": 10},
		"attestation_with_dal": {"level": 5},
		"block": {"level": 7},
		"preattestation": {"level": 8}}}`))
	if err != nil {
		t.Fatal(err)
	}
	for class, want := range map[watermark.Class]int32{watermark.Attestation: 10, watermark.Block: 7, watermark.Preattestation: 8} {
		if sl := st.of(pkh)[classIndex(class)]; !sl.ok || sl.mark.Level != want {
			t.Errorf("%s: %+v, want level %d", class, sl, want)
		}
	}
}

// TestRaiseSkipsEmptySlots: a record that touches one class of a key leaves its other classes
// alone, a mark below zero (the reader accepts the int32 range) included.
func TestRaiseSkipsEmptySlots(t *testing.T) {
	t.Parallel()
	pkh := watermarktest.PKH(0)
	st, err := decode([]byte(`{"` + pkh + `": {"block": {"level": -5}}}`))
	if err != nil {
		t.Fatal(err)
	}
	part, err := decode([]byte(`{"` + pkh + `": {"attestation": {"level": 3}}}`))
	if err != nil {
		t.Fatal(err)
	}
	raise(st, part)
	slots := st.of(pkh)
	if b := slots[classIndex(watermark.Block)]; !b.ok || b.mark.Level != -5 {
		t.Fatalf("the block mark after a record of attestations: %+v", b)
	}
	if a := slots[classIndex(watermark.Attestation)]; !a.ok || a.mark.Level != 3 {
		t.Fatalf("the attestation mark: %+v", a)
	}
}

// TestCovers: a chain file covers a journal's part when raising it by the part changes nothing:
// every slot of the part is absent, lower, or the same without a signature the file lacks. A
// lagging slot after an empty one, or in a second key, is seen.
func TestCovers(t *testing.T) {
	t.Parallel()
	p0, p1 := watermarktest.PKH(0), watermarktest.PKH(1)
	parse := func(s string) *state {
		t.Helper()
		st, err := decode([]byte(s))
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	hash := `"vh2QmrcNURnrNwT5HEJv6ZA8n2gfw1MzThoBHK7dgyJsjHmVJhvj"`
	file := parse(`{"` + p0 + `": {"block": {"level": 5}, "attestation": {"level": 5, "round": 1, "hash": ` + hash + `}},
		"` + p1 + `": {"block": {"level": 2}}}`)
	for _, tc := range []struct {
		part string
		want bool
	}{
		{`{}`, true},
		{`{"` + p0 + `": {"block": {"level": 4}}}`, true},
		{`{"` + p0 + `": {"block": {"level": 5}}}`, true},
		{`{"` + p0 + `": {"block": {"level": 6}}}`, false},
		{`{"` + p0 + `": {"attestation": {"level": 5, "round": 2}}}`, false},
		{`{"` + p0 + `": {"attestation": {"level": 6}}}`, false},                                                       // after the empty preattestation slot
		{`{"` + p0 + `": {"preattestation": {"level": 1}}}`, false},                                                    // a slot the file lacks
		{`{"` + p1 + `": {"block": {"level": 3}}}`, false},                                                             // another key
		{`{"` + watermarktest.PKH(2) + `": {"block": {"level": 0}}}`, false},                                           // a key the file lacks
		{`{"` + p0 + `": {"attestation": {"level": 5, "round": 1, "hash": ` + hash + `, "signature": "sig"}}}`, false}, // a signature the file lacks
	} {
		if got := covers(file, parse(tc.part)); got != tc.want {
			t.Errorf("covers(%s) = %v, want %v", tc.part, got, tc.want)
		}
	}
	signed := parse(`{"` + p0 + `": {"block": {"level": 5, "hash": ` + hash + `, "signature": "sig"}}}`)
	if !covers(signed, parse(`{"`+p0+`": {"block": {"level": 5, "hash": `+hash+`}}}`)) {
		t.Error("a signed file does not cover the same mark unsigned")
	}
}

// TestCloneCopiesOnWrite: a clone's changes never reach the state it was cloned from (which
// readers hold without a lock), on a shard it copies and on one it changes twice; what it does not
// change it shares. Readers run alongside, for the race detector.
func TestCloneCopiesOnWrite(t *testing.T) {
	t.Parallel()
	at := func(level int32) keyMarks {
		var v keyMarks
		v[classIndex(watermark.Block)] = newSlot(watermark.Mark{Level: level})
		return v
	}
	level := func(st *state, pkh string) int32 { return st.of(pkh)[classIndex(watermark.Block)].mark.Level }
	orig := emptyState()
	const keys = 2000
	for i := range keys {
		orig.set(watermarktest.PKH(i), at(1))
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range keys {
			if level(orig, watermarktest.PKH(i)) != 1 {
				t.Error("the original changed under a reader")
				return
			}
		}
	}()
	// The keys spread over the shards (a batch copies only the ones it changes: that helps only
	// if no shard holds most of the keys).
	for i, m := range orig.marks {
		if n := len(m); n == 0 || n > 3*keys/shards {
			t.Fatalf("shard %d holds %d of %d keys", i, n, keys)
		}
	}
	c := orig.clone()
	changed := func(i int) bool { return i%3 == 0 && shardOf(watermarktest.PKH(i))%2 == 0 } // even shards only
	for i := range keys {
		if changed(i) {
			c.set(watermarktest.PKH(i), at(2))
			copied := reflect.ValueOf(c.marks[shardOf(watermarktest.PKH(i))]).Pointer()
			c.set(watermarktest.PKH(i), at(3)) // the second change of a shard this clone owns
			if reflect.ValueOf(c.marks[shardOf(watermarktest.PKH(i))]).Pointer() != copied {
				t.Fatal("a shard the clone already owns was copied again")
			}
		}
	}
	newKey := "tz1new"
	for n := 0; shardOf(newKey)%2 != 0; n++ {
		newKey = fmt.Sprintf("tz1new%d", n) // a new key in an even shard: the odd ones stay shared
	}
	c.set(newKey, at(4))
	<-done
	for i := range keys {
		if got := level(orig, watermarktest.PKH(i)); got != 1 {
			t.Fatalf("original key %d at level %d after the clone's changes", i, got)
		}
		want := int32(1)
		if changed(i) {
			want = 3
		}
		if got := level(c, watermarktest.PKH(i)); got != want {
			t.Fatalf("clone key %d at level %d, want %d", i, got, want)
		}
	}
	if orig.has(newKey) || !c.has(newKey) {
		t.Fatal("a new key went to the original, or not to the clone")
	}
	n := 0
	for range c.all() {
		n++
	}
	if n != keys+1 {
		t.Fatalf("the clone yields %d keys, want %d", n, keys+1)
	}
	// Shards the clone never changed (the odd ones) are the original's own maps.
	for i := 1; i < shards; i += 2 {
		if c.own[i] || reflect.ValueOf(c.marks[i]).Pointer() != reflect.ValueOf(orig.marks[i]).Pointer() {
			t.Fatalf("the clone copied shard %d, which it never changed", i)
		}
	}
}

// TestPublishedStatesOwnNothing: every state a chain publishes, at open and after a batch, owns no
// shard, so that nothing can change a shard through it that its readers and clones share.
func TestPublishedStatesOwnNothing(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for round := range 2 { // the second Open reads what the first wrote
		s, err := Open(dir, WithJournal(DefaultJournalSize))
		if err != nil {
			t.Fatal(err)
		}
		check := func(when string) {
			s.chains.Range(func(_, v any) bool {
				if v.(*chain).state.Load().own != [shards]bool{} {
					t.Errorf("round %d, %s: a published state owns shards", round, when)
				}
				return true
			})
		}
		check("opened")
		for i := range 100 {
			if _, err := s.Advance(t.Context(), watermarktest.Key(0, i, watermark.Block), watermarktest.Mark(int32(round+1), 0, 1)); err != nil {
				t.Fatal(err)
			}
		}
		check("after its batches")
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
}
