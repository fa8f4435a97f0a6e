package metrics

import (
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestObserve: each observation lands in the reference's series with its labels, chain ids past
// MaxChainLabels and rounds past MaxRoundLabel folded.
func TestObserve(t *testing.T) {
	t.Parallel()
	m := New("test")
	m.PolicyViolation("max_total", "tz1a")
	m.SignFailed("v", 500, "NetA")
	m.Signed("v", "tz1a", "attestation", "NetA", time.Millisecond, map[string]int{"attestation": 1}, true, 12)
	m.Signed("v", "tz1a", "generic", "", time.Millisecond, map[string]int{"transaction": 3}, false, 0)
	m.WatermarkPassed("file", "generic")
	m.WatermarkStep("file", "attestation", "success", time.Millisecond)
	m.WatermarkStep("file", "attestation", "rejected", time.Millisecond)
	m.WatermarkStep("file", "attestation", "error", time.Millisecond)
	m.WatermarkRejected("tz1a", "attestation", "NetA", "watermark validation failed")
	m.VaultAnswered("v", "ed25519", time.Millisecond)
	m.AuthFailed(401, "10.0.0.1")
	for i := range MaxChainLabels + 2 {
		m.SignFailed("w", 503, fmt.Sprintf("Net%d", i))
	}
	for name, c := range map[string]struct {
		got, want float64
	}{
		"policy":        {testutil.ToFloat64(m.PolicyViolations.WithLabelValues("max_total", "tz1a", "request")), 1},
		"sign failed":   {testutil.ToFloat64(m.VaultSignErrors.WithLabelValues("v", "500", "NetA")), 1},
		"ops":           {testutil.ToFloat64(m.SigningOps.WithLabelValues("tz1a", "v", "generic", "transaction", m.Chain(""))), 3},
		"round 10+":     {testutil.ToFloat64(m.ConsensusRound.WithLabelValues("tz1a", "attestation", "NetA", "10+")), 1},
		"ops success":   {testutil.ToFloat64(m.WatermarkOps.WithLabelValues("success", "file", "attestation")), 1},
		"ops generic":   {testutil.ToFloat64(m.WatermarkOps.WithLabelValues("success", "file", "generic")), 1},
		"ops rejected":  {testutil.ToFloat64(m.WatermarkOps.WithLabelValues("rejected", "file", "attestation")), 1},
		"ops error":     {testutil.ToFloat64(m.WatermarkOps.WithLabelValues("error", "file", "attestation")), 0},
		"rejections":    {testutil.ToFloat64(m.WatermarkRejections.WithLabelValues("tz1a", "attestation", "NetA", "watermark validation failed")), 1},
		"auth":          {testutil.ToFloat64(m.AuthFailures.WithLabelValues("401", "authentication", "10.0.0.1")), 1},
		"other chains":  {testutil.ToFloat64(m.VaultSignErrors.WithLabelValues("w", "503", "other")), 4}, // NetA, "" and Net0–Net5 took the 8
		"store latency": {float64(testutil.CollectAndCount(m.WatermarkStoreLatency)), 3},
		"vault latency": {float64(testutil.CollectAndCount(m.VaultLatency)), 1},
	} {
		if c.got != c.want {
			t.Errorf("%s: %v, want %v", name, c.got, c.want)
		}
	}
}
