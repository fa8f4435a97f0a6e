package testdaemon

import (
	"os"
	"os/exec"
	"syscall"
)

// DieWithTest makes cmd get SIGKILL when the test process dies, even if the test binary itself is
// killed and its cleanups never run, and puts cmd in its own process group.
func DieWithTest(cmd *exec.Cmd) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setpgid = true
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
}

// KillGroupOnCancel makes the cancellation of a CommandContext kill cmd's whole process group
// (cmd must have been through DieWithTest), so that the children of cmd do not outlive it.
func KillGroupOnCancel(cmd *exec.Cmd) {
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
}

// killGroup sends SIGKILL to the group p leads (DieWithTest made it a leader), and to p itself.
func killGroup(p *os.Process) {
	_ = syscall.Kill(-p.Pid, syscall.SIGKILL)
	_ = p.Kill()
}
