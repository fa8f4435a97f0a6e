package testdaemon

import (
	"errors"
	"os"
	"strconv"
	"strings"
)

// Nice reads a thread's or a process's nice value from its /proc stat file (field 19; for the
// calling thread, "/proc/thread-self/stat" while it is locked to its goroutine). It reads /proc,
// not getpriority, so that a test also checks how the code under test converted the system
// call's answer. Linux only.
func Nice(stat string) (int, error) {
	b, err := os.ReadFile(stat)
	if err != nil {
		return 0, err
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')') // the command name, in parentheses, may hold spaces
	if i < 0 {
		return 0, errors.New(stat + ": no command name")
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 17 {
		return 0, errors.New(stat + ": too few fields")
	}
	return strconv.Atoi(f[16]) // fields from the state (the 3rd) on: nice is the 19th
}
