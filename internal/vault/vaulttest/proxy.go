package vaulttest

import (
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"sync"
	"testing"
)

// Proxy is an HTTP reverse proxy in front of a backend's endpoint (an emulator) that can hold
// every request, for the Stall of a backend that cannot stall by itself.
type Proxy struct {
	// URL is the proxy's address, to configure as the vault's endpoint.
	URL string

	mu   sync.Mutex
	hold chan struct{} // closed on release; nil while requests pass
}

// NewProxy starts a proxy to target (http://host:port) for the duration of t.
func NewProxy(t *testing.T, target string) *Proxy {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	p := &Proxy{}
	rp := httputil.NewSingleHostReverseProxy(u)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		hold := p.hold
		p.mu.Unlock()
		if hold != nil {
			select {
			case <-hold:
			case <-r.Context().Done(): // the client gave up: answer nothing
				return
			}
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(func() {
		p.release()
		srv.Close()
	})
	p.URL = srv.URL
	return p
}

// Stall holds every request until release is called (or the client gives up).
func (p *Proxy) Stall(*testing.T) (release func()) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.hold == nil {
		p.hold = make(chan struct{})
	}
	return p.release
}

func (p *Proxy) release() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.hold != nil {
		close(p.hold)
		p.hold = nil
	}
}
