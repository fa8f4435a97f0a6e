package interop

import (
	"os/exec"
	"syscall"
)

// dieWithTest makes cmd get SIGKILL when the test process dies, even if the test binary itself is
// killed and its cleanups never run, and puts cmd in its own process group.
func dieWithTest(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

// killGroupOnCancel makes the cancellation of a CommandContext kill cmd's whole process group
// (cmd must have been through dieWithTest): node --test runs each test file in a child process,
// which must not outlive it.
func killGroupOnCancel(cmd *exec.Cmd) {
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
}
