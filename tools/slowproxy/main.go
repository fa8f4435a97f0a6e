// Command slowproxy is an HTTP reverse proxy that delays every request, or holds every request
// without ever answering (until the client gives up): a slow or frozen member of a threshold
// group, for scripts/bench-threshold.sh.
//
//	slowproxy --listen 127.0.0.1:6931 --target http://127.0.0.1:6903 [--delay 3s | --freeze]
package main

import (
	"flag"
	"log"
	"net/http"
	"net/http/httputil"
	"net/url"
	"time"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "address to listen on")
	target := flag.String("target", "", "the member's URL (http://host:port)")
	delay := flag.Duration("delay", 0, "hold each request this long before forwarding it")
	freeze := flag.Bool("freeze", false, "hold each request until the client gives up; never answer")
	flag.Parse()
	u, err := url.Parse(*target)
	if err != nil || u.Host == "" {
		log.Fatalf("--target %q: an http://host:port URL is needed", *target)
	}
	proxy := httputil.NewSingleHostReverseProxy(u)
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if *freeze {
			<-r.Context().Done()
			return
		}
		if *delay > 0 {
			t := time.NewTimer(*delay)
			select {
			case <-t.C:
			case <-r.Context().Done():
				t.Stop()
				return
			}
		}
		proxy.ServeHTTP(w, r)
	})
	log.Printf("slowproxy %s -> %s (delay %s, freeze %t)", *listen, *target, *delay, *freeze)
	srv := &http.Server{Addr: *listen, Handler: handler, ReadHeaderTimeout: 10 * time.Second}
	log.Fatal(srv.ListenAndServe())
}
