package watermark

import (
	"testing"

	"github.com/signatory-go/signatory/internal/fault"
)

// TestAllowed is the reference's Validate table.
func TestAllowed(t *testing.T) {
	t.Parallel()
	d := func(b byte) [32]byte { return [32]byte{b} }
	noHash := Mark{Level: 1, Round: 1}
	withHash := Mark{Level: 1, Round: 1, Digest: d(0), HasDigest: true}
	cases := []struct {
		name   string
		stored Mark
		ok     bool
		req    Mark
		want   bool
	}{
		{"no entry", Mark{}, false, Mark{Level: 0}, true},
		{"nohash higher level", noHash, true, Mark{Level: 2, Round: 0}, true},
		{"nohash same level higher round", noHash, true, Mark{Level: 1, Round: 2}, true},
		{"nohash equal", noHash, true, Mark{Level: 1, Round: 1}, false},
		{"nohash equal with digest", noHash, true, Mark{Level: 1, Round: 1, Digest: d(0), HasDigest: true}, false},
		{"nohash lower round", noHash, true, Mark{Level: 1, Round: 0}, false},
		{"nohash lower level higher round", noHash, true, Mark{Level: 0, Round: 2}, false},
		{"hash higher level", withHash, true, Mark{Level: 2, Round: 0, Digest: d(1), HasDigest: true}, true},
		{"hash higher round", withHash, true, Mark{Level: 1, Round: 2, Digest: d(1), HasDigest: true}, true},
		{"hash match", withHash, true, Mark{Level: 1, Round: 1, Digest: d(0), HasDigest: true}, true},
		{"hash lower round", withHash, true, Mark{Level: 1, Round: 0, Digest: d(1), HasDigest: true}, false},
		{"hash lower level", withHash, true, Mark{Level: 0, Round: 2, Digest: d(1), HasDigest: true}, false},
		{"hash differs", withHash, true, Mark{Level: 1, Round: 1, Digest: d(1), HasDigest: true}, false},
		{"request without digest", withHash, true, Mark{Level: 1, Round: 1}, false},
		{"stored 6/3 new 7/2", Mark{Level: 6, Round: 3}, true, Mark{Level: 7, Round: 2}, true},
		{"stored 8/1 new 7/2", Mark{Level: 8, Round: 1}, true, Mark{Level: 7, Round: 2}, false},
	}
	for _, c := range cases {
		if got := Allowed(c.stored, c.ok, c.req); got != c.want {
			t.Errorf("%s: Allowed(%+v, %v, %+v) = %v, want %v", c.name, c.stored, c.ok, c.req, got, c.want)
		}
	}
}

func TestConflictKind(t *testing.T) {
	t.Parallel()
	if fault.KindOf(ErrConflict) != fault.Conflict || ErrConflict.Error() != "watermark validation failed" {
		t.Fatalf("ErrConflict = %v (kind %v)", ErrConflict, fault.KindOf(ErrConflict))
	}
	if !IsConflict(ErrConflict) || IsConflict(fault.New(fault.Conflict, "other")) {
		t.Fatal("IsConflict")
	}
}

func TestClassOf(t *testing.T) {
	t.Parallel()
	for kind, want := range map[string]Class{"block": Block, "preattestation": Preattestation,
		"attestation": Attestation, "attestation_with_dal": Attestation} {
		if c, ok := ClassOf(kind); !ok || c != want || !c.Valid() {
			t.Errorf("ClassOf(%q) = %q, %v", kind, c, ok)
		}
	}
	for _, kind := range []string{"generic", "endorsement", ""} {
		if _, ok := ClassOf(kind); ok {
			t.Errorf("ClassOf(%q) ok", kind)
		}
	}
	if Class("attestation_with_dal").Valid() {
		t.Error("attestation_with_dal is not a stored class")
	}
}
