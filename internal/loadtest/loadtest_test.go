package loadtest

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"testing"

	"github.com/signatory-go/signatory/internal/request"
)

func TestConsensusStreamsDecodeAndRise(t *testing.T) {
	t.Parallel()
	streams, err := newStreams(Consensus, []string{"tz1a", "tz1b"}, 4, 10, 7)
	if err != nil {
		t.Fatal(err)
	}
	chains := map[string]bool{}
	for i, s := range streams {
		var lastLevel int32
		for j := 0; j < 6; j++ {
			var h string
			if err := json.Unmarshal(s.body(), &h); err != nil {
				t.Fatal(err)
			}
			msg, _ := hex.DecodeString(h)
			req, err := request.Decode(msg, request.VersionLatest)
			if err != nil {
				t.Fatalf("stream %d body %d: %v", i, j, err)
			}
			wantKind := request.Preattestation
			if j%2 == 1 {
				wantKind = request.Attestation
			}
			if req.Kind != wantKind || req.Level != int32(11+j/2) {
				t.Fatalf("stream %d body %d: %s level %d", i, j, req.Kind, req.Level)
			}
			lastLevel = req.Level
			chains[s.pkh+"/"+req.ChainID()] = true
		}
		_ = lastLevel
	}
	if len(chains) != 4 {
		t.Fatalf("streams share a (key, chain): %v", chains)
	}
}

func TestRunAgainstTrivialServer(t *testing.T) {
	t.Parallel()
	url, stop, err := TrivialServer()
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	r, err := Run(context.Background(), Options{URL: url, Keys: []string{"tz1a"}, Workload: Mixed, Concurrency: 4, Requests: 400})
	if err != nil {
		t.Fatal(err)
	}
	if r.Requests != 400 || r.Statuses["200"] != 400 || r.LatencyMs.Max < r.LatencyMs.P50 {
		t.Fatalf("%+v", r)
	}
	if _, err := Run(context.Background(), Options{URL: url, Keys: []string{"tz1a"}, Workload: "nope"}); err == nil {
		t.Fatal("unknown workload accepted")
	}
}
