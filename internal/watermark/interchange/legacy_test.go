package interchange

import (
	"strings"
	"testing"

	"github.com/signatory-go/signatory/internal/watermark"
)

const legacyPKH = "tz1WGcYos3hL7GXYXjKrMnSFdkT7FyXnFBvf"

func TestReferenceV1(t *testing.T) {
	t.Parallel()
	data := `{"` + legacyPKH + `": {"level": 34, "round": 4, "order": 2, "hash": "vh2UEcdXfsAWcTP1omYSp1q54H5S2x3zqfr2YqAcZ2Neyjauix1K"}}`
	es, f, err := Parse("NetXo5iVw1vBoxM.json", []byte(data), Options{Format: ReferenceV1})
	if err != nil || f != ReferenceV1 || len(es) != 1 {
		t.Fatalf("%v %v %+v", err, f, es)
	}
	e := es[0]
	if e.Chain != "NetXo5iVw1vBoxM" || e.PKH != legacyPKH || e.Class != watermark.Attestation || e.Level != 34 || e.Round != 4 || !e.HasDigest {
		t.Fatalf("%+v", e)
	}
	for order, want := range map[string]watermark.Class{"0": watermark.Block, "1": watermark.Preattestation, "7": watermark.Attestation} {
		es, _, err := Parse("NetXo5iVw1vBoxM.json", []byte(`{"`+legacyPKH+`": {"level": 3, "order": `+order+`}}`), Options{Format: ReferenceV1})
		if err != nil || es[0].Class != want || es[0].HasDigest || es[0].Round != 0 {
			t.Fatalf("order %s: %v %+v", order, err, es)
		}
	}
	for name, bad := range map[string]string{
		"no order": `{"` + legacyPKH + `": {"level": 3}}`, "no level": `{"` + legacyPKH + `": {"order": 0}}`,
		"bad pkh": `{"tz1nope": {"level": 3, "order": 0}}`, "bad hash": `{"` + legacyPKH + `": {"level": 3, "order": 0, "hash": "vhNOPE"}}`,
		"not json": `{`,
	} {
		if _, _, err := Parse("NetXo5iVw1vBoxM.json", []byte(bad), Options{Format: ReferenceV1}); err == nil {
			t.Errorf("%s accepted", name)
		}
	}
}

func TestReferenceV0(t *testing.T) {
	t.Parallel()
	data := `{"block": {"` + legacyPKH + `": {"level": 7, "round": 2}},
	          "preendorsement": {"` + legacyPKH + `": {"level": 7, "round": 2}},
	          "endorsement": {"` + legacyPKH + `": {"level": 6}}}`
	es, _, err := Parse("NetXo5iVw1vBoxM.json", []byte(data), Options{Format: ReferenceV0})
	if err != nil || len(es) != 3 {
		t.Fatalf("%v %+v", err, es)
	}
	got := map[watermark.Class]int32{}
	for _, e := range es {
		got[e.Class] = e.Level
	}
	if got[watermark.Block] != 7 || got[watermark.Preattestation] != 7 || got[watermark.Attestation] != 6 {
		t.Fatalf("%v", got)
	}
	if _, _, err := Parse("NetXo5iVw1vBoxM.json", []byte(`{"transaction": {}}`), Options{Format: ReferenceV0}); err == nil || !strings.Contains(err.Error(), "unknown request kind") {
		t.Fatalf("unknown kind: %v", err)
	}
	// Never guessed: without --format a v0 file is not taken for a v2 one silently.
	if es, f, err := Parse("NetXo5iVw1vBoxM.json", []byte(data), Options{}); err == nil && f == Reference && len(es) > 0 && es[0].Class == watermark.Block && es[0].PKH == legacyPKH {
		t.Fatal("a v0 file was read as v2 with marks")
	}
}
