//go:build unix

package testdaemon

import (
	"bufio"
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
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

func helperCommand(mode string) func(ports []string) *exec.Cmd {
	return func(ports []string) *exec.Cmd { return helper(mode, "127.0.0.1:"+ports[0]) }
}

func TestService(t *testing.T) {
	s := StartService(t, ServiceSpec{Name: "helper", Command: helperCommand("serve")})
	addr := s.Addr
	if got, err := answer(addr); got != "ok\n" || !strings.Contains(s.Logs(), "serving") {
		t.Fatalf("answer %q %v, log %q", got, err, s.Logs())
	}
	if len(s.Ports) != 1 || addr != "127.0.0.1:"+s.Ports[0] {
		t.Fatalf("addr %s, ports %v", addr, s.Ports)
	}
	pid := s.process().Pid()
	s.Start() // running: nothing to do
	if s.process().Pid() != pid {
		t.Fatal("Start of a running service started another process")
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

// TestServiceSpec: several ports, a readiness check of the service's own, an orderly stop, and
// a port taken by someone else between its choice and the bind.
func TestServiceSpec(t *testing.T) {
	var checks int
	s := StartService(t, ServiceSpec{
		Name:  "helper",
		Ports: 2,
		Command: func(ports []string) *exec.Cmd {
			if len(ports) != 2 || ports[0] == ports[1] {
				t.Errorf("ports %v", ports)
			}
			return helper("terminate", "127.0.0.1:"+ports[0])
		},
		Ready: func(ctx context.Context, addr string) error {
			checks++
			got, err := answer(addr)
			if err == nil && got != "ok\n" {
				err = errors.New("answer " + got)
			}
			return err
		},
		StopSignal: syscall.SIGTERM,
	})
	if checks == 0 {
		t.Fatal("Ready was not called")
	}
	s.Stop()
	if !strings.Contains(s.Logs(), "terminating") {
		t.Fatalf("Stop did not send StopSignal first: %q", s.Logs())
	}

	mark := filepath.Join(t.TempDir(), "mark")
	s = StartService(t, ServiceSpec{Name: "helper", Command: func(ports []string) *exec.Cmd {
		cmd := helper("busy-once", "127.0.0.1:"+ports[0])
		cmd.Env = append(cmd.Env, "TESTDAEMON_MARK="+mark)
		return cmd
	}})
	if got, err := answer(s.Addr); got != "ok\n" {
		t.Fatalf("after a port taken at the first start: %q %v", got, err)
	}
	if _, err := os.Stat(mark); err != nil {
		t.Fatal("the first start did not run")
	}
}
