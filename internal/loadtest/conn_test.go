package loadtest

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestConnAgainstNetHTTP: the tool's connection reads what net/http's server writes: a fixed
// length, chunks, an empty body, "Connection: close" (the next request dials again), and it sends
// what the server reads: the method, path, Host, Content-Type and body.
func TestConnAgainstNetHTTP(t *testing.T) {
	t.Parallel()
	var conns atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" || r.Host == "" {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		switch r.URL.Path {
		case "/fixed":
			w.Write(body)
		case "/chunked": // flushed before the end: net/http chunks the body
			w.Write([]byte("first,"))
			w.(http.Flusher).Flush()
			w.Write(body)
		case "/empty":
			w.WriteHeader(http.StatusServiceUnavailable)
		case "/close":
			w.Header().Set("Connection", "close")
			w.Write(body)
		}
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()
	c, err := newConn(srv.URL, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.close()
	var out bytes.Buffer
	for i, tc := range []struct {
		path, body, want string
		status           int
		conns            int64
	}{
		{"/fixed", `"aa"`, `"aa"`, 200, 1},
		{"/chunked", `"bb"`, `first,"bb"`, 200, 1},
		{"/empty", `"cc"`, ``, 503, 1},
		{"/fixed", strings.Repeat("d", 10000), strings.Repeat("d", 10000), 200, 1},
		{"/close", `"ee"`, `"ee"`, 200, 1},
		{"/fixed", `"ff"`, `"ff"`, 200, 2}, // a new connection after the close
	} {
		st, err := c.post(t.Context(), tc.path, []byte(tc.body), &out)
		if err != nil || st != tc.status || out.String() != tc.want {
			t.Fatalf("request %d %s: %d %q %v", i, tc.path, st, out.String(), err)
		}
		if n := conns.Load(); n != tc.conns {
			t.Fatalf("request %d %s: %d connections, want %d", i, tc.path, n, tc.conns)
		}
	}
}

// TestConnRedialsAfterFailure: a connection the server drops fails that request only; the next
// one dials again. A canceled context ends a request the server never answers.
func TestConnRedialsAfterFailure(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	accepted := make(chan net.Conn, 4)
	go func() {
		for {
			nc, err := l.Accept()
			if err != nil {
				return
			}
			accepted <- nc
		}
	}()
	c, err := newConn("http://"+l.Addr().String(), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	defer c.close()
	var out bytes.Buffer
	// 1: the server closes without answering.
	done := make(chan error, 1)
	go func() { _, err := c.post(t.Context(), "/keys/x", []byte(`"00"`), &out); done <- err }()
	(<-accepted).Close()
	if err := <-done; err == nil {
		t.Fatal("a request the server closed without an answer succeeded")
	}
	// 2: a new connection, answered.
	go func() {
		st, err := c.post(t.Context(), "/keys/x", []byte(`"00"`), &out)
		if err == nil && st != 200 {
			err = errors.New(http.StatusText(st))
		}
		done <- err
	}()
	nc := <-accepted
	buf := make([]byte, 4096)
	if n, _ := nc.Read(buf); !bytes.HasPrefix(buf[:n], []byte("POST /keys/x HTTP/1.1\r\n")) {
		t.Fatalf("request %q", buf[:n])
	}
	nc.Write([]byte("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"))
	if err := <-done; err != nil || out.String() != "ok" {
		t.Fatal(err, out.String())
	}
	// 3: never answered; the run is canceled.
	ctx, cancel := context.WithCancel(t.Context())
	go func() { _, err := c.post(ctx, "/keys/x", []byte(`"00"`), &out); done <- err }()
	nc.Read(buf) // the request arrived on the same connection
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("canceled request: %v", err)
	}
	nc.Close()
}

func TestConnPlainHTTPOnly(t *testing.T) {
	t.Parallel()
	for _, u := range []string{"https://127.0.0.1:6732", "127.0.0.1:6732", "http://"} {
		if _, err := newConn(u, time.Second); err == nil {
			t.Fatalf("%q accepted", u)
		}
	}
	c, err := newConn("http://localhost", time.Second)
	if err != nil || c.addr != "localhost:80" || c.host != "localhost" {
		t.Fatal(c, err)
	}
}
