package watermark

import (
	"cmp"
	"strings"

	"github.com/signatory-go/signatory/internal/fault"
)

// Valid reports whether c is one of the stored classes: Block, Preattestation or Attestation.
func (c Class) Valid() bool {
	switch c {
	case Block, Preattestation, Attestation:
		return true
	}
	return false
}

// ClassOf maps a request kind ("block", "preattestation", "attestation", "attestation_with_dal")
// to its watermark class. attestation_with_dal shares Attestation (docs/watermarks.md).
// ok is false for kinds that carry no watermark.
func ClassOf(kind string) (c Class, ok bool) {
	switch kind {
	case "block":
		return Block, true
	case "preattestation":
		return Preattestation, true
	case "attestation", "attestation_with_dal":
		return Attestation, true
	}
	return "", false
}

// Compare orders keys by chain, pkh and class, the order List returns; it returns -1, 0 or +1.
func Compare(a, b Key) int {
	return cmp.Or(strings.Compare(a.Chain, b.Chain), strings.Compare(a.PKH, b.PKH),
		strings.Compare(string(a.Class), string(b.Class)))
}

// Check returns an Internal error when k cannot name a watermark: an empty chain or key hash, or a
// class that is not one of the three stored classes. Stores call it before any lookup.
func (k Key) Check() error {
	if k.Chain == "" || k.PKH == "" || !k.Class.Valid() {
		return &fault.Error{Kind: fault.Internal, Msg: "invalid watermark key " + k.Chain + "/" + k.PKH + "/" + string(k.Class)}
	}
	return nil
}
