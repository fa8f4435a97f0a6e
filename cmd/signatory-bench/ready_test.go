package main

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestWaitReady: waitReady returns once the URL answers 200 and not before; it fails at once when
// the process named has ended (a zombie too), and when its context ends first.
func TestWaitReady(t *testing.T) {
	var polls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if polls.Add(1) < 5 {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	defer srv.Close()
	if err := waitReady(context.Background(), srv.URL, os.Getpid(), time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if n := polls.Load(); n < 5 {
		t.Fatalf("ready after %d polls, before the first 200 (the fifth)", n)
	}

	never := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer never.Close()

	// A process that has ended but is not yet reaped (a zombie): waiting on it fails.
	cmd := exec.Command("true")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	for running(cmd.Process.Pid) { // until it has ended: true takes no time
		time.Sleep(time.Millisecond)
	}
	err := waitReady(context.Background(), never.URL, cmd.Process.Pid, time.Millisecond)
	if cmd.Wait(); err == nil || !strings.Contains(err.Error(), "ended before") {
		t.Fatalf("err = %v, want the process's end", err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := waitReady(ctx, never.URL, 0, time.Millisecond); !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "not ready") {
		t.Fatalf("err = %v, want not ready at the deadline", err)
	}
}
