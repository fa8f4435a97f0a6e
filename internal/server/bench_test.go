package server

import (
	"encoding/binary"
	"encoding/hex"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/signatory-go/signatory/internal/socket"
	tv "github.com/signatory-go/signatory/internal/testvectors"
	"github.com/signatory-go/signatory/internal/tezos"
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

// BenchmarkSocketSign is BenchmarkHTTPSign over the TCP socket transport: the same signer and
// request, one connection per goroutine, each request a frame.
func BenchmarkSocketSign(b *testing.B) {
	s, m, log := newEnvSigner(b, nil, nil)
	ls, _ := serveAll(b, New(Config{Address: "127.0.0.1:0", UtilityAddress: "127.0.0.1:0", SocketAddress: "127.0.0.1:0"}, s, m, log))
	msg, _ := hex.DecodeString(tv.LoadPolicyHex()["transaction ok"])
	h, _ := tezos.ParsePublicKeyHash(tv.K1PKH)
	key, _ := socket.PKH(h)
	req := append(append([]byte{socket.TagSign}, key...), binary.BigEndian.AppendUint32(nil, uint32(len(msg)))...)
	frame, _ := socket.AppendFrame(nil, append(req, msg...))
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		c, err := net.Dial("tcp", ls.Socket.Addr().String())
		if err != nil {
			b.Error(err)
			return
		}
		defer c.Close()
		buf := make([]byte, 0, 128)
		for pb.Next() {
			if _, err := c.Write(frame); err != nil {
				b.Error(err)
				return
			}
			resp, err := socket.ReadFrame(c, buf)
			if err != nil || resp[0] != 0 {
				b.Errorf("%v %x", err, resp)
				return
			}
		}
	})
}
