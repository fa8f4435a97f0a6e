package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"syscall"
	"time"

	"github.com/spf13/cobra"
)

// newWaitReady waits, with little CPU of its own, until a signer answers its readiness URL:
// bench.sh times a start-up with it. A shell loop starting curl every 5 ms took CPU from the
// signer it was timing: with another load on the cores, a third of the CPU samples of a
// 10,000-key start-up were the loop's, and the signer was ready in 1.3 s against 0.77 s with
// this one; on a quiet machine, 1.03 s against 0.97 s.
func newWaitReady() *cobra.Command {
	var pid int
	var every, limit time.Duration
	cmd := &cobra.Command{
		Use:   "wait-ready [url]",
		Short: "Wait until a signer's readiness URL answers 200 (default http://127.0.0.1:9583/healthz)",
		Long: `Poll url (default http://127.0.0.1:9583/healthz) every --every from one process, and
return when it answers 200. With --pid, fail as soon as that process has ended. Fails after
--timeout.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			url := "http://127.0.0.1:9583/healthz"
			if len(args) == 1 {
				url = args[0]
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), limit)
			defer cancel()
			return waitReady(ctx, url, pid, every)
		},
	}
	f := cmd.Flags()
	f.IntVar(&pid, "pid", 0, "the signer's process id: fail once it has ended")
	f.DurationVar(&every, "every", 2*time.Millisecond, "time between two polls")
	f.DurationVar(&limit, "timeout", time.Minute, "give up after this long")
	return cmd
}

// waitReady polls url every interval until it answers 200. It fails when ctx ends first, or when
// pid (if not 0) names no running process.
func waitReady(ctx context.Context, url string, pid int, every time.Duration) error {
	client := &http.Client{Timeout: time.Second}
	last := errors.New("no answer yet")
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		if resp, err := client.Do(req); err != nil {
			if ctx.Err() != nil { // the poll the deadline cut short: the answer before it says more
				return fmt.Errorf("%s not ready: %w (last: %v)", url, ctx.Err(), last)
			}
			last = err
		} else {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = fmt.Errorf("status %d", resp.StatusCode)
		}
		if pid != 0 && !running(pid) {
			return fmt.Errorf("process %d ended before %s was ready (last: %v)", pid, url, last)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s not ready: %w (last: %v)", url, ctx.Err(), last)
		case <-time.After(every):
		}
	}
}

// running reports whether process pid exists and has not ended (a zombie has ended).
func running(pid int) bool {
	if err := syscall.Kill(pid, 0); err != nil {
		return false
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return !errors.Is(err, os.ErrNotExist) // elsewhere than Linux: kill's answer alone
	}
	// state is the field after the command name, which is in parentheses and may hold spaces
	for i := len(stat) - 1; i > 0; i-- {
		if stat[i] == ')' {
			return i+2 >= len(stat) || stat[i+2] != 'Z'
		}
	}
	return true
}
