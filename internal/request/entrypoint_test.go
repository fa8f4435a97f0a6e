package request

import (
	"strings"
	"testing"

	"github.com/signatory-go/signatory/internal/fault"
)

// TestNamedEntrypointsReadAsProtocol: an entrypoint written as a name (tag 255) is the
// protocol's entrypoint of that name (Entrypoint_repr.smart_encoding reads it with
// of_string_lax): the name "stake" is tag 6, the empty name and "default" are tag 0. Whichever
// encoding a client picks, the policy sees the same kind and spending limits the same entrypoint.
func TestNamedEntrypointsReadAsProtocol(t *testing.T) {
	t.Parallel()
	for tag, ep := range shortEntrypoints {
		short, err := DecodeFull(unitTransaction(byte(tag)), VersionLatest)
		if err != nil {
			t.Fatalf("tag %d: %v", tag, err)
		}
		names := []string{ep}
		if ep == "default" {
			names = append(names, "")
		}
		for _, name := range names {
			for _, full := range []bool{false, true} {
				req, err := decode(namedTransaction(name), VersionLatest, full)
				if err != nil {
					t.Fatalf("named %q: %v", name, err)
				}
				if len(req.Ops) != 1 || req.Ops[0] != short.Ops[0] {
					t.Fatalf("named %q reads as %v, tag %d as %v", name, req.Ops, tag, short.Ops)
				}
				if full && (req.Contents[0].Entrypoint != ep || req.Contents[0].Kind != short.Contents[0].Kind) {
					t.Fatalf("named %q: contents %+v, want entrypoint %s", name, req.Contents[0], ep)
				}
			}
		}
	}
	// A name that is not reserved is itself.
	req, err := DecodeFull(namedTransaction("mint"), VersionLatest)
	if err != nil || req.Ops[0] != "transaction" || req.Contents[0].Entrypoint != "mint" {
		t.Fatalf("named mint: %+v %v", req, err)
	}
}

// TestEntrypointLength: the protocol reads names of at most 31 bytes; a longer one is refused
// (400) by every path, whatever the policy.
func TestEntrypointLength(t *testing.T) {
	t.Parallel()
	ok := strings.Repeat("a", MaxEntrypointLen)
	for _, full := range []bool{false, true} {
		if _, err := decode(namedTransaction(ok), VersionLatest, full); err != nil {
			t.Fatalf("a %d-byte name: %v", len(ok), err)
		}
		for _, n := range []int{MaxEntrypointLen + 1, 100, 255} {
			_, err := decode(namedTransaction(strings.Repeat("a", n)), VersionLatest, full)
			if fault.KindOf(err) != fault.BadRequest || !strings.Contains(err.Error(), "entrypoint name") {
				t.Fatalf("a %d-byte name: %v, want a bad request", n, err)
			}
		}
	}
	for _, name := range []string{"", "default", "stake", ok} {
		if got, err := Entrypoint(name); err != nil || got == "" {
			t.Fatalf("Entrypoint(%q) = %q, %v", name, got, err)
		}
	}
}

// TestNonCanonicalRefused: forms gotez reads but does not write (a trailing zero byte in a
// number, a missing presence byte at the end, a presence byte of 0x01) are refused by both
// paths; the canonical form of the same operation is accepted.
func TestNonCanonicalRefused(t *testing.T) {
	t.Parallel()
	plain := unitTransaction(0)
	plain = append(plain[:len(plain)-8], 0) // no parameters
	if _, err := Decode(plain, VersionLatest); err != nil {
		t.Fatalf("canonical: %v", err)
	}
	fee := 33 + 1 + 21
	trailingZero := append(append(append([]byte(nil), plain[:fee]...), 0x81, 0x00), plain[fee+1:]...)
	presence01 := unitTransaction(6)
	presence01[len(presence01)-8] = 0x01
	missing := plain[:len(plain)-1]
	for name, msg := range map[string][]byte{"trailing zero": trailingZero, "presence 0x01": presence01, "presence missing": missing} {
		if _, ok := fastGeneric(msg); ok {
			t.Fatalf("%s: the fast path accepts it", name)
		}
		for _, v := range []Version{0, 1, 2, VersionLatest} {
			for _, full := range []bool{false, true} {
				if _, err := decode(msg, v, full); fault.KindOf(err) != fault.BadRequest {
					t.Fatalf("%s (version %d, full %v): %v, want a bad request", name, v, full, err)
				}
			}
		}
	}
}
