package runtime

import (
	"context"
	"errors"
	"fmt"
	"sync"
)

// DefaultMaxRetries is a task's MaxRetries unless set, as in Ray.
const DefaultMaxRetries = 3

// Option adjusts one task or actor call, like Ray's .options(...).
type Option func(*options)

type options struct {
	name       string
	maxRetries int
	retriesSet bool
	retryIf    func(error) bool
	deps       []Waitable
	err        error // the first invalid option
}

// Name names the task or call in errors (default: the function's name).
func Name(name string) Option { return func(o *options) { o.name = name } }

// MaxRetries bounds how many times a failed task or actor call runs again
// (Ray's max_retries for tasks, max_task_retries for actor calls): n >= 0,
// or -1 for no limit. Which failures are retried: system failures (an
// error wrapping ErrWorkerLost; for actor calls, the actor crashing or
// restarting) always, application errors only under RetryExceptions or
// RetryIf. Default DefaultMaxRetries for tasks, the actor's
// MaxTaskRetries for calls.
func MaxRetries(n int) Option {
	return func(o *options) {
		if n < -1 {
			o.setErr(fmt.Errorf("%w: MaxRetries %d (want >= 0, or -1 for no limit)", ErrInvalid, n))
			return
		}
		o.maxRetries, o.retriesSet = n, true
	}
}

// RetryExceptions makes application errors retryable too, like Ray's
// retry_exceptions: with no arguments every error (panics included, see
// ErrPanic), otherwise only errors for which errors.Is matches one of
// match.
func RetryExceptions(match ...error) Option {
	for i, m := range match {
		if m == nil {
			return func(o *options) {
				o.setErr(fmt.Errorf("%w: RetryExceptions: error %d is nil", ErrInvalid, i))
			}
		}
	}
	return RetryIf(func(err error) bool {
		if len(match) == 0 {
			return true
		}
		for _, m := range match {
			if errors.Is(err, m) {
				return true
			}
		}
		return false
	})
}

// RetryIf makes the application errors for which retry returns true
// retryable (like RetryExceptions with a predicate). retry sees the
// attempt's error: the function's error, or an error wrapping ErrPanic.
func RetryIf(retry func(error) bool) Option {
	return func(o *options) {
		if retry == nil {
			o.setErr(fmt.Errorf("%w: RetryIf: nil function", ErrInvalid))
			return
		}
		o.retryIf = retry
	}
}

// After makes the task or call wait until every one of deps has completed,
// like passing object refs to a Ray task: it is not queued (a task) or not
// started (an actor call, which holds up the calls behind it, keeping
// their order) before. If a dependency fails, the task fails with
// ErrDependency wrapping that error, without running.
func After(deps ...Waitable) Option {
	for i, d := range deps {
		if d == nil || d.base() == nil {
			return func(o *options) { o.setErr(fmt.Errorf("%w: After: dependency %d is nil", ErrInvalid, i)) }
		}
	}
	return func(o *options) { o.deps = append(o.deps, deps...) }
}

func (o *options) setErr(err error) {
	if o.err == nil {
		o.err = err
	}
}

func buildOptions(opts []Option, name string, defRetries int) options {
	o := options{name: name, maxRetries: defRetries}
	for _, opt := range opts {
		if opt == nil {
			o.setErr(fmt.Errorf("%w: nil Option", ErrInvalid))
			continue
		}
		opt(&o)
	}
	return o
}

// canRetry says whether a failure after attempt runs may run again.
// system marks a system failure (a lost worker, an actor crash).
func (o *options) canRetry(attempt int, err error, system bool) bool {
	if o.maxRetries >= 0 && attempt > o.maxRetries {
		return false
	}
	if system || errors.Is(err, ErrWorkerLost) {
		return true
	}
	return o.retryIf != nil && o.retryIf(err)
}

// depsFailure returns the error of the first failed dependency, or nil.
func depsFailure(deps []Waitable) error {
	for _, d := range deps {
		if err := d.Err(); err != nil {
			return fmt.Errorf("%w: %s: %w", ErrDependency, d.base().name, err)
		}
	}
	return nil
}

// whenDone calls fn once every dep has completed (at once if they have).
func whenDone(deps []Waitable, fn func()) {
	var mu sync.Mutex
	left := len(deps) + 1
	dec := func() {
		mu.Lock()
		left--
		last := left == 0
		mu.Unlock()
		if last {
			fn()
		}
	}
	for _, d := range deps {
		d.base().onDone(dec)
	}
	dec()
}

type taskPhase uint8

const (
	phaseWaiting taskPhase = iota // for dependencies
	phaseQueued
	phaseRunning
	phaseDone
)

// task is one submitted function and its future's completion.
type task struct {
	rt       *Runtime
	name     string
	o        options
	call     func(context.Context) error // one attempt; stores the value on success
	complete func(error) bool            // resolves the future (with the stored value when nil)

	ctx  context.Context
	stop context.CancelCauseFunc

	mu       sync.Mutex
	phase    taskPhase
	attempts int
}

// Submit runs fn on one of rt's workers and returns its future, like
// calling a Ray remote function's .remote(). fn's context is cancelled by
// the future's Cancel and by Shutdown (context.Cause tells which). Failures
// are retried as the options say (see MaxRetries); the future fails with a
// *TaskError. Bad arguments give a failed future (ErrInvalid).
func Submit[T any](rt *Runtime, fn func(ctx context.Context) (T, error), opts ...Option) *Future[T] {
	name := funcName(fn)
	o := buildOptions(opts, name, DefaultMaxRetries)
	f := newFuture[T](o.name)
	switch {
	case rt == nil:
		o.setErr(fmt.Errorf("%w: nil Runtime", ErrInvalid))
	case fn == nil:
		o.setErr(fmt.Errorf("%w: nil function", ErrInvalid))
	}
	if o.err != nil {
		f.resolve(*new(T), &TaskError{Name: o.name, Err: o.err})
		return f
	}
	var val T
	t := &task{
		rt:   rt,
		name: o.name,
		o:    o,
		call: func(ctx context.Context) error {
			v, err := fn(ctx)
			val = v
			return err
		},
		complete: func(err error) bool { return f.resolve(val, err) },
	}
	t.ctx, t.stop = context.WithCancelCause(rt.life)
	f.setCancel(t.cancel)
	if len(o.deps) == 0 {
		t.phase = phaseQueued
		rt.enqueue(t)
		return f
	}
	rt.mu.Lock()
	if rt.closed {
		rt.mu.Unlock()
		t.abort(ErrClosed)
		return f
	}
	rt.waiting[t] = struct{}{}
	rt.mu.Unlock()
	whenDone(o.deps, t.depsDone)
	return f
}

// Then runs fn on dep's value once dep has completed, like passing an
// object ref to a Ray task: dep is a dependency (see After), and fn runs
// only if it succeeded.
func Then[A, T any](rt *Runtime, dep *Future[A], fn func(ctx context.Context, a A) (T, error), opts ...Option) *Future[T] {
	if dep == nil || fn == nil {
		return Failed[T](&TaskError{Name: funcName(fn), Err: fmt.Errorf("%w: Then: nil dependency or function", ErrInvalid)})
	}
	return Submit(rt, func(ctx context.Context) (T, error) {
		return fn(ctx, dep.val) // dep has completed successfully: After guarantees it
	}, append([]Option{Name(funcName(fn)), After(dep)}, opts...)...)
}

// depsDone queues the task, or fails it if a dependency failed.
func (t *task) depsDone() {
	t.mu.Lock()
	if t.phase != phaseWaiting {
		t.mu.Unlock()
		return
	}
	if err := depsFailure(t.o.deps); err != nil {
		t.mu.Unlock()
		t.rt.mu.Lock()
		delete(t.rt.waiting, t)
		t.rt.mu.Unlock()
		t.abort(err)
		return
	}
	t.phase = phaseQueued
	t.mu.Unlock()
	t.rt.enqueue(t)
}

// abort fails a task that has not started.
func (t *task) abort(err error) {
	t.mu.Lock()
	if t.phase == phaseRunning || t.phase == phaseDone {
		t.mu.Unlock()
		return
	}
	t.phase = phaseDone
	t.mu.Unlock()
	t.stop(err)
	t.complete(&TaskError{Name: t.name, Err: err})
}

// cancel is the future's Cancel.
func (t *task) cancel() {
	t.mu.Lock()
	phase := t.phase
	t.mu.Unlock()
	switch phase {
	case phaseRunning:
		t.stop(ErrCanceled)
	case phaseWaiting, phaseQueued:
		t.rt.mu.Lock()
		delete(t.rt.waiting, t)
		t.rt.mu.Unlock()
		t.abort(ErrCanceled) // a queued entry is skipped by the worker
	}
}

// execute runs the task's attempts on a worker.
func (t *task) execute() {
	t.mu.Lock()
	if t.phase != phaseQueued {
		t.mu.Unlock()
		return
	}
	t.phase = phaseRunning
	t.mu.Unlock()
	finished := false
	defer func() {
		if !finished { // the function called runtime.Goexit
			t.finish(&TaskError{Name: t.name, Attempts: t.attempts, Err: ErrPanic, Panic: "runtime.Goexit called"})
		}
	}()
	for {
		t.mu.Lock()
		t.attempts++
		attempt := t.attempts
		t.mu.Unlock()
		p, err := protect(t.ctx, t.call)
		if p != nil {
			err = ErrPanic
		}
		if t.ctx.Err() != nil {
			// Cancelled: by the future's Cancel (whatever fn returned), or
			// by Shutdown (a result fn still delivered stands).
			if cause := context.Cause(t.ctx); errors.Is(cause, ErrCanceled) {
				err, p = ErrCanceled, nil
			} else if err != nil {
				err = fmt.Errorf("%w: %w", cause, err)
			}
			finished = true
			t.finish(t.failure(attempt, err, p))
			return
		}
		if err == nil {
			finished = true
			t.finish(nil)
			return
		}
		if fail := t.failure(attempt, err, p); !t.o.canRetry(attempt, fail, false) {
			finished = true
			t.finish(fail)
			return
		}
	}
}

// failure is the TaskError of a failed attempt (nil when err is nil).
func (t *task) failure(attempt int, err error, p *panicked) error {
	if err == nil {
		return nil
	}
	te := &TaskError{Name: t.name, Attempts: attempt, Err: err}
	if p != nil {
		te.Panic, te.Stack = p.value, p.stack
	}
	return te
}

func (t *task) finish(err error) {
	t.mu.Lock()
	t.phase = phaseDone
	t.mu.Unlock()
	t.stop(nil)
	t.complete(err)
}
