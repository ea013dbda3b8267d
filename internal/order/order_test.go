package order

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// Operations and blocking turns run in issue order, one at a time, and
// the queue's goroutine exits once the queue is empty.
func TestIssueOrder(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var mu sync.Mutex
	var ran []int
	q := New(func(string, error) { t.Error("nothing was abandoned") })
	if q.Busy(ctx) {
		t.Fatal("an empty queue is busy")
	}
	gate := make(chan struct{})
	results := make(chan error, 3)
	for i := range 3 {
		ok := q.Go(ctx, "op", func(context.Context) error {
			if i == 0 {
				<-gate // the others queue behind it
			}
			mu.Lock()
			ran = append(ran, i)
			mu.Unlock()
			return nil
		}, func(err error) { results <- err })
		if !ok {
			t.Fatal("Go on an open queue refused")
		}
	}
	if !q.Busy(ctx) {
		t.Fatal("a queue with pending operations is not busy")
	}
	turned := make(chan struct{})
	go func() {
		leave, err := q.Turn(ctx, "blocking")
		if err != nil {
			t.Error(err)
			return
		}
		mu.Lock()
		ran = append(ran, 3)
		mu.Unlock()
		leave()
		close(turned)
	}()
	close(gate)
	for range 3 {
		if err := <-results; err != nil {
			t.Fatal(err)
		}
	}
	<-turned
	if want := []int{0, 1, 2, 3}; len(ran) != 4 || ran[0] != 0 || ran[3] != 3 {
		t.Fatalf("ran %v, want %v", ran, want)
	}
	for {
		n, exited := q.Pending()
		if n == 0 && exited == nil {
			break
		}
		if exited != nil {
			<-exited
		}
	}
	q.Close()
	if q.Go(ctx, "late", func(context.Context) error { return nil }, func(error) {}) {
		t.Fatal("Go after Close was accepted")
	}
}

// An operation whose context ends before its turn fails at once, never
// runs, and is reported as abandoned at its turn; so is a blocking turn.
func TestAbandoned(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	abandoned := make(chan string, 2)
	q := New(func(desc string, cause error) {
		if !errors.Is(cause, context.Canceled) {
			t.Errorf("%s abandoned for %v", desc, cause)
		}
		abandoned <- desc
	})
	gate := make(chan struct{})
	first := make(chan error, 1)
	q.Go(ctx, "first", func(context.Context) error { <-gate; return nil }, func(err error) { first <- err })
	opCtx, opCancel := context.WithCancel(ctx)
	second := make(chan error, 1)
	q.Go(opCtx, "second", func(context.Context) error {
		t.Error("an abandoned operation ran")
		return nil
	}, func(err error) { second <- err })
	opCancel()
	if err := <-second; !errors.Is(err, context.Canceled) {
		t.Fatalf("abandoned operation: %v", err)
	}
	turnCtx, turnCancel := context.WithCancel(ctx)
	turnCancel()
	if _, err := q.Turn(turnCtx, "third"); !errors.Is(err, context.Canceled) {
		t.Fatalf("abandoned turn: %v", err)
	}
	close(gate)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"second", "third"} {
		if got := <-abandoned; got != want {
			t.Fatalf("abandoned %q, want %q", got, want)
		}
	}
	q.Close()
}
