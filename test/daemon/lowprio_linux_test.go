package daemon

import (
	"fmt"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/signatory-go/signatory/internal/testdaemon"
)

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
	base, err := testdaemon.Nice(fmt.Sprintf("/proc/%d/stat", d.Pid()))
	if err != nil {
		t.Fatal(err)
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
		if n, err := testdaemon.Nice(s); err == nil && n == low { // (a thread that ended meanwhile: no file)
			got++
		}
	}
	if want < 1 || got != want {
		t.Fatalf("%d threads at nice %d, the log says %d", got, low, want)
	}
}
