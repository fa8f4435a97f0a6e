package request

import (
	"testing"

	"github.com/signatory-go/signatory/internal/fault"
	tv "github.com/signatory-go/signatory/internal/testvectors"
)

// FuzzDecode checks that no input panics, every error is a BadRequest, and a decoded request is
// self-consistent. Seeds are the reference vectors; more live in testdata/fuzz/FuzzDecode.
func FuzzDecode(f *testing.F) {
	d := tv.LoadDerived()
	for _, h := range tv.LoadPolicyHex() {
		f.Add(tv.Hex(h))
	}
	for _, h := range d.W {
		f.Add(tv.Hex(h))
	}
	for _, h := range d.DerivedPayloads {
		f.Add(tv.Hex(h))
	}
	f.Add(tv.Hex(d.Pack))
	f.Add([]byte{0x02, 0xed})
	f.Fuzz(func(t *testing.T, msg []byte) {
		for _, v := range []Version{1, VersionLatest} {
			req, err := Decode(msg, v)
			if err != nil {
				if fault.KindOf(err) != fault.BadRequest {
					t.Fatalf("error of kind %v: %v", fault.KindOf(err), err)
				}
				continue
			}
			if consensus := req.Kind == Block || req.Kind == Preattestation || req.Kind == Attestation || req.Kind == AttestationWithDAL; req.Watermarked() != consensus {
				t.Fatalf("watermarked=%v but kind %q", req.Watermarked(), req.Kind)
			}
			if req.Kind == Generic && len(req.Ops) == 0 {
				t.Fatal("generic request without operations")
			}
			if req.Kind == Generic {
				// What spending limits see: the same contents, in the same order, for every
				// generic request Decode accepts.
				cs, err := Contents(msg, v)
				if err != nil {
					t.Fatalf("Decode accepted a generic request that Contents refuses: %v", err)
				}
				if len(cs) != len(req.Ops) {
					t.Fatalf("%d contents for %d operations", len(cs), len(req.Ops))
				}
				for i, c := range cs {
					if c.Kind != req.Ops[i] || c.Amount != nil && c.Amount.Sign() < 0 || c.Fee != nil && c.Fee.Sign() < 0 {
						t.Fatalf("content %d: %+v, operation %s", i, c, req.Ops[i])
					}
				}
			}
		}
	})
}
