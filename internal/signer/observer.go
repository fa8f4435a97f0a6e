package signer

import "time"

// Observer is told what the signer does, step by step (as dirk's monitors are): the daemon's is
// *metrics.Metrics, which turns each call into the Prometheus metrics; tests that need none use
// Nop. The signer makes no metric calls of its own.
type Observer interface {
	// PolicyViolation: a request refused by rule (a policy rule, a spending limit, "policy_hook").
	PolicyViolation(rule, pkh string)
	// SignFailed: signing failed at the vault or after it, answered with status.
	SignFailed(vault string, status int, chainID string)
	// Signed: a signature released, took from the watermark step on; ops counts the operations
	// by kind; consensus tells a block or consensus operation, of round.
	Signed(vault, pkh, kind, chainID string, took time.Duration, ops map[string]int, consensus bool, round int32)
	// WatermarkPassed: a request without a watermark (generic, pack) passed the watermark step.
	WatermarkPassed(backend, kind string)
	// WatermarkStep: one watermark step of a block or consensus operation; result is "success",
	// "rejected" or "error".
	WatermarkStep(backend, kind, result string, took time.Duration)
	// WatermarkRejected: a refusal by the mark, with its reason.
	WatermarkRejected(pkh, kind, chainID, reason string)
	// VaultAnswered: how long the vault took to answer a signing request.
	VaultAnswered(vault, curve string, took time.Duration)
	// AuthFailed: a request whose client authentication failed, with its status.
	AuthFailed(status int, clientIP string)
}

// Nop is an Observer that does nothing.
type Nop struct{}

func (Nop) PolicyViolation(string, string)                                                    {}
func (Nop) SignFailed(string, int, string)                                                    {}
func (Nop) Signed(string, string, string, string, time.Duration, map[string]int, bool, int32) {}
func (Nop) WatermarkPassed(string, string)                                                    {}
func (Nop) WatermarkStep(string, string, string, time.Duration)                               {}
func (Nop) WatermarkRejected(string, string, string, string)                                  {}
func (Nop) VaultAnswered(string, string, time.Duration)                                       {}
func (Nop) AuthFailed(int, string)                                                            {}
