package server

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/signatory-go/signatory/internal/metrics"
	"github.com/signatory-go/signatory/internal/sched"
	"github.com/signatory-go/signatory/internal/signer"
	"github.com/signatory-go/signatory/internal/testdaemon"
	"github.com/signatory-go/signatory/internal/tezos"
)

// holdService signs nothing: Sign records the request's class and, for a body starting "hold",
// waits until released. Priority is a first byte of 0x13.
type holdService struct {
	Service
	entered chan string
	release chan struct{}
	gate    chan struct{} // a "yield" request waits for it before it yields
}

func (h *holdService) Priority(_ string, msg []byte) bool { return len(msg) > 0 && msg[0] == 0x13 }
func (h *holdService) Known(string) bool                  { return false }
func (h *holdService) Sign(ctx context.Context, r *signer.SignRequest) (*signer.SignResult, error) {
	class := "generic"
	if sched.IsConsensus(ctx) {
		class = "consensus"
	}
	h.entered <- class
	if bytes.HasPrefix(r.Message, []byte("hold")) || bytes.HasPrefix(r.Message, []byte("\x13hold")) {
		<-h.release
	}
	if bytes.HasPrefix(r.Message, []byte("yield")) {
		<-h.gate
		sched.Yield(ctx)
	}
	sig, err := tezos.ParseSignature("edsigtkpiSSschcaCt9pUVrpNPf7TTcgvgDEDD6NCEHMy8NNQJCGnMfLZzYoQj74yLjo9wx6MPVV29CvVzgi7qEcEUok3k7AuMg")
	if err != nil {
		return nil, err
	}
	return &signer.SignResult{Signature: sig}, nil
}

func hexBody(s string) string { return `"` + hexOf(s) + `"` }

func hexOf(s string) string {
	const digits = "0123456789abcdef"
	var b strings.Builder
	for i := range len(s) {
		b.WriteByte(digits[s[i]>>4])
		b.WriteByte(digits[s[i]&15])
	}
	return b.String()
}

// TestAdmission: with one core for generic requests, a consensus request is served while a
// generic one holds the core (and reaches the signer marked as consensus, for the vault pools);
// a second generic request waits for the core; with the queue full a generic request gets 503.
func TestAdmission(t *testing.T) {
	t.Parallel()
	h := &holdService{entered: make(chan string, 8), release: make(chan struct{})}
	srv := New(Config{MaxGenericInFlight: 1}, h, metrics.New("test"), slog.New(slog.DiscardHandler))
	srv.cpu.SetMaxWait(time.Hour) // strict priority alone, however slow the machine
	hs := httptest.NewServer(srv.Handler())
	defer hs.Close()
	post := func(body string) int {
		resp, err := http.Post(hs.URL+"/keys/tz1x", "application/json", strings.NewReader(body))
		if err != nil {
			t.Error(err)
			return 0
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	statuses := make(chan int, 4)
	go func() { statuses <- post(hexBody("hold 1")) }()
	if c := <-h.entered; c != "generic" {
		t.Fatalf("a generic request reached the signer as %s", c)
	}
	go func() { statuses <- post(hexBody("second")) }()
	testdaemon.Until(t, "the second generic request waits", func() bool { _, _, w := srv.cpu.Load(); return w == 1 })
	if st := post(hexBody("\x13consensus")); st != 200 {
		t.Fatalf("consensus request while the core is held: %d", st)
	}
	if c := <-h.entered; c != "consensus" {
		t.Fatalf("the consensus request reached the signer as %s", c)
	}
	srv.cpu = sched.NewCPU(1, 0) // no queue: a generic request finding the core taken is refused
	srv.cpu.SetMaxWait(time.Hour)
	held, _ := srv.cpu.Generic(t.Context())
	if st := post(hexBody("refused")); st != http.StatusServiceUnavailable {
		t.Fatalf("generic request past the queue: %d, want 503", st)
	}
	held()
	close(h.release)
	for range 2 {
		if st := <-statuses; st != 200 {
			t.Fatalf("held generic requests: %d", st)
		}
	}
	if c := <-h.entered; c != "generic" {
		t.Fatalf("the queued generic request reached the signer as %s", c)
	}
}

// TestGenericYields: a generic request's context lets it yield its core to a consensus request in
// flight (the signer does at each step): it waits in Sign until the consensus request is answered.
func TestGenericYields(t *testing.T) {
	t.Parallel()
	h := &holdService{entered: make(chan string, 8), release: make(chan struct{}), gate: make(chan struct{})}
	srv := New(Config{MaxGenericInFlight: 2}, h, metrics.New("test"), slog.New(slog.DiscardHandler))
	srv.cpu.SetMaxWait(time.Hour)
	hs := httptest.NewServer(srv.Handler())
	defer hs.Close()
	post := func(body string, out chan<- int) {
		resp, err := http.Post(hs.URL+"/keys/tz1x", "application/json", strings.NewReader(body))
		if err != nil {
			t.Error(err)
			out <- 0
			return
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		out <- resp.StatusCode
	}
	cons, gen := make(chan int, 1), make(chan int, 1)
	go post(hexBody("yield"), gen) // admitted while no consensus request is in flight
	<-h.entered
	go post(hexBody("\x13hold"), cons)
	<-h.entered
	close(h.gate) // its next step, with a consensus request in flight and a core free beside it
	testdaemon.Until(t, "the generic request yields", func() bool { g, n, w := srv.cpu.Load(); return g == 0 && n == 1 && w == 1 })
	close(h.release)
	if st := <-cons; st != 200 {
		t.Fatalf("consensus: %d", st)
	}
	if st := <-gen; st != 200 {
		t.Fatalf("generic after yielding: %d", st)
	}
}

// countingReader counts the bytes read from it.
type countingReader struct {
	r io.Reader
	n atomic.Int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// TestLongBodyWaitsBeforeItsTail: a body too long to be a block or consensus operation is not
// read past priorityBody+1 bytes (nor decoded) until a core is free for it.
func TestLongBodyWaitsBeforeItsTail(t *testing.T) {
	t.Parallel()
	h := &holdService{entered: make(chan string, 1), release: make(chan struct{})}
	srv := New(Config{MaxGenericInFlight: 1}, h, metrics.New("test"), slog.New(slog.DiscardHandler))
	held, _ := srv.cpu.Generic(t.Context())
	body := hexBody("\x13" + strings.Repeat("x", 30<<10)) // starts like an attestation
	cr := &countingReader{r: strings.NewReader(body)}
	req := httptest.NewRequest("POST", "/keys/tz1x", cr)
	type out struct {
		msg []byte
		err error
	}
	done := make(chan out, 1)
	go func() {
		msg, _, release, err := srv.readAdmitted(httptest.NewRecorder(), req, "tz1x")
		if err == nil {
			release()
		}
		done <- out{msg, err}
	}()
	testdaemon.Until(t, "the long body waits for the core", func() bool { _, _, w := srv.cpu.Load(); return w == 1 })
	if n := cr.n.Load(); n != priorityBody+1 {
		t.Fatalf("%d bytes read before admission, want %d", n, priorityBody+1)
	}
	held()
	o := <-done
	if o.err != nil || len(o.msg) != 1+30<<10 || int(cr.n.Load()) != len(body) {
		t.Fatalf("after admission: %v, %d bytes decoded, %d read", o.err, len(o.msg), cr.n.Load())
	}
}

// TestSpareAllowed: no spare processor when GOMAXPROCS is set or a CPU quota applies.
func TestSpareAllowed(t *testing.T) {
	t.Setenv("GOMAXPROCS", strconv.Itoa(runtime.GOMAXPROCS(0)))
	if spareAllowed() {
		t.Fatal("a spare processor with GOMAXPROCS set")
	}
	t.Setenv("GOMAXPROCS", "")
	if spareAllowed() == cpuQuota() {
		t.Fatalf("spare allowed %v with a CPU quota %v", spareAllowed(), cpuQuota())
	}
}
