//go:build !linux

package sched

import "errors"

// lowerThreadPriority fails: elsewhere setpriority sets the whole process's priority.
func lowerThreadPriority(int) error {
	return errors.New("no priority of a thread alone on this system")
}

func threadID() int { return 0 }

func onMainThread() bool { return false }
