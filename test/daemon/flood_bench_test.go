package daemon

import (
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	tv "github.com/signatory-go/signatory/internal/testvectors"
)

// BenchmarkBakerUnderFlood measures a baker's attestation stream (one request at a time, as a
// baker sends them) through the real binary, alone ("quiet") and while 8 connections flood the
// signer with generic operations for the same key and refused garbage ("flood", with the default
// scheduler; "flood-cap1" with generic requests held to one core, the former default on two). It
// reports the stream's p50 and p99 latency (consensus requests do not queue behind generic ones)
// and the generic requests answered per second meanwhile.
func BenchmarkBakerUnderFlood(b *testing.B) {
	ks, js, _ := keys(b, 1)
	k := ks[0]
	tz := "  " + k.pkh + ":\n    allow:\n      attestation:\n      generic: [transaction]\n"
	for _, run := range []struct {
		name, server string
		flood        bool
	}{{"quiet", "", false}, {"flood", "", true}, {"flood-cap1", "  max_generic_in_flight: 1\n", true}} {
		flood := run.flood
		b.Run(run.name, func(b *testing.B) {
			d := newDaemonWith(b, js, tz, run.server)
			d.Serve()
			stop := make(chan struct{})
			var wg sync.WaitGroup
			var answered atomic.Int64
			if flood {
				client := &http.Client{Timeout: time.Minute}
				transfer := `"` + tv.LoadPolicyHex()["transaction ok"] + `"`
				garbage := `"` + strings.Repeat("ab", 30<<10) + `"`
				for i := range 8 {
					body := transfer
					if i%4 == 3 {
						body = garbage
					}
					wg.Go(func() {
						for {
							select {
							case <-stop:
								return
							default:
							}
							resp, err := client.Post("http://"+d.Addr+"/keys/"+k.pkh, "application/json", strings.NewReader(body))
							if err == nil {
								io.Copy(io.Discard, resp.Body)
								resp.Body.Close()
								if resp.StatusCode == 200 {
									answered.Add(1)
								}
							}
						}
					})
				}
			}
			lat := make([]time.Duration, 0, b.N)
			level := int32(0)
			b.ResetTimer()
			answered.Store(0)
			began := time.Now()
			for b.Loop() {
				level++
				start := time.Now()
				if status, msg := d.Sign(k.pkh, attestation(chainA, level, 0, 0)); status != 200 {
					b.Fatalf("%d %s", status, msg)
				}
				lat = append(lat, time.Since(start))
			}
			b.StopTimer()
			floodRate := float64(answered.Load()) / time.Since(began).Seconds()
			close(stop)
			wg.Wait()
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
			if flood {
				b.ReportMetric(floodRate, "generic-ok/s")
			}
		})
	}
}
