package file_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"

	tz "github.com/ecadlabs/gotez/v2"
	"golang.org/x/crypto/blake2b"

	"github.com/signatory-go/signatory/internal/testvectors"
	"github.com/signatory-go/signatory/internal/watermark"
	"github.com/signatory-go/signatory/internal/watermark/file"
)

const vecChain = "NetXo5iVw1vBoxM" // chain of the W-int vectors

// vec is one W-int payload: its class, level, round and blake2b-256 digest.
type vec struct {
	class        watermark.Class
	level, round int32
	digest       [32]byte
}

func (v vec) mark() watermark.Mark {
	return watermark.Mark{Level: v.level, Round: v.round, Digest: v.digest, HasDigest: true}
}

func (v vec) hash() string { return tz.BlockPayloadHash(v.digest).String() }

func loadVecs(t testing.TB) map[string]vec {
	d := testvectors.LoadDerived()
	meta := map[string]vec{
		"A1": {watermark.Block, 2, 0, [32]byte{}}, "A2": {watermark.Block, 2, 0, [32]byte{}},
		"B1": {watermark.Block, 7, 2, [32]byte{}}, "B2": {watermark.Block, 7, 2, [32]byte{}},
		"C1": {watermark.Block, 34, 4, [32]byte{}},
		"C2": {watermark.Preattestation, 34, 4, [32]byte{}},
		"C3": {watermark.Attestation, 34, 4, [32]byte{}},
	}
	for name, v := range meta {
		v.digest = blake2b.Sum256(testvectors.Hex(d.W[name]))
		meta[name] = v
	}
	return meta
}

// TestVectorHashes: the vh hashes of the reference's watermark scenarios (testdata/vectors) are blake2b-256 of the payloads in base58.
func TestVectorHashes(t *testing.T) {
	t.Parallel()
	want := testvectors.LoadDerived().WHash
	vecs := loadVecs(t)
	if len(want) != len(vecs) {
		t.Fatalf("%d hashes, %d payloads", len(want), len(vecs))
	}
	for name, v := range vecs {
		if v.hash() != want[name] {
			t.Errorf("%s: hash %s, want %s", name, v.hash(), want[name])
		}
	}
	if got := vecs["A1"].hash(); got != "vh2THNfr1pU3TjJyJkw7BKq19suqMX1W9PXRVAgpueELhGTAuhSx" {
		t.Errorf("A1 hash %s", got)
	}
}

// fm is one mark as written in a reference file; hash "" means null.
type fm struct {
	Level int32   `json:"level"`
	Round int32   `json:"round"`
	Hash  *string `json:"hash"`
}

func mk(level, round int32, hash string) fm {
	if hash == "" {
		return fm{level, round, nil}
	}
	return fm{level, round, &hash}
}

// refJSON renders {pkh: {class: mark}} exactly as the reference does (json.MarshalIndent, 4 spaces).
func refJSON(t testing.TB, pkh string, marks map[string]fm) string {
	b, err := json.MarshalIndent(map[string]map[string]fm{pkh: marks}, "", "    ")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestWIntScenarios replays the reference's watermark scenarios W1–W8 (testdata/vectors) on the file store, seeding "before" as a
// reference-format file, and checks the answers and the exact file afterwards.
func TestWIntScenarios(t *testing.T) {
	t.Parallel()
	v := loadVecs(t)
	hA1 := v["A1"].hash()
	pkh := testvectors.K2PKH
	after34 := map[string]fm{
		"block":          mk(34, 4, v["C1"].hash()),
		"preattestation": mk(34, 4, v["C2"].hash()),
		"attestation":    mk(34, 4, v["C3"].hash()),
		// written for the reference, which keeps DAL attestations apart: after a rollback it
		// must find the level attested
		"attestation_with_dal": mk(34, 4, v["C3"].hash()),
	}
	cases := []struct {
		name   string
		before *fm
		reqs   string // names, space separated
		ok     string // "+" accepted, "-" refused, per request
		after  map[string]fm
	}{
		{"W1", nil, "A1 A2", "+-", map[string]fm{"block": mk(2, 0, hA1)}},
		{"W2", &fm{6, 0, &hA1}, "B1 B2", "+-", map[string]fm{"block": mk(7, 2, v["B1"].hash())}},
		{"W3", nil, "A1 A1", "++", map[string]fm{"block": mk(2, 0, hA1)}},
		{"W4", &fm{6, 3, &hA1}, "B1", "+", map[string]fm{"block": mk(7, 2, v["B1"].hash())}},
		{"W5", &fm{8, 1, &hA1}, "B1", "-", nil},
		{"W6", &fm{7, 3, &hA1}, "B1", "-", nil},
		{"W7", &fm{33, 2, &hA1}, "C1 C2 C3", "+++", after34},
		{"W8", &fm{33, 2, &hA1}, "C2 C3 C1", "+++", after34},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			base := t.TempDir()
			var seed string
			if c.before != nil {
				seed = refJSON(t, pkh, map[string]fm{"block": *c.before})
				writeChainFile(t, base, vecChain, seed)
			}
			s := open(t, base)
			defer s.Close()
			for i, name := range strings.Fields(c.reqs) {
				r := v[name]
				k := watermark.Key{Chain: vecChain, PKH: pkh, Class: r.class}
				_, err := s.Advance(t.Context(), k, r.mark())
				if (c.ok[i] == '+') != (err == nil) || (err != nil && !watermark.IsConflict(err)) {
					t.Fatalf("request %d (%s): %v, want %c", i, name, err, c.ok[i])
				}
			}
			want := seed
			if c.after != nil {
				want = refJSON(t, pkh, c.after)
			}
			if _, got := readChainFile(t, s, vecChain); string(got) != want {
				t.Fatalf("file:\n%s\nwant:\n%s", got, want)
			}
		})
	}
}

// TestW9 is W9 on the file store: 5×A1 and 5×A2 at once, exactly one payload's 5 succeed.
func TestW9(t *testing.T) {
	t.Parallel()
	v := loadVecs(t)
	s := open(t, t.TempDir())
	defer s.Close()
	k := watermark.Key{Chain: vecChain, PKH: testvectors.K2PKH, Class: watermark.Block}
	var wg sync.WaitGroup
	errs := make([]error, 10)
	start := make(chan struct{})
	for i := range 10 {
		wg.Go(func() {
			<-start
			_, errs[i] = s.Advance(t.Context(), k, v[[]string{"A1", "A2"}[i%2]].mark())
		})
	}
	close(start)
	wg.Wait()
	var ok [2]int
	for i, err := range errs {
		if err == nil {
			ok[i%2]++
		} else if !watermark.IsConflict(err) {
			t.Fatal(err)
		}
	}
	if ok != [2]int{5, 0} && ok != [2]int{0, 5} {
		t.Fatalf("successes A1, A2 = %v", ok)
	}
	f, _ := readChainFile(t, s, vecChain)
	got := f[testvectors.K2PKH]["block"]
	winner := map[bool]string{true: "A1", false: "A2"}[ok[0] == 5]
	if got.Level != 2 || got.Round != 0 || got.Hash == nil || *got.Hash != v[winner].hash() {
		t.Fatalf("file block = %+v, want 2/0/%s", got, winner)
	}
}

// TestReadReferenceFile: missing round, null or missing hash, attestation_with_dal folded into
// attestation (the higher mark), unknown classes kept verbatim on rewrite.
func TestReadReferenceFile(t *testing.T) {
	t.Parallel()
	v := loadVecs(t)
	d := testvectors.LoadDerived()
	dal := vec{watermark.Attestation, 34, 4, blake2b.Sum256(testvectors.Hex(d.DerivedPayloads["attestation_with_dal_tag23"]))}
	k1, k2 := testvectors.K1PKH, testvectors.K2PKH
	content := fmt.Sprintf(`{
    %q: {
        "block": {"level": 34, "round": 4, "hash": %q},
        "preattestation": {"level": 34, "hash": null},
        "attestation": {"level": 30, "round": 1},
        "attestation_with_dal": {"level": 34, "round": 4, "hash": %q},
        "endorsement": {"level": 1, "order": 2, "hash": null}
    },
    %q: {
        "attestation": {"level": 10, "round": 2, "hash": %q},
        "attestation_with_dal": {"level": 10, "round": 1, "hash": %q}
    }
}`, k2, v["C1"].hash(), dal.hash(), k1, v["C3"].hash(), dal.hash())
	base := t.TempDir()
	writeChainFile(t, base, vecChain, content)
	s := open(t, base)
	defer s.Close()
	key := func(pkh string, c watermark.Class) watermark.Key {
		return watermark.Key{Chain: vecChain, PKH: pkh, Class: c}
	}
	want := []watermark.Entry{
		{Key: key(k1, watermark.Attestation), Mark: vec{watermark.Attestation, 10, 2, v["C3"].digest}.mark()},
		{Key: key(k2, watermark.Attestation), Mark: dal.mark()},
		{Key: key(k2, watermark.Block), Mark: v["C1"].mark()},
		{Key: key(k2, watermark.Preattestation), Mark: watermark.Mark{Level: 34}},
	}
	sort.Slice(want, func(i, j int) bool { return watermark.Compare(want[i].Key, want[j].Key) < 0 })
	got, err := s.List(t.Context())
	if err != nil || fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("List = %v, %v\nwant %v", got, err, want)
	}
	if _, err := s.Advance(t.Context(), key(k2, watermark.Attestation), v["C3"].mark()); !watermark.IsConflict(err) {
		t.Fatalf("tag 21 after tag 23 at the same level and round: %v, want ErrConflict", err)
	}
	if _, err := s.Advance(t.Context(), key(k2, watermark.Attestation), dal.mark()); err != nil {
		t.Fatalf("identical tag 23: %v", err)
	}
	if _, err := s.Advance(t.Context(), key(k2, watermark.Preattestation), watermark.Mark{Level: 34}); !watermark.IsConflict(err) {
		t.Fatalf("same level and round without a digest: %v, want ErrConflict", err)
	}
	if _, err := s.Advance(t.Context(), key(k2, watermark.Block), vec{watermark.Block, 35, 0, [32]byte{1}}.mark()); err != nil {
		t.Fatal(err)
	}
	f, data := readChainFile(t, s, vecChain)
	if !bytes.HasPrefix(data, []byte("{\n    \"tz1")) {
		t.Errorf("not 4-space indented:\n%s", data)
	}
	var raw map[string]map[string]json.RawMessage
	json.Unmarshal(data, &raw)
	// The attestation mark is also written under the reference's DAL name, so that the reference,
	// started again on this file, refuses any DAL attestation at a level we attested.
	var dalBack fm
	if err := json.Unmarshal(raw[k2]["attestation_with_dal"], &dalBack); err != nil || dalBack.Level != 34 ||
		dalBack.Round != 4 || dalBack.Hash == nil || *dalBack.Hash != dal.hash() {
		t.Errorf("attestation_with_dal written back as %s", raw[k2]["attestation_with_dal"])
	}
	var legacy map[string]any
	if err := json.Unmarshal(raw[k2]["endorsement"], &legacy); err != nil || legacy["order"] != 2.0 {
		t.Errorf("unknown class not kept: %s", raw[k2]["endorsement"])
	}
	if p := f[k2]["preattestation"]; p.Level != 34 || p.Round != 0 || p.Hash != nil || !bytes.Contains(data, []byte(`"hash": null`)) {
		t.Errorf("preattestation written as %+v", p)
	}
	if a := f[k2]["attestation"]; a.Level != 34 || a.Round != 4 || a.Hash == nil || *a.Hash != dal.hash() {
		t.Errorf("attestation written as %+v", a)
	}
	if b := f[k2]["block"]; b.Level != 35 {
		t.Errorf("block written as %+v", b)
	}
}

// referenceWatermark is the reference implementation's record of a mark (Watermark in its
// pkg/signatory/request/request.go); its file store writes, per chain, pkh → request kind → this
// struct through encoding/json (pkg/signatory/watermark/file.go). The fixture below is that
// encoding of the struct, not hand-written JSON, and the rollback reads our file back with it.
type referenceWatermark struct {
	Level int32                          `json:"level"`
	Round int32                          `json:"round"`
	Hash  tz.Option[tz.BlockPayloadHash] `json:"hash"`
}

// TestReferenceStructBothWays: a file the reference's struct was encoded into is read and
// respected; after we advance and stop cleanly, the reference's struct decodes our file to the
// same marks, and the directory holds nothing but chain files and the lock: an upgrade from the
// reference and a rollback to it, with the journal (the driver's default) and without.
func TestReferenceStructBothWays(t *testing.T) {
	t.Parallel()
	for _, journal := range []bool{true, false} {
		t.Run(map[bool]string{true: "journal", false: "chain files"}[journal], func(t *testing.T) {
			t.Parallel()
			referenceBothWays(t, journal)
		})
	}
}

func referenceBothWays(t *testing.T, journal bool) {
	k1, k2 := testvectors.K1PKH, testvectors.K2PKH
	h := tz.BlockPayloadHash{0xab}
	ref := map[string]map[string]*referenceWatermark{
		k1: {"block": {Level: 50, Round: 1, Hash: tz.Some(h)}, "attestation": {Level: 60, Hash: tz.Some(h)}},
		k2: {"preattestation": {Level: 70, Round: 2, Hash: tz.None[tz.BlockPayloadHash]()}},
	}
	content, err := json.Marshal(ref)
	if err != nil {
		t.Fatal(err)
	}
	base := t.TempDir()
	path := writeChainFile(t, base, vecChain, string(content))
	s := open(t, base)
	if journal {
		s.Close()
		s = openJournaled(t, base, file.DefaultJournalSize)
	}
	key := func(pkh string, c watermark.Class) watermark.Key {
		return watermark.Key{Chain: vecChain, PKH: pkh, Class: c}
	}
	for _, c := range []struct {
		k watermark.Key
		m watermark.Mark
	}{
		{key(k1, watermark.Block), watermark.Mark{Level: 50, Round: 1, Digest: h, HasDigest: true}},
		{key(k1, watermark.Attestation), watermark.Mark{Level: 60, Digest: h, HasDigest: true}},
		{key(k2, watermark.Preattestation), watermark.Mark{Level: 70, Round: 2}},
	} {
		if m, ok, err := s.Load(t.Context(), c.k); err != nil || !ok || m != c.m {
			t.Fatalf("Load %v = %+v %v %v, want %+v", c.k, m, ok, err, c.m)
		}
		refused := c.m
		refused.Digest, refused.HasDigest = [32]byte{1}, true
		if _, err := s.Advance(t.Context(), c.k, refused); !watermark.IsConflict(err) {
			t.Fatalf("at the reference's mark %v: %v", c.k, err)
		}
	}
	raised := watermark.Mark{Level: 51, Digest: [32]byte{5}, HasDigest: true}
	if _, err := s.Advance(t.Context(), key(k1, watermark.Block), raised); err != nil {
		t.Fatal(err)
	}
	for i := range 20 { // several journal records, then a clean stop
		raised.Level++
		raised.Digest[1] = byte(i)
		if _, err := s.Advance(t.Context(), key(k1, watermark.Block), raised); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(filepath.Dir(path))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Name() != filepath.Base(path) && e.Name() != "signatory.lock" {
			t.Errorf("after a clean stop the directory holds %s", e.Name())
		}
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var back map[string]map[string]*referenceWatermark
	if err := json.Unmarshal(data, &back); err != nil {
		t.Fatalf("the reference cannot read our file: %v\n%s", err, data)
	}
	b := back[k1]["block"]
	if b == nil || b.Level != 71 || b.Round != 0 || !b.Hash.IsSome() || b.Hash.Unwrap() != tz.BlockPayloadHash(raised.Digest) {
		t.Fatalf("the reference reads our block mark as %+v", b)
	}
	if p := back[k2]["preattestation"]; p == nil || p.Level != 70 || p.Round != 2 || p.Hash.IsSome() {
		t.Fatalf("the reference reads our preattestation mark as %+v", p)
	}
}
