package server

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/signatory-go/signatory/internal/fault"
	"github.com/signatory-go/signatory/internal/metrics"
)

// TestRefusalLogsBounded: 40 refused 60 KB payloads from one client log a few short lines (a
// prefix and digest of the payload, never the payload), and the rest are counted.
func TestRefusalLogsBounded(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	s := New(Config{}, nil, metrics.New("t"), slog.New(slog.NewTextHandler(&buf, nil)))
	clock := time.Unix(0, 0)
	s.refusals.now = func() time.Time { return clock }
	payload := bytes.Repeat([]byte{0xab}, 60<<10)
	longPath := strings.Repeat("z", 30<<10)
	err := fault.New(fault.BadRequest, "invalid generic operation payload")
	for range 40 {
		s.logSign("id", longPath, "10.0.0.1", payload, nil, 400, time.Millisecond, err)
	}
	if n := buf.Len(); n > 5*1024 {
		t.Fatalf("40 refusals logged %d bytes", n)
	}
	if c := strings.Count(buf.String(), "sign refused"); c != refusalBurst {
		t.Fatalf("%d lines, want %d", c, refusalBurst)
	}
	if !strings.Contains(buf.String(), "raw_digest=") || strings.Contains(buf.String(), strings.Repeat("ab", 40)) {
		t.Fatalf("payload logged in full or without its digest:\n%s", buf.String()[:500])
	}
	// After the window, the next refusal says how many were left out.
	clock = clock.Add(refusalWindow)
	buf.Reset()
	s.logSign("id", "tz1", "10.0.0.1", payload, nil, 400, time.Millisecond, err)
	if !strings.Contains(buf.String(), "similar_refusals_not_logged=35") {
		t.Fatalf("no count of the suppressed lines:\n%s", buf.String())
	}
	// Another client is not silenced by the first.
	buf.Reset()
	s.logSign("id", "tz1", "10.0.0.2", payload, nil, 400, time.Millisecond, err)
	if !strings.Contains(buf.String(), "sign refused") {
		t.Fatal("another client's refusal was suppressed")
	}
}

// TestRefusalLimiterBoundedKeys: a flood of distinct clients or messages keeps the limiter's map
// bounded.
func TestRefusalLimiterBoundedKeys(t *testing.T) {
	t.Parallel()
	l := newRefusalLimiter()
	for i := range 10 * refusalKeys {
		l.allow(strings.Repeat("x", i%50)+string(rune('a'+i%26))+time.Duration(i).String(), 400, "m")
	}
	if n := len(l.keys); n > refusalKeys+1 {
		t.Fatalf("%d keys", n)
	}
}

// TestServerErrorBodies: a 500 says what kind of failure it was and the request id, never the
// cause's own text; a 4xx keeps its message.
func TestServerErrorBodies(t *testing.T) {
	t.Parallel()
	cause := errors.New("open /var/lib/signatory/watermark_v2/x.json: permission denied; host db.internal")
	for _, c := range []struct {
		err  error
		want string
	}{
		{&fault.Error{Kind: fault.Internal, Msg: "watermark store error: " + cause.Error(), Err: cause, Client: "watermark store error: refusing to sign"}, "watermark store error: refusing to sign (request r-1)"},
		{fmt.Errorf("signing: %w", fault.Safe(fault.Internal, "the vault returned an invalid signature", cause)), "the vault returned an invalid signature (request r-1)"},
		{&fault.Error{Kind: fault.Internal, Msg: "(kms): " + cause.Error(), Err: cause}, "signing failed: vault error (request r-1)"},
		// A server error's own words are never the client's, whatever they say.
		{&fault.Error{Kind: fault.Internal, Msg: "policy hook: " + cause.Error(), Err: cause}, "signing failed: vault error (request r-1)"},
		{&fault.Error{Kind: fault.Unavailable, Msg: "audit journal: " + cause.Error()}, "service unavailable (request r-1)"},
	} {
		var rec bytes.Buffer
		w := &recorder{body: &rec}
		writeErrorID(w, c.err, "r-1")
		if !strings.Contains(rec.String(), c.want) || strings.Contains(rec.String(), "db.internal") {
			t.Fatalf("body %s, want %q", rec.String(), c.want)
		}
	}
}

type recorder struct {
	body *bytes.Buffer
	h    map[string][]string
}

func (r *recorder) Header() http.Header {
	if r.h == nil {
		r.h = map[string][]string{}
	}
	return r.h
}
func (r *recorder) Write(b []byte) (int, error) { return r.body.Write(b) }
func (r *recorder) WriteHeader(int)             {}
