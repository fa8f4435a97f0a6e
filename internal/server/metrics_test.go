package server

import (
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"

	"github.com/signatory-go/signatory/internal/metrics"

	tv "github.com/signatory-go/signatory/internal/testvectors"
)

// TestMetricsSemantics checks the reference's metric rules: policy refusals never reach the vault
// (signing_ops_total and vault_sign_request_error_total unchanged), watermark refusals count as
// 409 errors and rejections, and every request is counted by status.
func TestMetricsSemantics(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil, nil, 0)
	d := tv.LoadDerived()
	k2 := "/keys/" + tv.K2PKH
	e.post(t, k2, `"`+d.W["A1"]+`"`)                        // 200
	e.post(t, k2, `"`+d.W["A2"]+`"`)                        // 409
	e.post(t, k2, `"`+tv.LoadPolicyHex()["generic ok"]+`"`) // 403 policy
	m := e.m
	if got := testutil.ToFloat64(m.SigningOps.WithLabelValues(tv.K2PKH, "mem", "block", "block", "NetXo5iVw1vBoxM")); got != 1 {
		t.Fatalf("signing_ops_total %v", got)
	}
	if got := testutil.CollectAndCount(m.SigningOps); got != 1 {
		t.Fatalf("signing_ops_total series %d", got)
	}
	if got := testutil.ToFloat64(m.VaultSignErrors.WithLabelValues("mem", "409", "NetXo5iVw1vBoxM")); got != 1 {
		t.Fatalf("vault_sign_request_error_total{409} %v", got)
	}
	if got := testutil.CollectAndCount(m.VaultSignErrors); got != 1 {
		t.Fatal("a policy refusal reached vault_sign_request_error_total")
	}
	if got := testutil.ToFloat64(m.PolicyViolations.WithLabelValues("generic", tv.K2PKH, "request")); got != 1 {
		t.Fatalf("policy_violation_total %v", got)
	}
	if got := testutil.ToFloat64(m.WatermarkOps.WithLabelValues("rejected", "mem", "block")); got != 1 {
		t.Fatalf("watermark_operations_total rejected %v", got)
	}
	if got := testutil.ToFloat64(m.WatermarkRejections.WithLabelValues(tv.K2PKH, "block", "NetXo5iVw1vBoxM", "watermark validation failed")); got != 1 {
		t.Fatalf("watermark_rejection_total %v", got)
	}
	for status, want := range map[string]float64{"200": 1, "409": 1, "403": 1} {
		if got := testutil.ToFloat64(m.SignHandlerRequests.WithLabelValues(tv.K2PKH, status)); got != want {
			t.Fatalf("sign_handler_requests_total{%s} %v", status, got)
		}
	}
	if got := testutil.ToFloat64(m.ConsensusRound.WithLabelValues(tv.K2PKH, "block", "NetXo5iVw1vBoxM", "0")); got != 1 {
		t.Fatalf("consensus_round_total %v", got)
	}
}

// TestDashboardUsesRealMetrics checks that every metric the shipped Grafana dashboard queries is
// exported on /metrics.
func TestDashboardUsesRealMetrics(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil, nil, 0)
	srv := New(Config{}, nil, e.m, nil)
	rec := httptest.NewRecorder()
	srv.UtilityHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	exposed := rec.Body.String()
	// Vectors without observations are not in the exposition yet: add every registered name.
	v := reflect.ValueOf(e.m).Elem()
	for i := 0; i < v.NumField(); i++ {
		if !v.Type().Field(i).IsExported() {
			continue
		}
		c, ok := v.Field(i).Interface().(prometheus.Collector)
		if !ok {
			continue
		}
		ch := make(chan *prometheus.Desc, 16)
		go func() { c.Describe(ch); close(ch) }()
		for d := range ch {
			if m := regexp.MustCompile(`fqName: "([^"]+)"`).FindStringSubmatch(d.String()); m != nil {
				exposed += "\n# TYPE " + m[1] + " x\n"
			}
		}
	}
	raw, err := os.ReadFile(filepath.Join("..", "..", "deploy", "grafana-dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Targets []struct{ Expr string }
		}
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatal(err)
	}
	name := regexp.MustCompile(`[a-z_]+(_total|_bucket|_seconds|_bytes|_info)\b`)
	n := 0
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			for _, m := range name.FindAllString(tg.Expr, -1) {
				n++
				base := strings.TrimSuffix(m, "_bucket")
				if !strings.Contains(exposed, "\n"+m) && !strings.Contains(exposed, "# TYPE "+base+" ") {
					t.Errorf("dashboard queries %s, which /metrics does not export", m)
				}
			}
		}
	}
	if n < 10 {
		t.Fatalf("only %d metric references found in the dashboard", n)
	}
}

// TestMetricLabelsBounded: requests for 40 made-up key hashes (and garbage paths) add one
// `unknown` series, not 40; client addresses, chain ids and rounds are bounded label sets.
func TestMetricLabelsBounded(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil, nil, 0)
	transfer := `"` + tv.LoadPolicyHex()["transaction ok"] + `"`
	for i := range 40 {
		pkh := fmt.Sprintf("tz1%033d", i)
		e.post(t, "/keys/"+pkh, transfer)
		e.post(t, "/keys/"+strings.Repeat("x", i+1), transfer)
	}
	n := 0
	for _, mf := range mustGather(t, e.m) {
		if mf.GetName() == "sign_handler_requests_total" {
			for _, m := range mf.Metric {
				for _, l := range m.Label {
					if l.GetName() == "address" && l.GetValue() != "unknown" {
						t.Errorf("address label %q", l.GetValue())
					}
				}
				n++
			}
		}
	}
	if n == 0 || n > 3 { // unknown × a few statuses
		t.Fatalf("%d sign_handler_requests_total series", n)
	}
	ls := metrics.NewLabelSet(metrics.MaxClientLabels)
	for i := range 1000 {
		ls.Value(fmt.Sprintf("10.0.%d.%d", i/256, i%256))
	}
	if ls.Value("192.168.1.1") != metrics.Other || metrics.Round(10) != "10+" || metrics.Round(3) != "3" {
		t.Fatal("label bounds")
	}
}

func mustGather(t *testing.T, m *metrics.Metrics) []*dto.MetricFamily {
	t.Helper()
	mfs, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	return mfs
}
