package testdaemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"time"
)

// ErrExited is returned, wrapped with the exit status, when a process exits while it is awaited.
var ErrExited = errors.New("exited at start")

// pollInterval is how often readiness is checked.
const pollInterval = 20 * time.Millisecond

// Process is a started child process whose output goes to a writer.
type Process struct {
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

// StartProcess starts cmd with its standard output and error going to out, and with DieWithTest.
func StartProcess(cmd *exec.Cmd, out io.Writer) (*Process, error) {
	cmd.Stdout, cmd.Stderr = out, out
	DieWithTest(cmd)
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &Process{cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// Done is closed when the process has exited.
func (p *Process) Done() <-chan struct{} { return p.done }

// Err is the result of Wait, once Done is closed.
func (p *Process) Err() error {
	<-p.done
	return p.err
}

// Exited reports whether the process has exited.
func (p *Process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Signal sends sig to the process; it does nothing once the process has exited.
func (p *Process) Signal(sig os.Signal) {
	if !p.Exited() {
		_ = p.cmd.Process.Signal(sig)
	}
}

// Kill sends SIGKILL (which also ends a stopped process) and waits for the exit.
func (p *Process) Kill() {
	p.Signal(os.Kill)
	<-p.done
}

// WaitUntil calls ready every 20 ms until it returns true, and returns nil then. It returns an
// error wrapping ErrExited as soon as the process exits, and "not up within …" when timeout
// passes. The context given to ready expires with the timeout.
func (p *Process) WaitUntil(timeout time.Duration, ready func(context.Context) bool) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	for {
		select {
		case <-p.done:
			return fmt.Errorf("%w: %v", ErrExited, p.err)
		default:
		}
		if ready(ctx) {
			return nil
		}
		select {
		case <-ctx.Done():
			if p.Exited() {
				return fmt.Errorf("%w: %v", ErrExited, p.err)
			}
			return fmt.Errorf("not up within %v", timeout)
		case <-time.After(pollInterval):
		}
	}
}

// WaitListening waits until addr accepts TCP connections, like WaitUntil.
func (p *Process) WaitListening(addr string, timeout time.Duration) error {
	err := p.WaitUntil(timeout, func(ctx context.Context) bool {
		c, err := (&net.Dialer{Timeout: time.Second}).DialContext(ctx, "tcp", addr)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	if err != nil && !errors.Is(err, ErrExited) {
		return fmt.Errorf("did not listen on %s within %v", addr, timeout)
	}
	return err
}
