// Package metrics defines every Prometheus metric of the signer in one place: the reference
// implementation's names and labels plus fine-grained latency of vaults and watermark stores.
package metrics

import (
	"runtime/debug"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Metrics holds the collectors. Create one per process with New.
type Metrics struct {
	Registry *prometheus.Registry

	SignHandlerRequests   *prometheus.CounterVec   // address, status
	SignHandlerDuration   *prometheus.HistogramVec // address, status (ms)
	SigningOps            *prometheus.CounterVec   // address, vault, op, kind, chain_id
	VaultSignDuration     *prometheus.HistogramVec // vault, address, op, chain_id (ms)
	VaultSignErrors       *prometheus.CounterVec   // vault, code, chain_id
	ConsensusRound        *prometheus.CounterVec   // address, operation_type, chain_id, round
	PolicyViolations      *prometheus.CounterVec   // violation_type, address, operation_type
	WatermarkRejections   *prometheus.CounterVec   // address, operation_type, chain_id, reason
	AuthFailures          *prometheus.CounterVec   // status, auth_method, client_ip
	WatermarkOps          *prometheus.CounterVec   // result, backend, request_type
	WatermarkOpDuration   *prometheus.HistogramVec // backend (s)
	VaultLatency          *prometheus.HistogramVec // vault, curve (s) — ours
	WatermarkStoreLatency *prometheus.HistogramVec // backend, result (s) — ours
	BuildInfo             *prometheus.GaugeVec
	// The socket transports (octez-signer's TCP and Unix sockets) — ours.
	SocketRequests    *prometheus.CounterVec // transport, request, status
	SocketConnections *prometheus.GaugeVec   // transport
	SocketRefused     *prometheus.CounterVec // transport, reason
	// ConfigReloads counts reloads (SIGHUP, POST /reload) by result: applied or refused — ours.
	ConfigReloads *prometheus.CounterVec // result

	chains, clients *LabelSet
}

var msBuckets = []float64{10, 100, 1e3, 1e4, 1e5}

// fine buckets from 25 µs to ~13 s, for our own latency histograms.
var fineBuckets = prometheus.ExponentialBuckets(25e-6, 2, 20)

// New creates the metrics and registers them, with the Go and process collectors, in a new registry.
func New(version string) *Metrics {
	m := &Metrics{Registry: prometheus.NewRegistry(), chains: NewLabelSet(MaxChainLabels), clients: NewLabelSet(MaxClientLabels)}
	cv := func(name, help string, labels ...string) *prometheus.CounterVec {
		c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels)
		m.Registry.MustRegister(c)
		return c
	}
	hv := func(name, help string, buckets []float64, labels ...string) *prometheus.HistogramVec {
		h := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: name, Help: help, Buckets: buckets}, labels)
		m.Registry.MustRegister(h)
		return h
	}
	m.SignHandlerRequests = cv("sign_handler_requests_total", "Sign requests received, by key and HTTP status.", "address", "status")
	m.SignHandlerDuration = hv("sign_handler_request_duration_milliseconds", "Sign request handling time in milliseconds.", msBuckets, "address", "status")
	m.SigningOps = cv("signing_ops_total", "Operations signed, by key, vault, request kind and operation kind.", "address", "vault", "op", "kind", "chain_id")
	m.VaultSignDuration = hv("vault_sign_request_duration_milliseconds", "Successful sign time including watermark, in milliseconds.", msBuckets, "vault", "address", "op", "chain_id")
	m.VaultSignErrors = cv("vault_sign_request_error_total", "Watermark refusals and vault errors.", "vault", "code", "chain_id")
	m.ConsensusRound = cv("consensus_round_total", "Successful watermarked signatures by round.", "address", "operation_type", "chain_id", "round")
	m.PolicyViolations = cv("policy_violation_total", "Requests refused by policy.", "violation_type", "address", "operation_type")
	m.WatermarkRejections = cv("watermark_rejection_total", "Requests refused by the watermark.", "address", "operation_type", "chain_id", "reason")
	m.AuthFailures = cv("authentication_failure_total", "Failed request authentications.", "status", "auth_method", "client_ip")
	m.WatermarkOps = cv("watermark_operations_total", "Sign requests that reached the watermark step.", "result", "backend", "request_type")
	m.WatermarkOpDuration = hv("watermark_operation_duration_seconds", "Watermark step duration.", prometheus.ExponentialBuckets(0.001, 2, 10), "backend")
	m.VaultLatency = hv("signatory_vault_sign_latency_seconds", "Time the vault takes to sign, by vault and curve.", fineBuckets, "vault", "curve")
	m.WatermarkStoreLatency = hv("signatory_watermark_store_latency_seconds", "Time the watermark store takes to check and record, by backend and result.", fineBuckets, "backend", "result")
	m.SocketRequests = cv("signatory_socket_requests_total", "Requests over the socket transports, by transport (tcp, unix), request kind and status (the HTTP status of the same outcome).", "transport", "request", "status")
	m.SocketConnections = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "signatory_socket_connections", Help: "Open connections on the socket transports."}, []string{"transport"})
	m.Registry.MustRegister(m.SocketConnections)
	m.SocketRefused = cv("signatory_socket_refused_total", "Socket connections closed by the signer: over the connection limit, idle or slow past the timeout, or sending what does not decode.", "transport", "reason")
	m.ConfigReloads = cv("config_reloads_total", "Config reloads (SIGHUP, POST /reload), by result: applied, or refused (the config in force keeps serving).", "result")
	m.BuildInfo = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "signatory_build_info", Help: "Build information."}, []string{"path", "version", "checksum", "revision", "branch"})
	m.Registry.MustRegister(m.BuildInfo, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	path, sum, rev := "", "", ""
	if bi, ok := debug.ReadBuildInfo(); ok {
		path, sum = bi.Main.Path, bi.Main.Sum
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" {
				rev = s.Value
			}
		}
	}
	m.BuildInfo.WithLabelValues(path, version, sum, rev, "").Set(1)
	return m
}
