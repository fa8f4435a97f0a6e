package testdaemon

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// ErrExited is returned, wrapped with the exit status, when a process exits while it is awaited.
var ErrExited = errors.New("exited at start")

// pollInterval is how often readiness is checked.
const pollInterval = 20 * time.Millisecond

// Process is a started child process whose output goes to a writer. Every long-running child of
// the tests (the daemon, emulators, database servers) is one: see StartProcess.
type Process struct {
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

// StartProcess starts cmd with its standard output and error going to out, and with DieWithTest:
// on Linux the child (the leader of its own process group) gets SIGKILL when the test process
// dies. The environment and working directory are cmd's (Env, Dir); a command made with
// exec.CommandContext is killed with its whole group when the context ends. Standard input, when
// the caller needs it, is set up on cmd (StdinPipe) before the call.
func StartProcess(cmd *exec.Cmd, out io.Writer) (*Process, error) {
	cmd.Stdout, cmd.Stderr = out, out
	DieWithTest(cmd)
	if cmd.Cancel != nil { // exec.CommandContext
		KillGroupOnCancel(cmd)
	}
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

// Pid is the process id.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Done is closed when the process has exited.
func (p *Process) Done() <-chan struct{} { return p.done }

// Err is the result of Wait, once Done is closed: nil after a zero exit, an *exec.ExitError
// (whose ProcessState tells the signal) otherwise.
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

// Kill sends SIGKILL (which also ends a stopped process) to the process and, on Linux, to every
// process left in its group (a server's workers), and waits for the exit.
func (p *Process) Kill() {
	if !p.Exited() {
		killGroup(p.cmd.Process)
	}
	<-p.done
}

// Stop sends sig (a server's orderly shutdown: SIGTERM, or SIGINT for PostgreSQL's "fast" mode)
// and waits up to grace for the exit, then Kills. It does nothing once the process has exited.
func (p *Process) Stop(sig os.Signal, grace time.Duration) {
	p.Signal(sig)
	select {
	case <-p.done:
	case <-time.After(grace):
	}
	p.Kill()
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
			return fmt.Errorf("%w: %w", ErrExited, p.err)
		default:
		}
		if ready(ctx) {
			return nil
		}
		select {
		case <-ctx.Done():
			if p.Exited() {
				return fmt.Errorf("%w: %w", ErrExited, p.err)
			}
			return fmt.Errorf("not up within %v", timeout)
		case <-p.done:
			return fmt.Errorf("%w: %w", ErrExited, p.err)
		case <-time.After(pollInterval):
		}
	}
}

// WaitListening waits until addr accepts TCP connections, like WaitUntil.
func (p *Process) WaitListening(addr string, timeout time.Duration) error {
	err := p.WaitUntil(timeout, func(ctx context.Context) bool {
		return Listening(ctx, addr)
	})
	if err != nil && !errors.Is(err, ErrExited) {
		return fmt.Errorf("did not listen on %s within %v", addr, timeout)
	}
	return err
}

// WaitOutput waits until out, the Buffer the process writes to, holds s (a line the program
// prints once it is ready). It returns an error wrapping ErrExited when the process exits first,
// and "… not printed within …" when timeout passes.
func (p *Process) WaitOutput(out *Buffer, s string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	go func() {
		select {
		case <-p.done:
			cancel()
		case <-ctx.Done():
		}
	}()
	if out.WaitFor(ctx, s) {
		return nil
	}
	if p.Exited() {
		return fmt.Errorf("%w: %w", ErrExited, p.err)
	}
	return fmt.Errorf("%q not printed within %v", s, timeout)
}

// Listening reports whether addr accepts a TCP connection now.
func Listening(ctx context.Context, addr string) bool {
	c, err := (&net.Dialer{Timeout: time.Second}).DialContext(ctx, "tcp", addr)
	if err == nil {
		c.Close()
	}
	return err == nil
}

// RunTool runs a short one-shot tool (initdb, softhsm2-util, pkcs11-tool, go build, npm ci) to its
// end and returns its combined output. Like StartProcess it arranges DieWithTest, and a command
// made with exec.CommandContext is killed with its whole group when the context ends. A failure
// is an error naming the command, with its output.
func RunTool(cmd *exec.Cmd) ([]byte, error) {
	var out bytes.Buffer
	p, err := StartProcess(cmd, &out)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", commandLine(cmd), err)
	}
	if err := p.Err(); err != nil {
		return out.Bytes(), fmt.Errorf("%s: %v\n%s", commandLine(cmd), err, bytes.TrimSpace(out.Bytes()))
	}
	return out.Bytes(), nil
}

// commandLine is cmd's program (base name) and arguments, for error messages.
func commandLine(cmd *exec.Cmd) string {
	return strings.Join(append([]string{filepath.Base(cmd.Path)}, cmd.Args[1:]...), " ")
}
