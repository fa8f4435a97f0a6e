package server

import (
	"context"
	"errors"
	"testing"
)

// TestAdmission: slots are taken at once; with no room in the queue the next caller is refused
// at once; a waiter gets a released slot; a waiter whose context ends leaves the queue.
func TestAdmission(t *testing.T) {
	t.Parallel()
	a := newAdmission(2, 0)
	r1, err1 := a.acquire(context.Background())
	r2, err2 := a.acquire(context.Background())
	if err1 != nil || err2 != nil {
		t.Fatal(err1, err2)
	}
	if _, err := a.acquire(context.Background()); !errors.Is(err, errOverloaded) {
		t.Fatalf("third caller with no queue: %v", err)
	}
	r1()
	r2()

	b := newAdmission(1, 4)
	rel, _ := b.acquire(context.Background())
	got := make(chan error, 1)
	go func() {
		r, err := b.acquire(context.Background())
		if err == nil {
			r()
		}
		got <- err
	}()
	rel() // the waiter (or, if it is not waiting yet, its first try) gets the slot
	if err := <-got; err != nil {
		t.Fatalf("waiter: %v", err)
	}

	c := newAdmission(1, 4)
	rel, _ = c.acquire(context.Background())
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := c.acquire(ctx); !errors.Is(err, errOverloaded) {
		t.Fatalf("cancelled waiter: %v", err)
	}
	if n := c.waiting.Load(); n != 0 {
		t.Fatalf("%d waiting after the cancelled caller left", n)
	}
	rel()
}
