package daemon

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestHostileClients: a slowloris client is cut off by the read timeout, an oversized body gets
// 413, and the server keeps serving everyone else throughout.
func TestHostileClients(t *testing.T) {
	ks, js, tz := keys(t, 1)
	k := ks[0]
	d := newDaemonWith(t, js, tz, "  read_timeout: 1s\n  max_body_bytes: 4096\n")
	d.Serve()

	// Slowloris: headers trickle in and never finish.
	conn, err := net.Dial("tcp", d.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, "POST /keys/"+k.pkh+" HTTP/1.1\r\nHost: x\r\n"); err != nil {
		t.Fatal(err)
	}
	closed := make(chan struct{})
	go func() {
		defer close(closed)
		for i := 0; i < 100; i++ {
			if _, err := io.WriteString(conn, "X-Slow: 1\r\n"); err != nil {
				return
			}
			time.Sleep(200 * time.Millisecond)
		}
	}()
	// Meanwhile, normal clients are served.
	for level := int32(1); level <= 5; level++ {
		if status, msg := d.Sign(k.pkh, attestation(chainA, level, 0, 0)); status != 200 {
			t.Fatalf("during slowloris: %d %s", status, msg)
		}
	}
	select {
	case <-closed:
	case <-time.After(15 * time.Second):
		t.Fatal("slowloris connection still open after 15 s with a 1 s read timeout")
	}

	// Oversized body: 413 with a clear message, the watermark unchanged.
	status, msg := d.Sign(k.pkh, strings.Repeat("00", 8192))
	if status != 413 || !strings.Contains(msg, "larger than 4096") {
		t.Fatalf("oversized body: %d %s", status, msg)
	}

	// A flood of headers beyond the header limit is refused.
	conn2, err := net.Dial("tcp", d.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn2.Close()
	req := "GET /keys/" + k.pkh + " HTTP/1.1\r\nHost: x\r\n" + strings.Repeat("X-Flood: "+strings.Repeat("a", 1000)+"\r\n", 100) + "\r\n"
	_ = conn2.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(conn2, req); err == nil {
		resp, err := http.ReadResponse(bufio.NewReader(conn2), nil)
		if err == nil && resp.StatusCode != 431 {
			t.Fatalf("header flood: %d", resp.StatusCode)
		}
	}
	if status, msg := d.Sign(k.pkh, attestation(chainA, 6, 0, 0)); status != 200 {
		t.Fatalf("after hostile clients: %d %s", status, msg)
	}
}
