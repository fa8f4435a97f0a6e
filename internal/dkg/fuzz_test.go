package dkg

import (
	"encoding/json"
	"testing"
)

// FuzzPackets: what arrives in an envelope (after its signature and decryption, so from a member,
// but a cheating one) never panics a decoder, and what decodes encodes back to the same packet.
func FuzzPackets(f *testing.F) {
	f.Add([]byte(`{"dealer":1,"deals":[{"share":2,"encrypted":"AAEC"}],"public":["AAA="],"session":"AQ==","sig":"AQ=="}`))
	f.Add([]byte(`{"share":1,"responses":[{"dealer":0,"ok":false}],"session":"AQ==","sig":""}`))
	f.Add([]byte(`{"dealer":1,"justifications":[{"share":2,"secret":"` + "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=" + `"}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		if d, err := decodeDeals(b); err == nil {
			out, err := encodeDeals(d)
			if err != nil {
				t.Fatal(err)
			}
			again, err := decodeDeals(out)
			if err != nil || again.DealerIndex != d.DealerIndex || len(again.Deals) != len(d.Deals) || len(again.Public) != len(d.Public) {
				t.Fatalf("deals do not round-trip: %v", err)
			}
		}
		if r, err := decodeResponses(b); err == nil {
			if _, err := encodeResponses(r); err != nil {
				t.Fatal(err)
			}
		}
		if j, err := decodeJustifications(b); err == nil {
			if _, err := encodeJustifications(j); err != nil {
				t.Fatal(err)
			}
		}
		var h hello
		_ = json.Unmarshal(b, &h)
	})
}
