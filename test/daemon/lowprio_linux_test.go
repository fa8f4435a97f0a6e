package daemon

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// procNice is a thread's or process's nice value from its /proc stat (field 19).
func procNice(t *testing.T, stat string) (int, bool) {
	b, err := os.ReadFile(stat)
	if err != nil {
		return 0, false // a thread that ended meanwhile
	}
	n, err := strconv.Atoi(strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))[16])
	if err != nil {
		t.Fatal(err)
	}
	return n, true
}

// TestLowPriorityThreads: the daemon starts the threads that run generic signing while consensus
// requests contend (sched.Low), as many as it says in its log, each 10 below the priority of
// the process (19 at most), and no other thread of it runs at that priority.
func TestLowPriorityThreads(t *testing.T) {
	t.Parallel()
	ks, js, _ := keys(t, 1)
	d := newDaemon(t, js, "  "+ks[0].pkh+":\n    allow: {generic: [transaction]}\n")
	d.Serve()
	m := regexp.MustCompile(`generic signing runs on threads of lower priority.* threads=(\d+) nice_added=(\d+)`).FindStringSubmatch(d.Logs())
	if m == nil {
		if strings.Contains(d.Logs(), "keep the normal thread priority") {
			t.Skip("this system cannot set a thread's priority alone")
		}
		t.Skip("no spare processor here (GOMAXPROCS set, or a CPU quota): no low-priority threads")
	}
	want, _ := strconv.Atoi(m[1])
	added, _ := strconv.Atoi(m[2])
	base, ok := procNice(t, fmt.Sprintf("/proc/%d/stat", d.Pid()))
	if !ok {
		t.Fatal("the daemon is gone")
	}
	low := min(19, base+added)
	if low == base {
		t.Skipf("the daemon runs at nice %d already", base)
	}
	stats, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/stat", d.Pid()))
	if err != nil {
		t.Fatal(err)
	}
	got := 0
	for _, s := range stats {
		if n, ok := procNice(t, s); ok && n == low {
			got++
		}
	}
	if want < 1 || got != want {
		t.Fatalf("%d threads at nice %d, the log says %d", got, low, want)
	}
}
