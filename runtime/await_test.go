package runtime_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/ringo-ml/ringo/runtime"
)

// work is an Awaitable that completes when told.
type work struct {
	done     chan struct{}
	err      error
	canceled chan struct{}
}

func (w *work) Done() <-chan struct{} { return w.done }
func (w *work) Err() error {
	select {
	case <-w.done:
		return w.err
	default:
		return nil
	}
}
func (w *work) Cancel() { close(w.canceled) }

// Await completes with the work's error, and its Cancel reaches the work.
func TestAwait(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	boom := errors.New("boom")
	w := &work{done: make(chan struct{}), canceled: make(chan struct{})}
	f := runtime.Await("AllReduce (asynchronous)", w)
	short, stop := context.WithTimeout(ctx, 10*time.Millisecond)
	defer stop()
	if _, err := f.Get(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("before the work completes: %v", err)
	}
	f.Cancel()
	<-w.canceled
	w.err = boom
	close(w.done)
	if _, err := f.Get(ctx); !errors.Is(err, boom) {
		t.Fatalf("Get = %v, want the work's error", err)
	}
	if f.Name() != "AllReduce (asynchronous)" {
		t.Errorf("Name = %q", f.Name())
	}
}
