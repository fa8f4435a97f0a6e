//go:build !linux

package testdaemon

import (
	"os"
	"os/exec"
)

// Elsewhere than Linux, child processes are only stopped by the tests' cleanups, and the
// cancellation of a CommandContext kills the command itself only.

// DieWithTest does nothing here: see the Linux version.
func DieWithTest(cmd *exec.Cmd) {}

// KillGroupOnCancel does nothing here: see the Linux version.
func KillGroupOnCancel(cmd *exec.Cmd) {}

// killGroup kills p only: without DieWithTest it leads no group of its own.
func killGroup(p *os.Process) { _ = p.Kill() }
