package loadtest

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// conn is one worker's keep-alive HTTP/1.1 connection to the signer. A worker sends one request
// at a time, so it needs no pool: the request is written with one write from a reused buffer and
// the answer read with net/http's own parser (http.ReadResponse, which handles a fixed length,
// chunks and "Connection: close"). net/http's client costs more than twice as much CPU per
// request (its transport hands every request and answer between three goroutines), and on a
// machine where the tool and the signer share the cores that CPU is taken from the signer being
// measured, unequally: the faster signer is held back more. A connection that fails or that the
// server closes is dialled again for the next request; a failed request is never sent again.
type conn struct {
	addr    string // host:port
	host    string // the Host header
	timeout time.Duration
	c       net.Conn
	r       *bufio.Reader
	req     []byte
}

// newConn returns an unconnected conn to the signer at root (http://host[:port], any path
// ignored: requests give their own).
func newConn(root string, timeout time.Duration) (*conn, error) {
	u, err := url.Parse(root)
	if err != nil {
		return nil, err
	}
	if u.Scheme != "http" || u.Host == "" {
		return nil, fmt.Errorf("signer URL %q: the load tool speaks plain http://host:port only", root)
	}
	addr := u.Host
	if u.Port() == "" {
		addr = net.JoinHostPort(u.Hostname(), "80")
	}
	return &conn{addr: addr, host: u.Host, timeout: timeout}, nil
}

// post sends body to path and copies the answer's body into out; it returns the answer's status.
func (c *conn) post(ctx context.Context, path string, body []byte, out *bytes.Buffer) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if c.c == nil {
		d := net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}
		nc, err := d.DialContext(ctx, "tcp", c.addr)
		if err != nil {
			return 0, err
		}
		c.c = nc
		if c.r == nil {
			c.r = bufio.NewReaderSize(nc, 4096)
		} else {
			c.r.Reset(nc)
		}
	}
	// A canceled run ends the request in flight at once (on this connection: close may clear c.c
	// while the function runs).
	nc := c.c
	stop := context.AfterFunc(ctx, func() { _ = nc.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	status, err := c.roundTrip(path, body, out)
	if err != nil {
		c.close()
		if ctx.Err() != nil {
			err = ctx.Err()
		}
	}
	return status, err
}

func (c *conn) roundTrip(path string, body []byte, out *bytes.Buffer) (int, error) {
	if err := c.c.SetDeadline(time.Now().Add(c.timeout)); err != nil {
		return 0, err
	}
	b := append(c.req[:0], "POST "...)
	b = append(b, path...)
	b = append(b, " HTTP/1.1\r\nHost: "...)
	b = append(b, c.host...)
	b = append(b, "\r\nUser-Agent: signatory-bench\r\nContent-Type: application/json\r\nContent-Length: "...)
	b = strconv.AppendInt(b, int64(len(body)), 10)
	b = append(b, "\r\n\r\n"...)
	b = append(b, body...)
	c.req = b
	if _, err := c.c.Write(b); err != nil {
		return 0, err
	}
	resp, err := http.ReadResponse(c.r, nil)
	if err != nil {
		return 0, err
	}
	out.Reset()
	_, err = io.Copy(out, resp.Body)
	resp.Body.Close()
	if err != nil {
		return 0, err
	}
	if resp.Close {
		c.close()
	}
	return resp.StatusCode, nil
}

// close drops the connection; the next request dials a new one.
func (c *conn) close() {
	if c.c != nil {
		_ = c.c.Close()
		c.c = nil
	}
}
