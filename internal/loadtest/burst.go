package loadtest

import (
	"context"
	"net"
	"net/http"
	"slices"
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
}

// runBurst runs bursts of one consensus request per key until o.Requests requests (rounded up to
// whole bursts) or o.Duration have been measured, after o.Warmup of unmeasured bursts.
func runBurst(ctx context.Context, o Options) (*Result, error) {
	streams, err := newStreams(Consensus, o.Keys, len(o.Keys), o.StartLevel, o.RunID)
	if err != nil {
		return nil, err
	}
	tr := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        len(streams) * 2,
		MaxIdleConnsPerHost: len(streams) * 2,
		MaxConnsPerHost:     len(streams) * 2,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 60 * time.Second}
	workers := make([]*worker, len(streams))
	for i, s := range streams {
		workers[i] = &worker{s: s, statuses: map[int]int{}}
	}
	// Each worker runs one request per burst: go is released by closing the burst's channel.
	burst := func(measure bool) time.Duration {
		release := make(chan struct{})
		var wg sync.WaitGroup
		for _, w := range workers {
			wg.Go(func() {
				body := w.s.body()
				<-release
				t0 := time.Now()
				status, err := w.do(ctx, client, o.URL+w.s.path, body)
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
