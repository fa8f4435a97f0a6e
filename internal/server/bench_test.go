package server

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	tv "github.com/signatory-go/signatory/internal/testvectors"
)

// BenchmarkHTTPSign is a generic tz1 sign through the real handler over a loopback keep-alive
// connection (the client's cost included).
func BenchmarkHTTPSign(b *testing.B) {
	e := newEnv(b, nil, nil, 0)
	body := `"` + tv.LoadPolicyHex()["transaction ok"] + `"`
	url := e.srv.URL + "/keys/" + tv.K1PKH
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			resp, err := http.Post(url, "application/json", strings.NewReader(body))
			if err != nil {
				b.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				b.Fatal(resp.Status)
			}
		}
	})
}

// BenchmarkLoopbackFloor is the HTTP/1.1 keep-alive round trip alone, for the ratio.
func BenchmarkLoopbackFloor(b *testing.B) {
	srv := newTrivial(b)
	b.ReportAllocs()
	for b.Loop() {
		resp, err := http.Post(srv, "application/json", strings.NewReader(`"00"`))
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
}

func newTrivial(b *testing.B) string {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /x", func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		_, _ = w.Write([]byte(`{"signature":"x"}`))
	})
	s := httptestServer(mux)
	b.Cleanup(s.Close)
	return s.URL + "/x"
}
func httptestServer(h http.Handler) *httptest.Server { return httptest.NewServer(h) }
