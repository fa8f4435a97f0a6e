package loadtest

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync"
	"time"
)

// Options configure a run.
type Options struct {
	URL         string        // signer root, e.g. http://127.0.0.1:6732
	Keys        []string      // key hashes
	Workload    string        // generic, consensus, mixed
	Concurrency int           // streams
	Duration    time.Duration // measured time (ignored when Requests > 0)
	Requests    int           // total measured requests; 0 means use Duration
	Warmup      time.Duration // unmeasured time before the clock starts
	StartLevel  uint32        // first consensus level (default 1)
	// RunID selects the chain ids of consensus streams (default: random, so every run starts
	// from empty watermarks; the signer's file store gets one small file per chain).
	RunID uint32
	// SignerCPU, when set, samples the signer's CPU time at the start and the end of the measured
	// window, for its CPU per request.
	SignerCPU CPUSampler
}

// Result is a run's report.
type Result struct {
	Workload    string         `json:"workload"`
	Concurrency int            `json:"concurrency"`
	Requests    int            `json:"requests"`
	Seconds     float64        `json:"seconds"`
	Throughput  float64        `json:"throughput_rps"`
	Statuses    map[string]int `json:"statuses"`
	LatencyMs   Latency        `json:"latency_ms"`
	Errors      int            `json:"errors"`
	FirstError  string         `json:"first_error,omitempty"`
	// SignerCPUUs is the signer's CPU time per measured request in µs (with --pid or
	// --metrics-url); ToolCPUUs is the load tool's own.
	SignerCPUUs float64 `json:"signer_cpu_us_per_request,omitempty"`
	ToolCPUUs   float64 `json:"tool_cpu_us_per_request,omitempty"`
	// Burst is set by the burst workload.
	Burst *BurstResult `json:"burst,omitempty"`
}

// Latency percentiles in milliseconds.
type Latency struct {
	P50, P90, P99, P999, Max, Mean float64
}

type worker struct {
	s        *stream
	conn     *conn
	lat      []time.Duration
	statuses map[int]int
	errs     int
	firstErr string
	buf      bytes.Buffer
}

// Run performs the load and returns the report.
func Run(ctx context.Context, o Options) (*Result, error) {
	if o.Concurrency < 1 {
		o.Concurrency = 1
	}
	if o.RunID == 0 {
		o.RunID = rand.Uint32() >> 10
	}
	if o.Workload == Burst {
		return runBurst(ctx, o)
	}
	streams, err := newStreams(o.Workload, o.Keys, o.Concurrency, o.StartLevel, o.RunID)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	perWorker := 1 << 16
	if o.Requests > 0 {
		perWorker = o.Requests/len(streams) + 1
	}
	workers, err := newWorkers(streams, o.URL, 30*time.Second, perWorker)
	if err != nil {
		return nil, err
	}
	defer closeAll(workers)

	var remaining chan struct{}
	if o.Requests > 0 {
		remaining = make(chan struct{}, o.Requests)
		for i := 0; i < o.Requests; i++ {
			remaining <- struct{}{}
		}
		close(remaining)
	}
	var (
		measuring = make(chan struct{})
		stop      = make(chan struct{})
		wg        sync.WaitGroup
	)
	for _, w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.loop(ctx, measuring, stop, remaining)
		}()
	}
	if o.Warmup > 0 {
		select {
		case <-time.After(o.Warmup):
		case <-ctx.Done():
		}
	}
	mark, err := markCPU(ctx, o)
	if err != nil {
		cancel() // the workers stop at their next request
		wg.Wait()
		return nil, err
	}
	start := time.Now()
	close(measuring)
	if o.Requests == 0 {
		select {
		case <-time.After(o.Duration):
		case <-ctx.Done():
		}
		close(stop)
	}
	wg.Wait()
	elapsed := time.Since(start)
	r := report(o, workers, elapsed)
	if err := mark.perRequest(ctx, o, r); err != nil {
		return nil, err
	}
	return r, nil
}

func (w *worker) loop(ctx context.Context, measuring, stop <-chan struct{}, remaining <-chan struct{}) {
	warm := true
	for ctx.Err() == nil {
		if warm {
			select {
			case <-measuring:
				warm = false
			default:
			}
		}
		if !warm {
			if remaining != nil {
				if _, ok := <-remaining; !ok {
					return
				}
			} else {
				select {
				case <-stop:
					return
				default:
				}
			}
		}
		body := w.s.body()
		t0 := time.Now()
		status, err := w.conn.post(ctx, w.s.path, body, &w.buf)
		d := time.Since(t0)
		if warm {
			continue
		}
		w.lat = append(w.lat, d)
		w.record(status, err)
	}
}

// record counts one measured answer.
func (w *worker) record(status int, err error) {
	if err != nil {
		w.errs++
		if w.firstErr == "" {
			w.firstErr = err.Error()
		}
		return
	}
	w.statuses[status]++
	if status != 200 && w.firstErr == "" {
		w.firstErr = fmt.Sprintf("%d %s: %s", status, w.s.kind(), bytes.TrimSpace(w.buf.Bytes()))
	}
}

// newWorkers makes a worker for each stream, each with its own connection to the signer at url
// (an answer awaited at most timeout), each with room for latCap latencies.
func newWorkers(streams []*stream, url string, timeout time.Duration, latCap int) ([]*worker, error) {
	c, err := newConn(url, timeout)
	if err != nil {
		return nil, err
	}
	workers := make([]*worker, len(streams))
	for i, s := range streams {
		own := *c // the parsed address; a connection of its own
		workers[i] = &worker{s: s, conn: &own, statuses: map[int]int{}, lat: make([]time.Duration, 0, latCap)}
	}
	return workers, nil
}

// closeAll closes the workers' connections.
func closeAll(workers []*worker) {
	for _, w := range workers {
		w.conn.close()
	}
}

func report(o Options, workers []*worker, elapsed time.Duration) *Result {
	r := &Result{Workload: o.Workload, Concurrency: len(workers), Seconds: elapsed.Seconds(), Statuses: map[string]int{}}
	var all []time.Duration
	for _, w := range workers {
		all = append(all, w.lat...)
		for st, n := range w.statuses {
			r.Statuses[strconv.Itoa(st)] += n
		}
		r.Errors += w.errs
		if r.FirstError == "" {
			r.FirstError = w.firstErr
		}
	}
	r.Requests = len(all)
	if elapsed > 0 {
		r.Throughput = float64(r.Requests) / elapsed.Seconds()
	}
	if len(all) == 0 {
		return r
	}
	r.LatencyMs = percentiles(all)
	return r
}

// Format renders a report for a person.
func (r *Result) Format() string {
	var b bytes.Buffer
	fmt.Fprintf(&b, "workload %s, %d streams: %d requests in %.2f s = %.0f req/s\n", r.Workload, r.Concurrency, r.Requests, r.Seconds, r.Throughput)
	fmt.Fprintf(&b, "latency ms: p50 %.3f  p90 %.3f  p99 %.3f  p99.9 %.3f  max %.3f  mean %.3f\n",
		r.LatencyMs.P50, r.LatencyMs.P90, r.LatencyMs.P99, r.LatencyMs.P999, r.LatencyMs.Max, r.LatencyMs.Mean)
	keys := make([]string, 0, len(r.Statuses))
	for k := range r.Statuses {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	fmt.Fprint(&b, "statuses:")
	for _, k := range keys {
		fmt.Fprintf(&b, " %s×%d", k, r.Statuses[k])
	}
	if r.Errors > 0 {
		fmt.Fprintf(&b, " transport-errors×%d", r.Errors)
	}
	fmt.Fprintln(&b)
	if r.Burst != nil {
		fmt.Fprintf(&b, "bursts of %d keys: %d; time to the last signature ms: p50 %.3f  p90 %.3f  max %.3f\n",
			r.Burst.Keys, r.Burst.Bursts, r.Burst.Ms.P50, r.Burst.Ms.P90, r.Burst.Ms.Max)
	}
	if r.SignerCPUUs > 0 {
		fmt.Fprintf(&b, "CPU per request: signer %.1f µs, load tool %.1f µs\n", r.SignerCPUUs, r.ToolCPUUs)
	}
	if r.FirstError != "" {
		fmt.Fprintf(&b, "first error: %s\n", r.FirstError)
	}
	return b.String()
}
