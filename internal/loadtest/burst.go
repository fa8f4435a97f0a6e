package loadtest

import (
	"context"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Burst is the workload of a block boundary: every key of --keys asks, at the same instant, for
// its consensus signature of the level (a preattestation burst, then an attestation burst, and so
// on at rising levels), as the keys of a large staking operation do every block. Each burst waits
// for its last answer; the report gives the time from the release of a burst to its last
// signature (BurstMs), beside the per-request latencies.
const Burst = "burst"

// BurstResult is what a burst run adds to the report.
type BurstResult struct {
	Keys   int     `json:"keys"`
	Bursts int     `json:"bursts"`
	Ms     Latency `json:"ms"` // time until the last signature of a burst
	// ListenOverflows is how many connections the kernel of the tool's host dropped from a full
	// listen queue during the measured bursts (Linux: TcpExt ListenOverflows of /proc/net/netstat;
	// absent elsewhere). With the signer on the same host, a count above 0 means the burst's
	// connections outran net.core.somaxconn and some waited for a SYN retransmission.
	ListenOverflows *int64 `json:"listen_overflows,omitempty"`
}

// listenOverflows reads the kernel's count of connections dropped from full listen queues
// (/proc/net/netstat's TcpExt ListenOverflows); false where there is none.
func listenOverflows() (int64, bool) {
	b, err := os.ReadFile("/proc/net/netstat")
	if err != nil {
		return 0, false
	}
	return netstatField(string(b), "TcpExt", "ListenOverflows")
}

// netstatField finds a field in /proc/net/netstat's format: for each group, a line of names and
// a line of values, both starting with "<group>:".
func netstatField(text, group, field string) (int64, bool) {
	var names []string
	for line := range strings.Lines(text) {
		f := strings.Fields(line)
		if len(f) == 0 || f[0] != group+":" {
			continue
		}
		if names == nil {
			names = f
			continue
		}
		i := slices.Index(names, field)
		if i < 0 || i >= len(f) {
			return 0, false
		}
		n, err := strconv.ParseInt(f[i], 10, 64)
		return n, err == nil
	}
	return 0, false
}

// runBurst runs bursts of one consensus request per key until o.Requests requests (rounded up to
// whole bursts) or o.Duration have been measured, after o.Warmup of unmeasured bursts.
func runBurst(ctx context.Context, o Options) (*Result, error) {
	streams, err := newStreams(Consensus, o.Keys, len(o.Keys), o.StartLevel, o.RunID)
	if err != nil {
		return nil, err
	}
	// Each worker has a connection of its own: with one shared pool, a request whose dial is slow
	// takes a connection another request has just freed, and its own dial lands unused in the
	// pool. When 10,000 dials at once overflow the signer's listen queue (net.core.somaxconn),
	// such a connection can be one the kernel answered with a SYN cookie but never handed to the
	// signer: the next burst's request written on it gets a connection reset, an error of the
	// tool, not of the signer.
	workers, err := newWorkers(streams, o.URL, 60*time.Second, 0)
	if err != nil {
		return nil, err
	}
	defer closeAll(workers)
	// Each worker runs one request per burst: go is released by closing the burst's channel.
	burst := func(measure bool) time.Duration {
		release := make(chan struct{})
		var wg sync.WaitGroup
		for _, w := range workers {
			wg.Go(func() {
				body := w.s.body()
				<-release
				t0 := time.Now()
				status, err := w.conn.post(ctx, w.s.path, body, &w.buf)
				if !measure {
					return
				}
				w.lat = append(w.lat, time.Since(t0))
				w.record(status, err)
			})
		}
		start := time.Now()
		close(release)
		wg.Wait()
		return time.Since(start)
	}
	warmEnd := time.Now().Add(o.Warmup)
	for ctx.Err() == nil && time.Now().Before(warmEnd) {
		burst(false)
	}
	mark, err := markCPU(ctx, o)
	if err != nil {
		return nil, err
	}
	overflows0, counted := listenOverflows()
	var bursts []time.Duration
	start := time.Now()
	for ctx.Err() == nil {
		bursts = append(bursts, burst(true))
		if o.Requests > 0 && len(bursts)*len(workers) >= o.Requests || o.Requests == 0 && time.Since(start) >= o.Duration {
			break
		}
	}
	r := report(o, workers, time.Since(start))
	r.Workload = Burst
	r.Burst = &BurstResult{Keys: len(workers), Bursts: len(bursts), Ms: percentiles(bursts)}
	if n, ok := listenOverflows(); ok && counted {
		n -= overflows0
		r.Burst.ListenOverflows = &n
	}
	if err := mark.perRequest(ctx, o, r); err != nil {
		return nil, err
	}
	return r, nil
}

// percentiles summarises durations in milliseconds.
func percentiles(all []time.Duration) Latency {
	if len(all) == 0 {
		return Latency{}
	}
	all = slices.Clone(all)
	slices.Sort(all)
	pct := func(p float64) float64 { return float64(all[int(p*float64(len(all)-1))].Microseconds()) / 1000 }
	var sum time.Duration
	for _, d := range all {
		sum += d
	}
	return Latency{P50: pct(0.5), P90: pct(0.9), P99: pct(0.99), P999: pct(0.999),
		Max: float64(all[len(all)-1].Microseconds()) / 1000, Mean: float64((sum / time.Duration(len(all))).Microseconds()) / 1000}
}
