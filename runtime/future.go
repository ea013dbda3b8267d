package runtime

import (
	"context"
	"fmt"
	"sync"
)

// core is the untyped part of a future: completion, the error, callbacks
// and the producer's cancel hook.
type core struct {
	mu       sync.Mutex
	done     chan struct{}
	resolved bool
	err      error
	subs     []sub
	nextSub  uint64
	cancel   func() // asks the producer to stop; nil when it cannot
	name     string
}

type sub struct {
	id uint64
	fn func()
}

func (c *core) init(name string) {
	c.done = make(chan struct{})
	c.name = name
}

// finish completes the future with err (the value, if any, was stored by
// the caller under c.mu) and runs the callbacks. It reports false when the
// future was already complete.
func (c *core) finish(store func(), err error) bool {
	c.mu.Lock()
	if c.resolved {
		c.mu.Unlock()
		return false
	}
	c.resolved = true
	if store != nil {
		store()
	}
	c.err = err
	subs := c.subs
	c.subs = nil
	c.cancel = nil
	close(c.done)
	c.mu.Unlock()
	for _, s := range subs {
		s.fn()
	}
	return true
}

// onDone arranges for fn to run once the future completes: at once, on
// this goroutine, when it already has; otherwise on the completing
// goroutine. fn must not block. The id removes it again (see unsub).
func (c *core) onDone(fn func()) (id uint64) {
	c.mu.Lock()
	if c.resolved {
		c.mu.Unlock()
		fn()
		return 0
	}
	c.nextSub++
	id = c.nextSub
	c.subs = append(c.subs, sub{id, fn})
	c.mu.Unlock()
	return id
}

func (c *core) unsub(id uint64) {
	if id == 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, s := range c.subs {
		if s.id == id {
			c.subs = append(c.subs[:i], c.subs[i+1:]...)
			return
		}
	}
}

func (c *core) isDone() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// Waitable is what Wait and the After option accept: any *Future of this
// package, whatever its type parameter.
type Waitable interface {
	// Done is closed when the future completes.
	Done() <-chan struct{}
	// Err is the future's error once it has completed, nil before.
	Err() error
	base() *core
}

// Future is the result of work that may not have finished: a task, an
// actor call, an asynchronous collective. It completes once, with a value
// or an error; every method is safe for concurrent use.
//
// A future completes only once its work has stopped: when Get returns,
// nothing of that task or call is still running.
type Future[T any] struct {
	c   core
	val T
}

func newFuture[T any](name string) *Future[T] {
	f := &Future[T]{}
	f.c.init(name)
	return f
}

// Get waits until the future completes and returns its value and error,
// or until ctx is done and returns ctx.Err() (the future stays pending:
// Get may be called again). A failed task or actor call gives a
// *TaskError.
func (f *Future[T]) Get(ctx context.Context) (T, error) {
	var zero T
	if f == nil {
		return zero, fmt.Errorf("runtime: Get: %w: nil future", ErrInvalid)
	}
	select {
	case <-f.c.done:
		return f.val, f.c.err
	default:
	}
	if ctx == nil {
		return zero, fmt.Errorf("runtime: Get: %w: nil context", ErrInvalid)
	}
	select {
	case <-f.c.done:
		return f.val, f.c.err
	case <-ctx.Done():
		return zero, ctx.Err()
	}
}

// Done is closed when the future completes.
func (f *Future[T]) Done() <-chan struct{} { return f.c.done }

// Err is the future's error once it has completed; nil while it is
// pending (compare context.Context.Err).
func (f *Future[T]) Err() error {
	if !f.c.isDone() {
		return nil
	}
	return f.c.err
}

// Name is the name of the work behind the future (a task's or call's
// name), for messages.
func (f *Future[T]) Name() string { return f.c.name }

// Cancel asks the work behind the future to stop, like ray.cancel: a task
// or actor call that has not started fails at once with ErrCanceled; one
// that is running sees its context cancelled and its future fails with
// ErrCanceled when it returns (whatever it returned). Work that cannot be
// cancelled, or that has completed, is not affected. Cancel does not wait.
func (f *Future[T]) Cancel() {
	f.c.mu.Lock()
	cancel := f.c.cancel
	f.c.mu.Unlock()
	if cancel != nil {
		cancel()
	}
}

func (f *Future[T]) base() *core {
	if f == nil {
		return nil
	}
	return &f.c
}

// resolve completes f with v and err; it reports false when f was already
// complete (the first completion wins).
func (f *Future[T]) resolve(v T, err error) bool {
	if err != nil {
		return f.c.finish(nil, err)
	}
	return f.c.finish(func() { f.val = v }, nil)
}

// setCancel installs the producer's cancel hook.
func (f *Future[T]) setCancel(fn func()) {
	f.c.mu.Lock()
	if !f.c.resolved {
		f.c.cancel = fn
	}
	f.c.mu.Unlock()
}

// Promise is the producer's side of a Future, for work that the runtime
// does not run itself (an asynchronous collective, a reply from another
// process).
type Promise[T any] struct{ f *Future[T] }

// NewPromise returns a pending future's producer side. name names the work
// in messages; cancel, when not nil, is what the future's Cancel calls: it
// should make the work stop and then Resolve the promise.
func NewPromise[T any](name string, cancel func()) *Promise[T] {
	p := &Promise[T]{f: newFuture[T](name)}
	p.f.c.cancel = cancel
	return p
}

// Future is the promise's future.
func (p *Promise[T]) Future() *Future[T] { return p.f }

// Resolve completes the future with v, or with err when err is not nil.
// Only the first call has an effect; it reports whether this was it.
func (p *Promise[T]) Resolve(v T, err error) bool { return p.f.resolve(v, err) }

// Ready returns a future already completed with v.
func Ready[T any](v T) *Future[T] {
	f := newFuture[T]("ready")
	f.resolve(v, nil)
	return f
}

// Failed returns a future already completed with err (which must not be
// nil: a nil err gives an ErrInvalid failure).
func Failed[T any](err error) *Future[T] {
	f := newFuture[T]("failed")
	if err == nil {
		err = fmt.Errorf("runtime: Failed: %w: nil error", ErrInvalid)
	}
	f.resolve(*new(T), err)
	return f
}

// Wait waits until k of futures have completed, like ray.wait with
// num_returns=k, and returns the first k completed (in the order of
// futures) and the others. When ctx ends first it returns those that have
// completed so far (fewer than k), the rest, and ctx.Err(). Completed
// includes failed: Get each to see. k must be within [0, len(futures)].
func Wait[F Waitable](ctx context.Context, futures []F, k int) (ready, pending []F, err error) {
	if k < 0 || k > len(futures) {
		return nil, nil, fmt.Errorf("runtime: Wait: %w: k=%d with %d futures", ErrInvalid, k, len(futures))
	}
	cores := make([]*core, len(futures))
	for i, f := range futures {
		if any(f) == nil || f.base() == nil {
			return nil, nil, fmt.Errorf("runtime: Wait: %w: future %d is nil", ErrInvalid, i)
		}
		cores[i] = f.base()
	}
	split := func() ([]F, []F, bool) {
		ready, pending := make([]F, 0, k), make([]F, 0, len(futures))
		for i, f := range futures {
			if len(ready) < k && cores[i].isDone() {
				ready = append(ready, f)
			} else {
				pending = append(pending, f)
			}
		}
		return ready, pending, len(ready) == k
	}
	r, p, ok := split()
	if ok {
		return r, p, nil
	}
	if ctx == nil {
		return nil, nil, fmt.Errorf("runtime: Wait: %w: nil context", ErrInvalid)
	}
	wake, stop := subscribe(cores)
	defer stop()
	for {
		select {
		case <-wake:
		case <-ctx.Done():
			r, p, _ := split()
			return r, p, ctx.Err()
		}
		if r, p, ok := split(); ok {
			return r, p, nil
		}
	}
}

// GetAll waits for every future and returns their values in order, like
// ray.get on a list. It returns as soon as one fails, with that future's
// error, or when ctx ends, with ctx.Err().
func GetAll[T any](ctx context.Context, futures ...*Future[T]) ([]T, error) {
	cores := make([]*core, len(futures))
	for i, f := range futures {
		if f == nil {
			return nil, fmt.Errorf("runtime: GetAll: %w: future %d is nil", ErrInvalid, i)
		}
		cores[i] = &f.c
	}
	// check reports whether every future has completed, or the first
	// failure among those that have.
	check := func() (bool, error) {
		all := true
		for _, c := range cores {
			if !c.isDone() {
				all = false
			} else if c.err != nil {
				return true, c.err
			}
		}
		return all, nil
	}
	collect := func() []T {
		out := make([]T, len(futures))
		for i, f := range futures {
			out[i] = f.val
		}
		return out
	}
	if done, err := check(); done {
		if err != nil {
			return nil, err
		}
		return collect(), nil
	}
	if ctx == nil {
		return nil, fmt.Errorf("runtime: GetAll: %w: nil context", ErrInvalid)
	}
	wake, stop := subscribe(cores)
	defer stop()
	for {
		select {
		case <-wake:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		if done, err := check(); done {
			if err != nil {
				return nil, err
			}
			return collect(), nil
		}
	}
}

// subscribe returns a channel that receives a token whenever one of cores
// completes (tokens coalesce), and a function that unsubscribes.
func subscribe(cores []*core) (<-chan struct{}, func()) {
	wake := make(chan struct{}, 1)
	notify := func() {
		select {
		case wake <- struct{}{}:
		default:
		}
	}
	ids := make([]uint64, len(cores))
	for i, c := range cores {
		ids[i] = c.onDone(notify)
	}
	return wake, func() {
		for i, c := range cores {
			c.unsub(ids[i])
		}
	}
}

// Awaitable is work that completes by itself, such as an asynchronous
// collective (collective.Work): Done is closed when it has completed, Err
// is then its error, and Cancel asks it to stop.
type Awaitable interface {
	Done() <-chan struct{}
	Err() error
	Cancel()
}

// Await returns a future, named name, that completes when w does, with
// w's error; its Cancel cancels w. A goroutine waits for w until it
// completes.
func Await(name string, w Awaitable) *Future[struct{}] {
	p := NewPromise[struct{}](name, w.Cancel)
	go func() {
		<-w.Done()
		p.Resolve(struct{}{}, w.Err())
	}()
	return p.Future()
}
