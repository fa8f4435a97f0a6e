package testdaemon

import (
	"net"
	"os/exec"
	"sync"
	"testing"
	"time"
)

// Service is a child process that serves on a TCP address, such as an emulator, which a test
// may stop, restart (with the same address and data), freeze and thaw.
type Service struct {
	TB           testing.TB
	Name         string           // in failure messages
	Addr         string           // host:port it listens on
	Command      func() *exec.Cmd // the command of each start
	StartTimeout time.Duration    // how long Start waits for Addr; 20 s when zero

	mu   sync.Mutex
	proc *Process
	logs *Buffer
}

// StartService starts a Service on a free loopback port: command makes the command of each
// start, given the port (the address is 127.0.0.1). The process is killed at the end of the test.
func StartService(tb testing.TB, name string, timeout time.Duration, command func(port string) *exec.Cmd) *Service {
	tb.Helper()
	addr := FreeAddr(tb)
	_, port, _ := net.SplitHostPort(addr)
	s := &Service{TB: tb, Name: name, Addr: addr, StartTimeout: timeout, Command: func() *exec.Cmd { return command(port) }}
	s.Start()
	tb.Cleanup(s.Stop)
	return s
}

// Start runs Command and waits until Addr accepts connections; it fails the test, with the
// output of the process, when the process exits or does not listen in time, and the test is
// Unavailable when the command cannot be run at all. The output of each start replaces that of
// the previous one.
func (s *Service) Start() {
	s.TB.Helper()
	logs := new(Buffer)
	p, err := StartProcess(s.Command(), logs)
	if err != nil {
		Unavailable(s.TB, "cannot start %s: %v", s.Name, err)
	}
	s.mu.Lock()
	s.proc, s.logs = p, logs
	s.mu.Unlock()
	timeout := s.StartTimeout
	if timeout == 0 {
		timeout = 20 * time.Second
	}
	if err := p.WaitListening(s.Addr, timeout); err != nil {
		s.TB.Fatalf("%s %v:\n%s", s.Name, err, logs)
	}
}

// Stop kills the process; it does nothing when it is not running.
func (s *Service) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc != nil {
		s.proc.Kill()
		s.proc = nil
	}
}

// Restart stops the process and starts it again.
func (s *Service) Restart() {
	s.TB.Helper()
	s.Stop()
	s.Start()
}

// Logs returns the output of the process since its last start.
func (s *Service) Logs() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.logs == nil {
		return ""
	}
	return s.logs.String()
}

func (s *Service) process() *Process {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.proc
}
