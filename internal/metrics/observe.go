package metrics

import (
	"strconv"
	"time"
)

// The signer tells *Metrics what it does through these methods (it sees them as its Observer);
// the label values a client could choose (chain ids, client addresses, rounds) are bounded here.

// PolicyViolation counts a refusal by rule (a policy rule, a spending limit, "policy_hook").
func (m *Metrics) PolicyViolation(rule, pkh string) {
	m.PolicyViolations.WithLabelValues(rule, pkh, "request").Inc()
}

// SignFailed counts a signing that failed at the vault (or after it), by its HTTP status.
func (m *Metrics) SignFailed(vault string, status int, chainID string) {
	m.VaultSignErrors.WithLabelValues(vault, strconv.Itoa(status), m.Chain(chainID)).Inc()
}

// Signed records a signature released: its duration from the watermark step on, the operations
// it signed (kind → count), and for a block or consensus operation its round.
func (m *Metrics) Signed(vault, pkh, kind, chainID string, took time.Duration, ops map[string]int, consensus bool, round int32) {
	chain := m.Chain(chainID)
	m.VaultSignDuration.WithLabelValues(vault, pkh, kind, chain).Observe(float64(took.Microseconds()) / 1000)
	for op, n := range ops {
		m.SigningOps.WithLabelValues(pkh, vault, kind, op, chain).Add(float64(n))
	}
	if consensus {
		m.ConsensusRound.WithLabelValues(pkh, kind, chain, Round(round)).Inc()
	}
}

// WatermarkPassed counts a request without a watermark (generic, pack) as passing the watermark
// step, as the reference does.
func (m *Metrics) WatermarkPassed(backend, kind string) {
	m.WatermarkOpDuration.WithLabelValues(backend).Observe(0)
	m.WatermarkOps.WithLabelValues("success", backend, kind).Inc()
}

// WatermarkStep records one watermark step of a block or consensus operation: result is
// "success", "rejected" (refused by the mark) or "error" (the store failed).
func (m *Metrics) WatermarkStep(backend, kind, result string, took time.Duration) {
	m.WatermarkStoreLatency.WithLabelValues(backend, result).Observe(took.Seconds())
	m.WatermarkOpDuration.WithLabelValues(backend).Observe(took.Seconds())
	if result != "error" {
		m.WatermarkOps.WithLabelValues(result, backend, kind).Inc()
	}
}

// WatermarkRejected counts a refusal by the mark, per key, with its reason.
func (m *Metrics) WatermarkRejected(pkh, kind, chainID, reason string) {
	m.WatermarkRejections.WithLabelValues(pkh, kind, m.Chain(chainID), reason).Inc()
}

// VaultAnswered records how long a vault took to answer a signing request.
func (m *Metrics) VaultAnswered(vault, curve string, took time.Duration) {
	m.VaultLatency.WithLabelValues(vault, curve).Observe(took.Seconds())
}

// AuthFailed counts a request whose client authentication failed, by HTTP status.
func (m *Metrics) AuthFailed(status int, clientIP string) {
	m.AuthFailures.WithLabelValues(strconv.Itoa(status), "authentication", m.Client(clientIP)).Inc()
}
