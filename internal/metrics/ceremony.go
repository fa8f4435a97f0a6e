package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// CeremonyPhases are the steps of a key-generation ceremony, as signatory_dkg_phase labels them.
var CeremonyPhases = []string{"join", "deal", "confirm", "complete", "aborted"}

// Ceremony is the metrics of one key-generation ceremony (`signatory threshold dkg`), a command
// that ends with the ceremony: it writes them to a file for node_exporter's textfile collector
// (WriteTo) at every step and at the end. Nothing secret is in them: phases, counts, a duration.
type Ceremony struct {
	reg        *prometheus.Registry
	phase      *prometheus.GaugeVec
	complaints prometheus.Gauge
	excluded   prometheus.Gauge
	members    prometheus.Gauge
	duration   prometheus.Gauge
}

// NewCeremony returns the metrics of the ceremony named name.
func NewCeremony(name string) *Ceremony {
	labels := prometheus.Labels{"ceremony": name}
	c := &Ceremony{
		reg: prometheus.NewRegistry(),
		phase: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "signatory_dkg_phase", ConstLabels: labels,
			Help: "The key-generation ceremony's step: 1 for the current one (join, deal, confirm, complete, aborted), 0 for the others."}, []string{"phase"}),
		complaints: prometheus.NewGauge(prometheus.GaugeOpts{Name: "signatory_dkg_complaints", ConstLabels: labels,
			Help: "Complaints raised against deals in the ceremony, answered or not."}),
		excluded: prometheus.NewGauge(prometheus.GaugeOpts{Name: "signatory_dkg_excluded_members", ConstLabels: labels,
			Help: "Members left out of the group: absent, cheating or silent."}),
		members: prometheus.NewGauge(prometheus.GaugeOpts{Name: "signatory_dkg_members", ConstLabels: labels,
			Help: "Members of the group the ceremony made (0 until it completes)."}),
		duration: prometheus.NewGauge(prometheus.GaugeOpts{Name: "signatory_dkg_duration_seconds", ConstLabels: labels,
			Help: "How long the ceremony took, once it ended."}),
	}
	c.reg.MustRegister(c.phase, c.complaints, c.excluded, c.members, c.duration)
	return c
}

// Phase records the step the ceremony entered.
func (c *Ceremony) Phase(p string) {
	for _, q := range CeremonyPhases {
		v := 0.0
		if q == p {
			v = 1
		}
		c.phase.WithLabelValues(q).Set(v)
	}
}

// Outcome records a completed ceremony's counts.
func (c *Ceremony) Outcome(members, excluded, complaints int) {
	c.members.Set(float64(members))
	c.excluded.Set(float64(excluded))
	c.complaints.Set(float64(complaints))
}

// Ended records the ceremony's duration.
func (c *Ceremony) Ended(d time.Duration) { c.duration.Set(d.Seconds()) }

// WriteTo writes the metrics to path in Prometheus's text format (atomically, as node_exporter's
// textfile collector reads it).
func (c *Ceremony) WriteTo(path string) error { return prometheus.WriteToTextfile(path, c.reg) }
