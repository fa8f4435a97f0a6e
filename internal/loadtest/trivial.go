package loadtest

import (
	"io"
	"net"
	"net/http"
)

// TrivialServer serves POST /keys/{pkh} with a constant signature and no work, to measure the
// load tool's own ceiling on this machine. It returns the listener's URL and a stop function.
func TrivialServer() (string, func(), error) { return TrivialServerAt("127.0.0.1:0") }

// TrivialServerAt is TrivialServer on addr.
func TrivialServerAt(addr string) (string, func(), error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return "", nil, err
	}
	body := []byte(`{"signature":"edsigtXwQk7vJvUGLVjSDqE3egYMVYVvDctZCXnXrbecmB85kfN51fib1NKq6aDiVHYDNGMid1EW7hfq92ZUXYsag8Gyx4GFyU6"}` + "\n")
	mux := http.NewServeMux()
	mux.HandleFunc("POST /keys/{pkh}", func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		_, _ = w.Write(body)
	})
	srv := &http.Server{Handler: mux}
	go func() { _ = srv.Serve(l) }()
	return "http://" + l.Addr().String(), func() { srv.Close() }, nil
}
