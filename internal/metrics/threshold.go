package metrics

import (
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// ThresholdMembers are a threshold vault's metrics per member: how long each member took to
// answer, and what it answered. Every threshold vault of a process shares one, told apart by the
// vault label.
type ThresholdMembers struct {
	duration *prometheus.HistogramVec // vault, member
	results  *prometheus.CounterVec   // vault, member, result
}

// NewThresholdMembers registers the threshold members' metrics in r, or finds those a first
// threshold vault registered there.
func NewThresholdMembers(r prometheus.Registerer) (*ThresholdMembers, error) {
	m := &ThresholdMembers{
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "signatory_threshold_member_duration_seconds",
			Help:    "Time a threshold vault's member took to answer a partial signature or proof, whatever the answer.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}, []string{"vault", "member"}),
		results: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "signatory_threshold_member_results_total",
			Help: "Answers of a threshold vault's members: signed, refused (the member said no, e.g. 409 on its watermark), unreachable, invalid (a partial that does not verify), error (this coordinator could not make the request, e.g. its authentication_key failed), not_waited (the outcome was decided without it).",
		}, []string{"vault", "member", "result"}),
	}
	var err error
	if m.duration, err = register(r, m.duration); err != nil {
		return nil, err
	}
	if m.results, err = register(r, m.results); err != nil {
		return nil, err
	}
	return m, nil
}

// Observe records one member's answer: its result and how long it took.
func (m *ThresholdMembers) Observe(vault, member, result string, took time.Duration) {
	m.duration.WithLabelValues(vault, member).Observe(took.Seconds())
	m.results.WithLabelValues(vault, member, result).Inc()
}

// register registers c, or returns the collector already registered under its name.
func register[C prometheus.Collector](r prometheus.Registerer, c C) (C, error) {
	if err := r.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing, nil
			}
		}
		return c, err
	}
	return c, nil
}
