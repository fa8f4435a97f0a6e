package loadtest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// CPUSampler returns a process's CPU time (user + system) so far. Run calls it when the
// measured window opens and when it closes; the difference over the measured requests is the
// process's CPU per request.
type CPUSampler func(ctx context.Context) (time.Duration, error)

// clockTick is the unit of /proc/<pid>/stat's utime and stime: USER_HZ, 100 on every Linux
// architecture Go runs on.
const clockTick = 10 * time.Millisecond

// ProcCPU samples a local process's CPU time from /proc/<pid>/stat (Linux), in clock ticks of
// 10 ms: over a run of several seconds the error is well under 1%.
func ProcCPU(pid int) CPUSampler {
	return func(context.Context) (time.Duration, error) {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			return 0, fmt.Errorf("signer CPU: %w", err)
		}
		return parseProcStat(string(b))
	}
}

// parseProcStat reads utime + stime (fields 14 and 15) of a /proc/<pid>/stat line. The command
// name (field 2) is in parentheses and may hold spaces, so fields are counted after its ')'.
func parseProcStat(line string) (time.Duration, error) {
	i := strings.LastIndexByte(line, ')')
	if i < 0 {
		return 0, errors.New("signer CPU: malformed /proc stat line")
	}
	f := strings.Fields(line[i+1:])
	if len(f) < 13 { // f[0] is field 3 (state); utime is field 14 = f[11], stime f[12]
		return 0, errors.New("signer CPU: short /proc stat line")
	}
	u, err1 := strconv.ParseUint(f[11], 10, 64)
	s, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, errors.New("signer CPU: malformed utime or stime")
	}
	return time.Duration(u+s) * clockTick, nil
}

// MetricsCPU samples process_cpu_seconds_total from a Prometheus endpoint (Signatory's utility
// port, or any signer that exports the standard process metrics), for a signer on another host.
func MetricsCPU(url string) CPUSampler {
	client := &http.Client{Timeout: 10 * time.Second}
	return func(ctx context.Context) (time.Duration, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return 0, err
		}
		resp, err := client.Do(req)
		if err != nil {
			return 0, fmt.Errorf("signer CPU: %w", err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return 0, fmt.Errorf("signer CPU: %s answered %s", url, resp.Status)
		}
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			if v, ok := strings.CutPrefix(sc.Text(), "process_cpu_seconds_total "); ok {
				secs, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
				if err != nil {
					return 0, fmt.Errorf("signer CPU: %q: %w", v, err)
				}
				return time.Duration(secs * float64(time.Second)), nil
			}
		}
		if err := sc.Err(); err != nil {
			return 0, err
		}
		return 0, fmt.Errorf("signer CPU: no process_cpu_seconds_total at %s", url)
	}
}

// cpuMark is the signer's and the tool's CPU time when the measured window opened.
type cpuMark struct{ signer, tool time.Duration }

// markCPU samples the CPU times at the opening of the measured window.
func markCPU(ctx context.Context, o Options) (cpuMark, error) {
	var m cpuMark
	if o.SignerCPU != nil {
		var err error
		if m.signer, err = o.SignerCPU(ctx); err != nil {
			return m, err
		}
	}
	m.tool = selfCPU()
	return m, nil
}

// perRequest sets r's CPU per request from the CPU used since m.
func (m cpuMark) perRequest(ctx context.Context, o Options, r *Result) error {
	if r.Requests == 0 {
		return nil
	}
	r.ToolCPUUs = float64((selfCPU() - m.tool).Microseconds()) / float64(r.Requests)
	if o.SignerCPU != nil {
		cpu, err := o.SignerCPU(context.WithoutCancel(ctx))
		if err != nil {
			return err
		}
		r.SignerCPUUs = float64((cpu - m.signer).Microseconds()) / float64(r.Requests)
	}
	return nil
}

// selfCPU is the load tool's own CPU time (getrusage), reported beside the signer's so that a
// reader sees what the tool costs on a shared machine.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
