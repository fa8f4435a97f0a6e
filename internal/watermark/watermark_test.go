package watermark

import (
	"errors"
	"strings"
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

// TestRefusalReasons: each refusal says why (the reason is logged with every refused request,
// and is what an operator reads after a 409): a lower level, a lower round at the level, other
// bytes at the slot, and an ECDSA key's imported mark without a signature.
func TestRefusalReasons(t *testing.T) {
	t.Parallel()
	stored := Mark{Level: 10, Round: 2, Digest: [32]byte{1}, HasDigest: true, Signature: "sig"}
	for _, c := range []struct {
		name   string
		pkh    string
		stored Mark
		req    Mark
		want   string
	}{
		{"lower level, higher round", "tz1", stored, Mark{Level: 9, Round: 5, Digest: [32]byte{2}, HasDigest: true}, "the request's level is lower"},
		{"lower round", "tz1", stored, Mark{Level: 10, Round: 1, Digest: [32]byte{2}, HasDigest: true}, "the request's round is lower"},
		{"round 0 under round 2", "tz1", stored, Mark{Level: 10, Round: 0}, "the request's round is lower"},
		{"same slot, other bytes", "tz1", stored, Mark{Level: 10, Round: 2, Digest: [32]byte{2}, HasDigest: true}, "the bytes differ"},
		{"same slot, no digest", "tz1", stored, Mark{Level: 10, Round: 2}, "the bytes differ"},
		{"imported mark, ECDSA", "tz2", Mark{Level: 10, Round: 2, Digest: [32]byte{1}, HasDigest: true}, Mark{Level: 10, Round: 2, Digest: [32]byte{1}, HasDigest: true}, "imported mark"},
	} {
		o, err := Check(Key{PKH: c.pkh}, c.stored, true, c.req)
		var conflict *Conflict
		if o != Refuse || !errors.As(err, &conflict) || !strings.Contains(conflict.Reason, c.want) {
			t.Errorf("%s: %v %v; want a refusal saying %q", c.name, o, err, c.want)
		}
	}
}
