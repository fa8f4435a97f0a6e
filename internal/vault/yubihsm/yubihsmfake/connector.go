package yubihsmfake

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
)

// Connector is an emulated yubihsm-connector serving a Device over HTTP on a loopback port:
// POST /connector/api carries one raw command message and returns the device's reply
// (application/octet-stream); GET /connector/status answers key=value lines (status, serial,
// version, pid, address, port), as the real connector does (docs.yubico.com, "YubiHSM 2
// Connector"; the fields yubihsm-go's HTTPConnector.GetStatus reads).
//
// Stop and Restart take the connector away and bring it back on the same address, with the
// device's keys (and, as on a real device, its sessions) kept.
type Connector struct {
	dev  *Device
	addr string

	mu  sync.Mutex
	srv *http.Server
}

// Start serves dev on addr ("127.0.0.1:0" picks a free port).
func Start(dev *Device, addr string) (*Connector, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	c := &Connector{dev: dev, addr: ln.Addr().String()}
	c.serve(ln)
	return c, nil
}

// Addr is the host:port the connector listens on.
func (c *Connector) Addr() string { return c.addr }

// URL is the connector's base URL.
func (c *Connector) URL() string { return "http://" + c.addr }

func (c *Connector) serve(ln net.Listener) {
	srv := &http.Server{Handler: c.handler()}
	c.mu.Lock()
	c.srv = srv
	c.mu.Unlock()
	go func() { _ = srv.Serve(ln) }()
}

// Stop closes the listener and every open connection, like a connector that exits.
func (c *Connector) Stop() {
	c.mu.Lock()
	srv := c.srv
	c.srv = nil
	c.mu.Unlock()
	if srv != nil {
		_ = srv.Close()
	}
}

// Restart listens again on the same address after Stop.
func (c *Connector) Restart() error {
	c.Stop()
	ln, err := net.Listen("tcp", c.addr)
	if err != nil {
		return err
	}
	c.serve(ln)
	return nil
}

func (c *Connector) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /connector/api", func(w http.ResponseWriter, r *http.Request) {
		req, err := io.ReadAll(io.LimitReader(r.Body, 3+maxMessage+1))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		resp := c.dev.Process(req)
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Length", strconv.Itoa(len(resp)))
		_, _ = w.Write(resp)
	})
	mux.HandleFunc("GET /connector/status", func(w http.ResponseWriter, r *http.Request) {
		host, port, _ := net.SplitHostPort(c.addr)
		w.Header().Set("Content-Type", "text/plain")
		fmt.Fprintf(w, "status=OK\nserial=*\nversion=3.0.4-fake\npid=0\naddress=%s\nport=%s\n", host, port)
	})
	return mux
}
