package interchange

import (
	"bytes"
	"encoding/hex"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	tz "github.com/ecadlabs/gotez/v2"

	"github.com/signatory-go/signatory/internal/watermark"
	"github.com/signatory-go/signatory/internal/watermark/mem"
	"github.com/signatory-go/signatory/internal/watermark/watermarktest"
)

var (
	key  = watermarktest.Key
	mark = watermarktest.Mark
)

func TestExportRoundTrip(t *testing.T) {
	s := mem.NewStore()
	want := []watermark.Entry{
		{Key: key(1, 0, watermark.Block), Mark: mark(34, 4, 1)},
		{Key: key(1, 0, watermark.Attestation), Mark: watermark.Mark{Level: 34, Round: 2}},
		{Key: key(0, 2, watermark.Preattestation), Mark: mark(7, 0, 2)},
	}
	for _, e := range want {
		watermarktest.MustAdvance(t, s, e.Key, e.Mark)
	}
	d, err := Export(t.Context(), s)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := Write(&buf, d); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, frag := range []string{`"version": 1`, `"chain_id": "` + watermarktest.Chain(1), `"digest": null`,
		`"digest": "` + tz.BlockPayloadHash([32]byte{1}).String() + `"`, `"class": "preattestation"`} {
		if !strings.Contains(out, frag) {
			t.Errorf("export lacks %s:\n%s", frag, out)
		}
	}
	got, f, err := Parse("export.json", buf.Bytes(), Options{})
	if err != nil || f != Signatory {
		t.Fatalf("Parse = %v, %v", f, err)
	}
	listed, _ := s.List(t.Context())
	if len(got) != len(listed) {
		t.Fatalf("parsed %d entries, want %d", len(got), len(listed))
	}
	for i := range got {
		if got[i] != listed[i] {
			t.Errorf("entry %d: %+v, want %+v", i, got[i], listed[i])
		}
	}
}

func TestParseSignatoryErrors(t *testing.T) {
	good := `{"chain_id":"` + watermarktest.Chain(0) + `","pkh":"` + watermarktest.PKH(0) + `","class":"block","level":1,"round":0,"digest":null}`
	cases := map[string]string{
		`{"version":2,"watermarks":[]}`:                                                              "version 2",
		`{"version":1,"watermarks":[` + good + `],"extra":1}`:                                        "unknown field",
		`{"version":1,"watermarks":[` + strings.Replace(good, "block", "generic", 1) + `]}`:          "class",
		`{"version":1,"watermarks":[` + strings.Replace(good, `"Net`, `"Xet`, 1) + `]}`:              "chain_id",
		`{"version":1,"watermarks":[` + strings.Replace(good, `"tz1`, `"tz9`, 1) + `]}`:              "pkh",
		`{"version":1,"watermarks":[` + strings.Replace(good, "null", `"vhnope"`, 1) + `]}`:          "digest",
		`{"version":1,"watermarks":[` + strings.Replace(good, `"level":1`, `"level":1e12`, 1) + `]}`: "level",
	}
	for in, want := range cases {
		if _, _, err := Parse("x.json", []byte(in), Options{}); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %v, want %q", in, err, want)
		}
	}
	// attestation_with_dal is folded into attestation.
	es, _, err := Parse("x.json", []byte(`{"version":1,"watermarks":[`+strings.Replace(good, "block", "attestation_with_dal", 1)+`]}`), Options{})
	if err != nil || len(es) != 1 || es[0].Class != watermark.Attestation {
		t.Fatalf("attestation_with_dal: %v %v", es, err)
	}
}

// referenceFile is the reference implementation's documented example file.
const referenceFile = `{
    "tz1WGcYos3hL7GXYXjKrMnSFdkT7FyXnFBvf": {
        "block":          {"level": 34, "round": 4, "hash": "vh2QmrcNURnrNwT5HEJv6ZA8n2gfw1MzThoBHK7dgyJsjHmVJhvj"},
        "preattestation": {"level": 34, "round": 4, "hash": "vh1mTiEJuJiyimZf5sctgbnHBTLFthMVRNbiViYpLDMGK79TzUwB"},
        "attestation":    {"level": 34, "round": 4, "hash": null}
    }
}`

func TestParseReference(t *testing.T) {
	es, f, err := Parse("NetXdQprcVkpaWU.json", []byte(referenceFile), Options{})
	if err != nil || f != Reference || len(es) != 3 {
		t.Fatalf("Parse = %v, %v, %v", es, f, err)
	}
	for _, e := range es {
		if e.Chain != "NetXdQprcVkpaWU" || e.PKH != "tz1WGcYos3hL7GXYXjKrMnSFdkT7FyXnFBvf" || e.Level != 34 || e.Round != 4 {
			t.Errorf("entry %+v", e)
		}
		if e.HasDigest != (e.Class != watermark.Attestation) {
			t.Errorf("%s: HasDigest %v", e.Class, e.HasDigest)
		}
	}
	if _, _, err := Parse("marks.json", []byte(referenceFile), Options{Format: Reference}); err == nil {
		t.Fatal("a reference file without a chain in its name parsed")
	}
	es, _, err = Parse("marks.json", []byte(referenceFile), Options{Format: Reference, Chain: "NetXdQprcVkpaWU"})
	if err != nil || len(es) != 3 {
		t.Fatalf("with an explicit chain: %v %v", es, err)
	}
	if _, _, err := Parse("marks.json", []byte(referenceFile), Options{}); err == nil {
		t.Fatal("an unrecognisable file parsed")
	}
}

// octezFile builds an octez-signer high-watermark file as src/bin_signer/handler.ml writes it.
func octezFile(chain, pkh string, level int, round string, hash [32]byte) string {
	r := ""
	if round != "" {
		r = `"round": ` + round + `, `
	}
	return `{ "` + chain + `": { "` + pkh + `": { "level": ` + strconv.Itoa(level) + `, ` + r + `"hash": "` + hex.EncodeToString(hash[:]) +
		`", "signature": "` + octezSig + `" } } }`
}

func TestParseOctez(t *testing.T) {
	d := [32]byte{0xAB, 0xCD}
	chain, pkh := watermarktest.Chain(3), watermarktest.PKH(3)
	cases := []struct {
		name  string
		class watermark.Class
		round int32
		file  string
	}{
		{"block_high_watermarks", watermark.Block, 2, octezFile(chain, pkh, 9, "2", d)},
		// no round: the mark covers its whole level, and its signature is not kept
		{"preattestation_high_watermarks", watermark.Preattestation, math.MaxInt32, octezFile(chain, pkh, 9, "", d)},
		{"attestation_high_watermarks", watermark.Attestation, 1, octezFile(chain, pkh, 9, "1", d)},
		{"preendorsement_high_watermarks", watermark.Preattestation, 1, octezFile(chain, pkh, 9, "1", d)},
		{"endorsement_high_watermark", watermark.Attestation, 1, octezFile(chain, pkh, 9, "1", d)},
	}
	for _, c := range cases {
		es, f, err := Parse(c.name, []byte(c.file), Options{})
		if err != nil || f != Octez || len(es) != 1 {
			t.Fatalf("%s: %v %v %v", c.name, es, f, err)
		}
		want := watermark.Entry{Key: watermark.Key{Chain: chain, PKH: pkh, Class: c.class},
			Mark: watermark.Mark{Level: 9, Round: c.round, Digest: d, HasDigest: true, Signature: octezSig}}
		if c.round == math.MaxInt32 {
			want.Signature = ""
		}
		if es[0] != want {
			t.Errorf("%s: %+v, want %+v", c.name, es[0], want)
		}
	}
	bad := map[string]string{
		octezFile(chain, pkh, 9, "1", d)[:40]:                                              "octez-signer file",
		strings.Replace(octezFile(chain, pkh, 9, "1", d), `"hash": "ab`, `"hash": "zz`, 1): "hash",
		strings.Replace(octezFile(chain, pkh, 9, "1", d), `"level": 9, `, ``, 1):           "level and hash",
		strings.Replace(octezFile(chain, pkh, 9, "1", d), `"round": 1`, `"round": -1`, 1):  "round",
	}
	for in, want := range bad {
		if _, _, err := Parse("block_high_watermarks", []byte(in), Options{}); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %v, want %q", in, err, want)
		}
	}
	if _, _, err := Parse("marks", []byte(octezFile(chain, pkh, 9, "1", d)), Options{Format: Octez}); err == nil {
		t.Error("an octez file without a class parsed")
	}
	if es, _, err := Parse("marks", []byte(octezFile(chain, pkh, 9, "1", d)), Options{Format: Octez, Class: watermark.Block}); err != nil || es[0].Class != watermark.Block {
		t.Errorf("explicit class: %v %v", es, err)
	}
}

func TestImportOnlyRaises(t *testing.T) {
	ctx := t.Context()
	s := mem.NewStore()
	watermarktest.MustAdvance(t, s, key(0, 0, watermark.Block), mark(10, 0, 1))
	watermarktest.MustAdvance(t, s, key(0, 1, watermark.Block), mark(10, 0, 1))
	watermarktest.MustAdvance(t, s, key(0, 2, watermark.Block), mark(10, 0, 1))
	in := []watermark.Entry{
		{Key: key(0, 0, watermark.Block), Mark: mark(12, 0, 2)},           // higher: raised
		{Key: key(0, 1, watermark.Block), Mark: mark(9, 5, 2)},            // lower: kept
		{Key: key(0, 2, watermark.Block), Mark: mark(10, 0, 1)},           // identical: kept
		{Key: key(0, 3, watermark.Block), Mark: watermark.Mark{Level: 5}}, // absent: raised
		{Key: key(0, 4, watermark.Block), Mark: mark(8, 0, 3)},            // two marks of one key:
		{Key: key(0, 4, watermark.Block), Mark: mark(7, 0, 4)},            // applied lowest first
	}
	dry, err := Import(ctx, s, in, true)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := s.List(ctx); len(got) != 3 {
		t.Fatalf("dry run wrote: %v", got)
	}
	rep, err := Import(ctx, s, in, false)
	if err != nil {
		t.Fatal(err)
	}
	want := map[int][]Outcome{0: {Raised}, 1: {Kept}, 2: {Kept}, 3: {Raised}, 4: {Raised, Raised}}
	for _, r := range []*Report{dry, rep} {
		got := map[int][]Outcome{}
		for _, it := range r.Items {
			for i := range 5 {
				if it.Key == key(0, i, watermark.Block) {
					got[i] = append(got[i], it.Outcome)
				}
			}
		}
		for i, w := range want {
			if strings.Join(outcomes(got[i]), ",") != strings.Join(outcomes(w), ",") {
				t.Errorf("key %d: %v, want %v", i, got[i], w)
			}
		}
		if r.Count(Raised) != 4 || r.Count(Kept) != 2 {
			t.Errorf("counts %d raised, %d kept", r.Count(Raised), r.Count(Kept))
		}
	}
	expect := map[int]watermark.Mark{0: mark(12, 0, 2), 1: mark(10, 0, 1), 2: mark(10, 0, 1), 3: {Level: 5}, 4: mark(8, 0, 3)}
	for i, m := range expect {
		if got, ok := watermarktest.Stored(t, s, key(0, i, watermark.Block)); !ok || got != m {
			t.Errorf("key %d stored %+v, want %+v", i, got, m)
		}
	}
	// An imported octez mark is enforced: other bytes at its level and round are refused, the
	// same bytes (same digest) may be signed again.
	es, _, err := Parse("attestation_high_watermarks", []byte(octezFile(watermarktest.Chain(0), watermarktest.PKH(5), 7, "0", [32]byte{9})), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Import(ctx, s, es, false); err != nil {
		t.Fatal(err)
	}
	watermarktest.MustRefuse(t, s, key(0, 5, watermark.Attestation), mark(7, 0, 8))
	watermarktest.MustAdvance(t, s, key(0, 5, watermark.Attestation), mark(7, 0, 9))
}

func outcomes(list []Outcome) []string {
	var s []string
	for _, o := range list {
		s = append(s, string(o))
	}
	return s
}

func TestImportStoreError(t *testing.T) {
	s := mem.NewStore()
	s.Close()
	if _, err := Import(t.Context(), s, []watermark.Entry{{Key: key(0, 0, watermark.Block), Mark: mark(1, 0, 1)}}, false); err == nil {
		t.Fatal("import into a closed store succeeded")
	}
}

func TestReadDirectories(t *testing.T) {
	base := t.TempDir()
	v2 := filepath.Join(base, "watermark_v2")
	if err := os.MkdirAll(v2, 0o700); err != nil {
		t.Fatal(err)
	}
	write := func(path, data string) {
		if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(v2, "NetXdQprcVkpaWU.json"), referenceFile)
	write(filepath.Join(base, "block_high_watermarks"), octezFile(watermarktest.Chain(0), watermarktest.PKH(0), 3, "0", [32]byte{1}))
	write(filepath.Join(base, "secret_keys"), "[]")      // ignored
	write(filepath.Join(base, "secret_keys.json"), "[]") // ignored: base has a watermark_v2
	srcs, err := Read(base, Options{})
	if err != nil || len(srcs) != 2 {
		t.Fatalf("Read(base) = %v, %v", srcs, err)
	}
	n := 0
	for _, s := range srcs {
		n += len(s.Entries)
	}
	if n != 4 {
		t.Fatalf("%d entries, want 4", n)
	}
	if srcs, err := Read(v2, Options{}); err != nil || len(srcs) != 1 || srcs[0].Format != Reference {
		t.Fatalf("Read(watermark_v2) = %v, %v", srcs, err)
	}
	if _, err := Read(t.TempDir(), Options{}); err == nil {
		t.Fatal("an empty directory read without error")
	}
}

// octezSig is the signature octezFile writes.
var octezSig = watermarktest.Signature(7)

// TestImportKeepsStoredSignature: importing a mark without a signature over the record of the
// same bytes (with its signature) changes nothing and is reported as kept.
func TestImportKeepsStoredSignature(t *testing.T) {
	s := mem.NewStore()
	k := watermarktest.Key(0, 0, watermark.Block)
	watermarktest.MustAdvanceSig(t, s, k, watermarktest.SignedMark(5, 0, 1, 1), 1)
	for _, dry := range []bool{true, false} {
		rep, err := Import(t.Context(), s, []watermark.Entry{{Key: k, Mark: watermarktest.Mark(5, 0, 1)}}, dry)
		if err != nil || len(rep.Items) != 1 || rep.Items[0].Outcome != Kept {
			t.Fatalf("dry run %v: %+v, %v", dry, rep, err)
		}
	}
	if m, _ := watermarktest.Stored(t, s, k); m.Signature != watermarktest.Signature(1) {
		t.Fatalf("stored %+v", m)
	}
}
