package runtime_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	rt "github.com/ringo-ml/ringo/runtime"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// testCtx bounds a test's waits generously: a hang fails the test instead
// of the whole run.
func testCtx(t testing.TB) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func newRuntime(t testing.TB, workers int) *rt.Runtime {
	t.Helper()
	r, err := rt.New(rt.Config{Workers: workers})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		if err := r.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	return r
}

// taskErr asserts that err is a *TaskError and returns it.
func taskErr(t *testing.T, err error) *rt.TaskError {
	t.Helper()
	var te *rt.TaskError
	if !errors.As(err, &te) {
		t.Fatalf("error %v (%T) is not a *TaskError", err, err)
	}
	return te
}

func TestFutureBasics(t *testing.T) {
	ctx := testCtx(t)
	if v, err := rt.Ready(7).Get(ctx); v != 7 || err != nil {
		t.Fatalf("Ready: %v %v", v, err)
	}
	boom := errors.New("boom")
	if _, err := rt.Failed[int](boom).Get(ctx); !errors.Is(err, boom) {
		t.Fatalf("Failed: %v", err)
	}
	if _, err := rt.Failed[int](nil).Get(ctx); !errors.Is(err, rt.ErrInvalid) {
		t.Fatalf("Failed(nil): %v", err)
	}

	canceled := false
	p := rt.NewPromise[string]("op", func() { canceled = true })
	f := p.Future()
	if f.Err() != nil || f.Name() != "op" {
		t.Fatalf("pending future: Err %v, Name %q", f.Err(), f.Name())
	}
	short, cancel := context.WithTimeout(ctx, time.Millisecond)
	defer cancel()
	if _, err := f.Get(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Get on a pending future: %v", err)
	}
	f.Cancel()
	if !canceled {
		t.Fatal("Cancel did not reach the promise's hook")
	}
	if !p.Resolve("x", nil) || p.Resolve("y", errors.New("late")) {
		t.Fatal("only the first Resolve must take effect")
	}
	if v, err := f.Get(ctx); v != "x" || err != nil {
		t.Fatalf("resolved: %q %v", v, err)
	}
	select {
	case <-f.Done():
	default:
		t.Fatal("Done not closed")
	}
	var nilCtx context.Context
	if _, err := rt.NewPromise[int]("p", nil).Future().Get(nilCtx); !errors.Is(err, rt.ErrInvalid) {
		t.Fatalf("Get(nil ctx): %v", err)
	}
	var nilf *rt.Future[int]
	if _, err := nilf.Get(ctx); !errors.Is(err, rt.ErrInvalid) {
		t.Fatalf("nil future: %v", err)
	}
}

func TestWait(t *testing.T) {
	ctx := testCtx(t)
	ps := make([]*rt.Promise[int], 5)
	fs := make([]*rt.Future[int], 5)
	for i := range ps {
		ps[i] = rt.NewPromise[int](fmt.Sprint(i), nil)
		fs[i] = ps[i].Future()
	}
	ps[3].Resolve(3, nil)
	ps[1].Resolve(0, errors.New("failed counts as completed"))

	ready, pending, err := rt.Wait(ctx, fs, 2)
	if err != nil || len(ready) != 2 || ready[0] != fs[1] || ready[1] != fs[3] || len(pending) != 3 {
		t.Fatalf("Wait(2) with two done: ready %v pending %d err %v", names(ready), len(pending), err)
	}
	ready, pending, err = rt.Wait(ctx, fs, 0)
	if err != nil || len(ready) != 0 || len(pending) != 5 {
		t.Fatalf("Wait(0): %d %d %v", len(ready), len(pending), err)
	}
	// k=1 of two done: the first in input order.
	if ready, _, _ = rt.Wait(ctx, fs, 1); ready[0] != fs[1] {
		t.Fatalf("Wait(1) = %v, want future 1", names(ready))
	}

	// Waiting for a third: another goroutine completes one.
	go ps[4].Resolve(4, nil)
	ready, pending, err = rt.Wait(ctx, fs, 3)
	if err != nil || len(ready) != 3 || ready[2] != fs[4] || len(pending) != 2 {
		t.Fatalf("Wait(3): ready %v pending %d err %v", names(ready), len(pending), err)
	}

	// The context ends first: what is ready so far, and the error.
	short, cancel := context.WithTimeout(ctx, 5*time.Millisecond)
	defer cancel()
	ready, pending, err = rt.Wait(short, fs, 5)
	if !errors.Is(err, context.DeadlineExceeded) || len(ready) != 3 || len(pending) != 2 {
		t.Fatalf("Wait past the deadline: ready %d pending %d err %v", len(ready), len(pending), err)
	}

	// Mixed types through the Waitable interface.
	mixed := []rt.Waitable{rt.Ready("s"), fs[0], rt.Ready(1.5)}
	if ready, _, err := rt.Wait(ctx, mixed, 2); err != nil || len(ready) != 2 {
		t.Fatalf("mixed Wait: %d %v", len(ready), err)
	}

	for _, k := range []int{-1, 6} {
		if _, _, err := rt.Wait(ctx, fs, k); !errors.Is(err, rt.ErrInvalid) {
			t.Errorf("Wait(k=%d): %v", k, err)
		}
	}
	if _, _, err := rt.Wait(ctx, []*rt.Future[int]{fs[0], nil}, 1); !errors.Is(err, rt.ErrInvalid) {
		t.Errorf("Wait with a nil future: %v", err)
	}
	if _, _, err := rt.Wait(ctx, []rt.Waitable{nil}, 1); !errors.Is(err, rt.ErrInvalid) {
		t.Errorf("Wait with a nil Waitable: %v", err)
	}
}

func names(fs []*rt.Future[int]) []string {
	var s []string
	for _, f := range fs {
		s = append(s, f.Name())
	}
	return s
}

func TestGetAll(t *testing.T) {
	ctx := testCtx(t)
	a, b := rt.NewPromise[int]("a", nil), rt.NewPromise[int]("b", nil)
	go func() {
		b.Resolve(2, nil)
		a.Resolve(1, nil)
	}()
	vs, err := rt.GetAll(ctx, a.Future(), b.Future())
	if err != nil || len(vs) != 2 || vs[0] != 1 || vs[1] != 2 {
		t.Fatalf("GetAll = %v, %v", vs, err)
	}
	if vs, err := rt.GetAll[int](ctx); err != nil || len(vs) != 0 {
		t.Fatalf("GetAll of none = %v, %v", vs, err)
	}
	// Fails fast: the second fails while the first never completes.
	never := rt.NewPromise[int]("never", nil)
	boom := errors.New("boom")
	failing := rt.NewPromise[int]("failing", nil)
	go failing.Resolve(0, boom)
	if _, err := rt.GetAll(ctx, never.Future(), failing.Future()); !errors.Is(err, boom) {
		t.Fatalf("GetAll with a failure: %v", err)
	}
	short, cancel := context.WithTimeout(ctx, 5*time.Millisecond)
	defer cancel()
	if _, err := rt.GetAll(short, never.Future()); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("GetAll past the deadline: %v", err)
	}
	if _, err := rt.GetAll(ctx, never.Future(), nil); !errors.Is(err, rt.ErrInvalid) {
		t.Fatalf("GetAll with nil: %v", err)
	}
}

// At most Workers tasks run at once, and the queue is FIFO.
func TestWorkerBound(t *testing.T) {
	ctx := testCtx(t)
	const workers, tasks = 3, 40
	r := newRuntime(t, workers)
	var active, peak atomic.Int32
	started := make(chan int, tasks)
	release := make(chan struct{})
	futs := make([]*rt.Future[int], tasks)
	for i := range futs {
		futs[i] = rt.Submit(r, func(ctx context.Context) (int, error) {
			n := active.Add(1)
			defer active.Add(-1)
			for {
				p := peak.Load()
				if n <= p || peak.CompareAndSwap(p, n) {
					break
				}
			}
			started <- i
			<-release
			return i * i, nil
		})
	}
	for range workers {
		<-started
	}
	close(release)
	vs, err := rt.GetAll(ctx, futs...)
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range vs {
		if v != i*i {
			t.Fatalf("task %d = %d", i, v)
		}
	}
	if p := peak.Load(); p != workers {
		t.Fatalf("peak concurrency %d, want %d", p, workers)
	}
	close(started)
	if r.Workers() != workers {
		t.Fatalf("Workers() = %d", r.Workers())
	}
}

func TestFIFO(t *testing.T) {
	ctx := testCtx(t)
	r := newRuntime(t, 1)
	var mu sync.Mutex
	var order []int
	futs := make([]*rt.Future[struct{}], 100)
	for i := range futs {
		futs[i] = rt.Submit(r, func(context.Context) (struct{}, error) {
			mu.Lock()
			order = append(order, i)
			mu.Unlock()
			return struct{}{}, nil
		})
	}
	if _, err := rt.GetAll(ctx, futs...); err != nil {
		t.Fatal(err)
	}
	for i, v := range order {
		if v != i {
			t.Fatalf("task %d ran in position %d", v, i)
		}
	}
}

func TestDependencies(t *testing.T) {
	ctx := testCtx(t)
	r := newRuntime(t, 1)

	// A chain: each step consumes the previous value.
	f := rt.Submit(r, func(context.Context) (int, error) { return 1, nil })
	for range 10 {
		f = rt.Then(r, f, func(_ context.Context, v int) (int, error) { return 2 * v, nil })
	}
	if v, err := f.Get(ctx); v != 1024 || err != nil {
		t.Fatalf("chain = %d, %v", v, err)
	}

	// A task waiting for dependencies holds no worker: with one worker, a
	// later independent task runs while the dependent one waits.
	gate := rt.NewPromise[int]("gate", nil)
	other := rt.NewPromise[string]("other", nil)
	ran := atomic.Bool{}
	dependent := rt.Submit(r, func(context.Context) (int, error) {
		ran.Store(true)
		g, _ := gate.Future().Get(ctx)
		o, _ := other.Future().Get(ctx)
		return g + len(o), nil
	}, rt.After(gate.Future(), other.Future()))
	independent := rt.Submit(r, func(context.Context) (int, error) { return 5, nil })
	if v, err := independent.Get(ctx); v != 5 || err != nil {
		t.Fatalf("independent = %d, %v", v, err)
	}
	if ran.Load() || dependent.Err() != nil {
		t.Fatal("the dependent task ran before its dependencies completed")
	}
	gate.Resolve(10, nil)
	other.Resolve("abc", nil)
	if v, err := dependent.Get(ctx); v != 13 || err != nil {
		t.Fatalf("dependent = %d, %v", v, err)
	}

	// A failed dependency fails the task without running it.
	boom := errors.New("boom")
	bad := rt.Submit(r, func(context.Context) (int, error) { return 0, boom }, rt.Name("bad"))
	called := atomic.Bool{}
	next := rt.Then(r, bad, func(context.Context, int) (int, error) { called.Store(true); return 0, nil })
	_, err := next.Get(ctx)
	if !errors.Is(err, rt.ErrDependency) || !errors.Is(err, boom) || called.Load() {
		t.Fatalf("after a failed dependency: %v (ran %v)", err, called.Load())
	}
	if te := taskErr(t, err); te.Attempts != 0 || !strings.Contains(err.Error(), "bad") {
		t.Fatalf("dependency failure %+v", te)
	}

	// Cancelling a task that waits for dependencies.
	never := rt.NewPromise[int]("never", nil)
	waiting := rt.Submit(r, func(context.Context) (int, error) { called.Store(true); return 0, nil }, rt.After(never.Future()))
	waiting.Cancel()
	if _, err := waiting.Get(ctx); !errors.Is(err, rt.ErrCanceled) {
		t.Fatalf("cancelled while waiting: %v", err)
	}
	never.Resolve(1, nil)
}

var errLost = fmt.Errorf("node went away: %w", rt.ErrWorkerLost)

// flaky fails its first n calls with err, then succeeds; it counts calls.
func flaky(n int, err error, calls *atomic.Int32) func(context.Context) (int, error) {
	return func(context.Context) (int, error) {
		c := calls.Add(1)
		if int(c) <= n {
			return 0, err
		}
		return int(c), nil
	}
}

func TestRetries(t *testing.T) {
	ctx := testCtx(t)
	r := newRuntime(t, 2)
	appErr, otherErr := errors.New("application error"), errors.New("another error")
	for _, tc := range []struct {
		name      string
		fails     int
		err       error
		opts      []rt.Option
		wantCalls int
		wantOK    bool
	}{
		{"system failures retried by default", 2, errLost, nil, 3, true},
		{"system failures up to the default limit", 10, errLost, nil, 1 + rt.DefaultMaxRetries, false},
		{"MaxRetries bounds", 10, errLost, []rt.Option{rt.MaxRetries(5)}, 6, false},
		{"MaxRetries(0)", 10, errLost, []rt.Option{rt.MaxRetries(0)}, 1, false},
		{"no limit", 20, errLost, []rt.Option{rt.MaxRetries(-1)}, 21, true},
		{"application errors not retried", 1, appErr, []rt.Option{rt.MaxRetries(5)}, 1, false},
		{"RetryExceptions()", 2, appErr, []rt.Option{rt.RetryExceptions()}, 3, true},
		{"RetryExceptions(match)", 2, appErr, []rt.Option{rt.RetryExceptions(otherErr, appErr)}, 3, true},
		{"RetryExceptions(no match)", 2, appErr, []rt.Option{rt.RetryExceptions(otherErr)}, 1, false},
		{"RetryIf", 2, appErr, []rt.Option{rt.RetryIf(func(err error) bool { return errors.Is(err, appErr) })}, 3, true},
		{"RetryExceptions within MaxRetries", 10, appErr, []rt.Option{rt.RetryExceptions(), rt.MaxRetries(1)}, 2, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var calls atomic.Int32
			v, err := rt.Submit(r, flaky(tc.fails, tc.err, &calls), tc.opts...).Get(ctx)
			if int(calls.Load()) != tc.wantCalls {
				t.Errorf("ran %d times, want %d", calls.Load(), tc.wantCalls)
			}
			if tc.wantOK {
				if err != nil || v != tc.wantCalls {
					t.Fatalf("= %d, %v", v, err)
				}
				return
			}
			if !errors.Is(err, tc.err) {
				t.Fatalf("error %v does not wrap %v", err, tc.err)
			}
			if te := taskErr(t, err); te.Attempts != tc.wantCalls {
				t.Fatalf("Attempts = %d, want %d", te.Attempts, tc.wantCalls)
			}
		})
	}
}

type panicError struct{}

func (panicError) Error() string { return "panicked with an error" }

func TestPanics(t *testing.T) {
	ctx := testCtx(t)
	r := newRuntime(t, 1)

	_, err := rt.Submit(r, func(context.Context) (int, error) { panic("boom") }, rt.Name("exploder")).Get(ctx)
	te := taskErr(t, err)
	if !errors.Is(err, rt.ErrPanic) || te.Panic != "boom" || te.Attempts != 1 || te.Name != "exploder" {
		t.Fatalf("panic: %+v", te)
	}
	if !strings.Contains(string(te.Stack), "task_test.go") || !strings.Contains(err.Error(), "boom") {
		t.Fatalf("panic stack or message lacks the origin: %v\n%s", err, te.Stack)
	}

	_, err = rt.Submit(r, func(context.Context) (int, error) { panic(panicError{}) }).Get(ctx)
	if !errors.Is(err, rt.ErrPanic) || !errors.As(err, new(panicError)) {
		t.Fatalf("panic with an error value: %v", err)
	}

	// Panics are application errors: retried only when asked.
	var calls atomic.Int32
	_, err = rt.Submit(r, func(context.Context) (int, error) { calls.Add(1); panic("again") }, rt.MaxRetries(2)).Get(ctx)
	if calls.Load() != 1 || !errors.Is(err, rt.ErrPanic) {
		t.Fatalf("panic retried without RetryExceptions: %d calls, %v", calls.Load(), err)
	}
	calls.Store(0)
	v, err := rt.Submit(r, func(context.Context) (int, error) {
		if calls.Add(1) < 3 {
			panic("transient")
		}
		return 42, nil
	}, rt.RetryExceptions(rt.ErrPanic)).Get(ctx)
	if v != 42 || err != nil || calls.Load() != 3 {
		t.Fatalf("panic retried: %d, %v after %d calls", v, err, calls.Load())
	}

	// runtime.Goexit fails the task; the pool replaces the worker.
	_, err = rt.Submit(r, func(context.Context) (int, error) { runtime.Goexit(); return 0, nil }).Get(ctx)
	if !errors.Is(err, rt.ErrPanic) {
		t.Fatalf("Goexit: %v", err)
	}
	if v, err := rt.Submit(r, func(context.Context) (int, error) { return 1, nil }).Get(ctx); v != 1 || err != nil {
		t.Fatalf("after Goexit: %d, %v", v, err)
	}
}

func TestCancel(t *testing.T) {
	ctx := testCtx(t)
	r := newRuntime(t, 1)

	started := make(chan struct{})
	var cause error
	running := rt.Submit(r, func(ctx context.Context) (int, error) {
		close(started)
		<-ctx.Done()
		cause = context.Cause(ctx)
		return 99, nil // a result after Cancel is discarded
	})
	ran := atomic.Bool{}
	queued := rt.Submit(r, func(context.Context) (int, error) { ran.Store(true); return 1, nil })
	<-started

	queued.Cancel()
	_, err := queued.Get(ctx)
	if !errors.Is(err, rt.ErrCanceled) || !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled while queued: %v", err)
	}
	if te := taskErr(t, err); te.Attempts != 0 {
		t.Fatalf("a queued task never ran, Attempts = %d", te.Attempts)
	}

	running.Cancel()
	if _, err := running.Get(ctx); !errors.Is(err, rt.ErrCanceled) {
		t.Fatalf("cancelled while running: %v", err)
	}
	if !errors.Is(cause, rt.ErrCanceled) {
		t.Fatalf("the function's context.Cause = %v", cause)
	}
	// The worker goes on; the cancelled queued task never runs.
	if v, err := rt.Submit(r, func(context.Context) (int, error) { return 3, nil }).Get(ctx); v != 3 || err != nil {
		t.Fatalf("after cancellations: %d, %v", v, err)
	}
	if ran.Load() {
		t.Fatal("a cancelled task ran")
	}
	// Cancel after completion changes nothing; cancelled tasks are not retried.
	done := rt.Submit(r, func(context.Context) (int, error) { return 4, nil })
	if v, _ := done.Get(ctx); v != 4 {
		t.Fatal(v)
	}
	done.Cancel()
	if v, err := done.Get(ctx); v != 4 || err != nil {
		t.Fatalf("Cancel after completion: %d, %v", v, err)
	}
	var calls atomic.Int32
	first := make(chan struct{})
	retried := rt.Submit(r, func(ctx context.Context) (int, error) {
		if calls.Add(1) == 1 {
			close(first)
		}
		<-ctx.Done()
		return 0, errLost
	}, rt.MaxRetries(-1))
	<-first
	retried.Cancel()
	if _, err := retried.Get(ctx); !errors.Is(err, rt.ErrCanceled) || calls.Load() != 1 {
		t.Fatalf("cancelled retryable task: %v after %d calls", err, calls.Load())
	}
}

func TestShutdown(t *testing.T) {
	ctx := testCtx(t)
	r, err := rt.New(rt.Config{Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	started := make(chan struct{})
	release := make(chan struct{})
	var cause error
	stubborn := rt.Submit(r, func(ctx context.Context) (int, error) {
		close(started)
		<-ctx.Done()
		cause = context.Cause(ctx)
		<-release // ignores the cancellation for a while
		return 0, ctx.Err()
	})
	queued := rt.Submit(r, func(context.Context) (int, error) { return 1, nil })
	waiting := rt.Submit(r, func(context.Context) (int, error) { return 2, nil }, rt.After(rt.NewPromise[int]("never", nil).Future()))
	<-started

	short, cancel := context.WithTimeout(ctx, 10*time.Millisecond)
	defer cancel()
	if err := r.Shutdown(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown with a task still running: %v", err)
	}
	for _, f := range []*rt.Future[int]{queued, waiting} {
		if _, err := f.Get(ctx); !errors.Is(err, rt.ErrClosed) {
			t.Fatalf("queued at shutdown: %v", err)
		}
	}
	if _, err := rt.Submit(r, func(context.Context) (int, error) { return 0, nil }).Get(ctx); !errors.Is(err, rt.ErrClosed) {
		t.Fatalf("Submit after shutdown: %v", err)
	}
	if _, err := rt.Spawn(r, func(context.Context) (int, error) { return 0, nil }); !errors.Is(err, rt.ErrClosed) {
		t.Fatalf("Spawn after shutdown: %v", err)
	}
	close(release)
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if !errors.Is(cause, rt.ErrClosed) {
		t.Fatalf("a running task's context.Cause = %v", cause)
	}
	if _, err := stubborn.Get(ctx); !errors.Is(err, rt.ErrClosed) || !errors.Is(err, context.Canceled) {
		t.Fatalf("running at shutdown: %v", err)
	}
}

func TestInvalid(t *testing.T) {
	ctx := testCtx(t)
	if _, err := rt.New(rt.Config{Workers: -1}); !errors.Is(err, rt.ErrInvalid) {
		t.Fatalf("negative Workers: %v", err)
	}
	r := newRuntime(t, 1)
	ok := func(context.Context) (int, error) { return 0, nil }
	for name, f := range map[string]*rt.Future[int]{
		"nil runtime":          rt.Submit(nil, ok),
		"nil function":         rt.Submit[int](r, nil),
		"MaxRetries(-2)":       rt.Submit(r, ok, rt.MaxRetries(-2)),
		"RetryExceptions(nil)": rt.Submit(r, ok, rt.RetryExceptions(nil)),
		"RetryIf(nil)":         rt.Submit(r, ok, rt.RetryIf(nil)),
		"After(nil)":           rt.Submit(r, ok, rt.After(nil)),
		"nil option":           rt.Submit(r, ok, nil),
		"Then nil dependency":  rt.Then(r, nil, func(context.Context, int) (int, error) { return 0, nil }),
	} {
		_, err := f.Get(ctx)
		if !errors.Is(err, rt.ErrInvalid) {
			t.Errorf("%s: %v", name, err)
		}
		taskErr(t, err)
	}
}
