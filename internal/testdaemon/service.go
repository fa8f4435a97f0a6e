package testdaemon

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

// Service is a child process that serves on a TCP address, such as an emulator or a database
// server, which a test may stop, restart (with the same address and data), freeze and thaw. The
// exported fields are set before Start; StartService sets them all.
type Service struct {
	TB           testing.TB
	Name         string           // in failure messages
	Addr         string           // host:port it listens on (127.0.0.1:Ports[0] from StartService)
	Ports        []string         // the loopback ports StartService picked for it
	Command      func() *exec.Cmd // the command of each start
	StartTimeout time.Duration    // how long Start waits for Ready; 30 s when zero
	// Ready tells whether the service is up; when nil, it is as soon as Addr accepts TCP
	// connections. Its error goes into the failure message when the service is not up in time.
	Ready func(ctx context.Context) error
	// StopSignal is sent by Stop for an orderly shutdown, after which the process has StopTimeout
	// (30 s when zero) to exit before SIGKILL; when nil, Stop kills at once.
	StopSignal  os.Signal
	StopTimeout time.Duration

	mu   sync.Mutex
	proc *Process
	logs *Buffer
}

// ServiceSpec describes a Service for StartService.
type ServiceSpec struct {
	Name  string
	Ports int // how many free loopback ports the command needs; 1 when zero
	// Command makes the command of each start, given the ports (as decimal strings; the address
	// is 127.0.0.1). A restart gets the same ports.
	Command      func(ports []string) *exec.Cmd
	StartTimeout time.Duration
	// Ready, when not nil, tells whether the service at addr (127.0.0.1:ports[0]) is up.
	Ready       func(ctx context.Context, addr string) error
	StopSignal  os.Signal
	StopTimeout time.Duration
}

// portAttempts is how many times StartService picks new ports when a port it picked was taken
// by someone else before the service could bind it.
const portAttempts = 4

// StartService starts a Service on free loopback ports and waits until it is ready. The process is
// stopped at the end of the test. When the program cannot be run at all the test is Unavailable;
// when it exits or is not up in time the test fails, with its output.
func StartService(tb testing.TB, spec ServiceSpec) *Service {
	tb.Helper()
	n := max(spec.Ports, 1)
	for attempt := 1; ; attempt++ {
		ports := make([]string, n)
		for i, a := range FreeAddrs(tb, n) {
			_, ports[i], _ = net.SplitHostPort(a)
		}
		s := &Service{TB: tb, Name: spec.Name, Addr: net.JoinHostPort("127.0.0.1", ports[0]), Ports: ports,
			Command: func() *exec.Cmd { return spec.Command(ports) }, StartTimeout: spec.StartTimeout,
			StopSignal: spec.StopSignal, StopTimeout: spec.StopTimeout}
		if spec.Ready != nil {
			s.Ready = func(ctx context.Context) error { return spec.Ready(ctx, s.Addr) }
		}
		tb.Cleanup(s.Stop)
		err := s.start()
		if err == nil {
			return s
		}
		if attempt < portAttempts && errors.Is(err, ErrExited) && strings.Contains(strings.ToLower(s.Logs()), "address already in use") {
			tb.Logf("%s: a port was taken meanwhile (%v); trying other ports", spec.Name, err)
			continue
		}
		s.fail(err)
	}
}

// errCannotRun marks a command that could not be started at all.
var errCannotRun = errors.New("cannot run")

// Start runs Command and waits until the service is Ready; it fails the test, with the output of
// the process, when the process exits or is not up in time, and the test is Unavailable when the
// command cannot be run at all. It does nothing while the process runs. The output of each start
// replaces that of the previous one.
func (s *Service) Start() {
	s.TB.Helper()
	if err := s.start(); err != nil {
		s.fail(err)
	}
}

func (s *Service) fail(err error) {
	s.TB.Helper()
	if errors.Is(err, errCannotRun) {
		Unavailable(s.TB, "%v", err)
	}
	s.TB.Fatalf("%s %v:\n%s", s.Name, err, s.Logs())
}

func (s *Service) start() error {
	s.mu.Lock()
	if s.proc != nil && !s.proc.Exited() {
		s.mu.Unlock()
		return nil
	}
	logs := new(Buffer)
	p, err := StartProcess(s.Command(), logs)
	if err != nil {
		s.mu.Unlock()
		return fmt.Errorf("%w %s: %w", errCannotRun, s.Name, err)
	}
	s.proc, s.logs = p, logs
	s.mu.Unlock()
	timeout := s.StartTimeout
	if timeout == 0 {
		timeout = 30 * time.Second
	}
	if s.Ready == nil {
		return p.WaitListening(s.Addr, timeout)
	}
	var last error
	err = p.WaitUntil(timeout, func(ctx context.Context) bool {
		last = s.Ready(ctx)
		return last == nil
	})
	if err != nil && !errors.Is(err, ErrExited) {
		return fmt.Errorf("%v (last check: %v)", err, last)
	}
	return err
}

// Stop ends the process (see StopSignal) and waits for its exit; it does nothing when it is not
// running.
func (s *Service) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil {
		return
	}
	if s.StopSignal != nil {
		grace := s.StopTimeout
		if grace == 0 {
			grace = 30 * time.Second
		}
		s.proc.Stop(s.StopSignal, grace)
	} else {
		s.proc.Kill()
	}
	s.proc = nil
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
	if s.proc == nil {
		s.TB.Fatalf("%s is not running", s.Name)
	}
	return s.proc
}
