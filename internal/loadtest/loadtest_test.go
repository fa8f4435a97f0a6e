package loadtest

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

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
	r, err := Run(t.Context(), Options{URL: url, Keys: []string{"tz1a"}, Workload: Mixed, Concurrency: 4, Requests: 400})
	if err != nil {
		t.Fatal(err)
	}
	if r.Requests != 400 || r.Statuses["200"] != 400 || r.LatencyMs.Max < r.LatencyMs.P50 {
		t.Fatalf("%+v", r)
	}
	if _, err := Run(t.Context(), Options{URL: url, Keys: []string{"tz1a"}, Workload: "nope"}); err == nil {
		t.Fatal("unknown workload accepted")
	}
}

func TestParseProcStat(t *testing.T) {
	t.Parallel()
	// pid (comm with a space and a parenthesis) state ppid … utime=250 stime=50 …
	line := "4242 (sig (x) y) S 1 4242 4242 0 -1 4194560 1021 0 0 0 250 50 0 0 20 0 9 0 123 0 0\n"
	d, err := parseProcStat(line)
	if err != nil || d != 3*time.Second {
		t.Fatalf("%v %v, want 3s", d, err)
	}
	if _, err := parseProcStat("4242 (short) S 1 2"); err == nil {
		t.Fatal("a short line was accepted")
	}
}

// TestSignerCPU: the CPU sampled at the start and the end of the window becomes a per-request
// figure; the trivial server runs in this process, so this process's own /proc entry serves.
func TestSignerCPU(t *testing.T) {
	t.Parallel()
	url, stop, err := TrivialServer()
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	r, err := Run(t.Context(), Options{URL: url, Keys: []string{"tz1a"}, Workload: Generic, Concurrency: 2,
		Requests: 2000, SignerCPU: ProcCPU(os.Getpid())})
	if err != nil {
		t.Fatal(err)
	}
	if r.Requests != 2000 || r.SignerCPUUs <= 0 || r.ToolCPUUs <= 0 {
		t.Fatalf("%+v", r)
	}
	metrics := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprint(w, "# HELP process_cpu_seconds_total x\nprocess_cpu_seconds_total 12.5\ngo_goroutines 7\n")
	}))
	defer metrics.Close()
	if d, err := MetricsCPU(metrics.URL)(t.Context()); err != nil || d != 12500*time.Millisecond {
		t.Fatalf("%v %v", d, err)
	}
	failing := func(context.Context) (time.Duration, error) { return 0, errors.New("no such process") }
	if _, err := Run(t.Context(), Options{URL: url, Keys: []string{"tz1a"}, Workload: Generic, Requests: 10, SignerCPU: failing}); err == nil {
		t.Fatal("a failing CPU sampler was ignored")
	}
}

// TestBurst: every key sends one request per burst, all bursts are counted and answered, and a
// burst lasts at least as long as its slowest request.
func TestBurst(t *testing.T) {
	t.Parallel()
	url, stop, err := TrivialServer()
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	keys := make([]string, 16)
	for i := range keys {
		keys[i] = fmt.Sprintf("tz1key%02d", i)
	}
	r, err := Run(t.Context(), Options{URL: url, Keys: keys, Workload: Burst, Requests: 160})
	if err != nil {
		t.Fatal(err)
	}
	if r.Burst == nil || r.Burst.Keys != 16 || r.Burst.Bursts != 10 || r.Requests != 160 || r.Statuses["200"] != 160 {
		t.Fatalf("%+v %+v", r, r.Burst)
	}
	if r.Burst.Ms.Max < r.LatencyMs.Max {
		t.Fatalf("the longest burst (%v ms) is shorter than its slowest request (%v ms)", r.Burst.Ms.Max, r.LatencyMs.Max)
	}
}

// TestBurstConnectionPerKey: across bursts each key keeps one connection of its own, so no
// connection dialled for one burst waits unused in a pool for a later one (see runBurst).
func TestBurstConnectionPerKey(t *testing.T) {
	t.Parallel()
	var conns atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Write([]byte(`{"signature":"x"}`))
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()
	keys := make([]string, 24)
	for i := range keys {
		keys[i] = fmt.Sprintf("tz1key%02d", i)
	}
	r, err := Run(t.Context(), Options{URL: srv.URL, Keys: keys, Workload: Burst, Requests: 24 * 6})
	if err != nil {
		t.Fatal(err)
	}
	if r.Statuses["200"] != 24*6 || r.Errors != 0 {
		t.Fatalf("%+v", r)
	}
	if n := conns.Load(); n != 24 {
		t.Fatalf("%d connections for 24 keys over %d bursts", n, r.Burst.Bursts)
	}
}

func TestNetstatField(t *testing.T) {
	text := "TcpExt: SyncookiesSent ListenOverflows ListenDrops\nTcpExt: 3 17 17\nIpExt: InNoRoutes\nIpExt: 0\n"
	if n, ok := netstatField(text, "TcpExt", "ListenOverflows"); !ok || n != 17 {
		t.Fatal(n, ok)
	}
	for _, f := range []string{"Missing", "InNoRoutes"} {
		if n, ok := netstatField(text, "TcpExt", f); ok {
			t.Fatal(f, n)
		}
	}
	if _, ok := netstatField("TcpExt: ListenOverflows\nTcpExt: x\n", "TcpExt", "ListenOverflows"); ok {
		t.Fatal("a value that is no number was read")
	}
	if _, ok := listenOverflows(); !ok && runtime.GOOS == "linux" {
		t.Fatal("no ListenOverflows in /proc/net/netstat")
	}
}
