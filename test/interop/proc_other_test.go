//go:build !linux

package interop

import "os/exec"

// Elsewhere than Linux, the daemons are only stopped by the test's cleanups, and a cancellation
// kills node itself only.

func dieWithTest(cmd *exec.Cmd) {}

func killGroupOnCancel(cmd *exec.Cmd) {}
