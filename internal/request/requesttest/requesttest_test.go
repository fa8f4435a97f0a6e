package requesttest_test

import (
	"encoding/hex"
	"testing"

	"github.com/signatory-go/signatory/internal/request"
	"github.com/signatory-go/signatory/internal/request/requesttest"
)

func TestPayloadBuilders(t *testing.T) {
	for _, c := range []struct {
		hex  string
		kind request.Kind
		tag  int
	}{
		{requesttest.Block("b3d79f99", 77, 3, 1), request.Block, 0},
		{requesttest.ConsensusTag(20, "b3d79f99", 77, 3, 1), request.Preattestation, 20},
		{requesttest.ConsensusTag(40, "b3d79f99", 77, 3, 1), request.Preattestation, 40},
		{requesttest.ConsensusTag(21, "b3d79f99", 77, 3, 1), request.Attestation, 21},
		{requesttest.ConsensusTag(23, "b3d79f99", 77, 3, 1), request.AttestationWithDAL, 23},
		{requesttest.ConsensusTag(41, "b3d79f99", 77, 3, 1), request.Attestation, 41},
	} {
		b, _ := hex.DecodeString(c.hex)
		r, err := request.Decode(b, 2)
		if err != nil || r.Kind != c.kind || r.Level != 77 || r.Round != 3 || int(r.Tag) != c.tag || r.ChainID() != "NetXo5iVw1vBoxM" {
			t.Errorf("%s: %+v, %v", c.hex, r, err)
		}
	}
	if requesttest.Block("b3d79f99", 1, 0, 0) == requesttest.Block("b3d79f99", 1, 0, 1) {
		t.Error("variants equal")
	}
}
