//go:build unix

package testdaemon

import (
	"bufio"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// answer connects to addr and reads a line, within a second.
func answer(addr string) (string, error) {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	return bufio.NewReader(c).ReadString('\n')
}

func TestService(t *testing.T) {
	s := StartService(t, "helper", 0, func(port string) *exec.Cmd { return helper("serve", "127.0.0.1:"+port) })
	addr := s.Addr
	if got, err := answer(addr); got != "ok\n" || !strings.Contains(s.Logs(), "serving") {
		t.Fatalf("answer %q %v, log %q", got, err, s.Logs())
	}

	s.Pause()
	if got, err := answer(addr); err == nil {
		t.Fatalf("a paused process answered %q", got)
	}
	s.Resume()
	if got, err := answer(addr); got != "ok\n" {
		t.Fatalf("after Resume: %q %v", got, err)
	}

	s.Pause()
	s.Stop() // kills the frozen process too
	s.Stop()
	if _, err := answer(addr); err == nil {
		t.Fatal("a stopped process answered")
	}
	s.Restart()
	if got, err := answer(addr); got != "ok\n" {
		t.Fatalf("after Restart: %q %v", got, err)
	}
}
