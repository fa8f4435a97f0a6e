package sched

import "golang.org/x/sys/unix"

// lowerThreadPriority adds by to the calling thread's nice value, up to 19. On Linux a thread id
// given to setpriority names that thread alone (setpriority(2): the nice value is a thread's
// attribute under NPTL), and lowering a priority needs no privilege. The raw getpriority
// system call answers 20 - nice.
func lowerThreadPriority(by int) error {
	tid := unix.Gettid()
	prio, err := unix.Getpriority(unix.PRIO_PROCESS, tid)
	if err != nil {
		return err
	}
	return unix.Setpriority(unix.PRIO_PROCESS, tid, min(19, 20-prio+by))
}

func threadID() int { return unix.Gettid() }

// onMainThread reports whether the calling thread is the process's main thread, whose id is the
// process's.
func onMainThread() bool { return unix.Gettid() == unix.Getpid() }
