//go:build unix

package testdaemon

import "syscall"

// Pause freezes the process (SIGSTOP): connections are accepted by the kernel but never
// answered.
func (s *Service) Pause() { s.process().Signal(syscall.SIGSTOP) }

// Resume undoes Pause.
func (s *Service) Resume() { s.process().Signal(syscall.SIGCONT) }
