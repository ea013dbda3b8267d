package runtime

import (
	"context"
	"fmt"
	"reflect"
	goruntime "runtime"
	"runtime/debug"
	"strings"
	"sync"
)

// Config configures a Runtime.
type Config struct {
	// Workers bounds how many tasks run at once; the rest wait in a FIFO
	// queue. Default runtime.GOMAXPROCS(0). Actors do not count: each runs
	// in its own goroutine.
	Workers int
}

// Runtime runs tasks on a bounded pool of worker goroutines and hosts
// actors. Workers start when tasks are queued and exit when the queue is
// empty, so an idle runtime holds no goroutines but its actors'. Close or
// Shutdown stops everything it started.
type Runtime struct {
	workers int

	life context.Context // cancelled with ErrClosed by Shutdown
	end  context.CancelCauseFunc

	mu      sync.Mutex
	queue   fifo[*task]
	busy    int                     // worker goroutines
	live    int                     // goroutines: workers and actor loops
	waiting map[*task]struct{}      // tasks waiting for their dependencies
	actors  map[*actorCore]struct{} // live actors
	names   map[string]*actorCore
	closed  bool
	idle    chan struct{} // closed once closed and live == 0
	idled   bool
	nextID  uint64 // numbers unnamed actors
}

// New returns a runtime. It starts no goroutine until work arrives.
func New(cfg Config) (*Runtime, error) {
	if cfg.Workers < 0 {
		return nil, fmt.Errorf("runtime: %w: Workers %d is negative", ErrInvalid, cfg.Workers)
	}
	if cfg.Workers == 0 {
		cfg.Workers = goruntime.GOMAXPROCS(0)
	}
	rt := &Runtime{
		workers: cfg.Workers,
		waiting: make(map[*task]struct{}),
		actors:  make(map[*actorCore]struct{}),
		names:   make(map[string]*actorCore),
		idle:    make(chan struct{}),
	}
	rt.life, rt.end = context.WithCancelCause(context.Background())
	return rt, nil
}

// Workers is the number of tasks that may run at once.
func (rt *Runtime) Workers() int { return rt.workers }

// Close is Shutdown without a deadline: it waits for every running
// function to return.
func (rt *Runtime) Close() error { return rt.Shutdown(context.Background()) }

// Shutdown stops the runtime, like ray.shutdown: later submissions fail
// with ErrClosed; queued tasks and tasks waiting for dependencies fail with
// ErrClosed without running; running tasks see their contexts cancelled
// (context.Cause gives ErrClosed) and are not retried; every actor is
// killed (its pending calls fail with ErrActorDead wrapping ErrClosed).
// Shutdown then waits until every goroutine the runtime started has
// returned, or until ctx ends, when it returns ctx's error (the goroutines
// still finish on their own). It may be called again, e.g. with a longer
// deadline.
func (rt *Runtime) Shutdown(ctx context.Context) error {
	rt.mu.Lock()
	var queued, waiting []*task
	var actors []*actorCore
	if !rt.closed {
		rt.closed = true
		queued = rt.queue.drain()
		for t := range rt.waiting {
			waiting = append(waiting, t)
		}
		clear(rt.waiting)
		for a := range rt.actors {
			actors = append(actors, a)
		}
		rt.maybeIdleLocked()
	}
	rt.mu.Unlock()
	// Actors first, so that their running calls see them dead.
	for _, a := range actors {
		a.kill(fmt.Errorf("%w: %s: %w", ErrActorDead, a.name, ErrClosed))
	}
	rt.end(ErrClosed)
	for _, t := range append(queued, waiting...) {
		t.abort(ErrClosed)
	}
	if ctx == nil {
		ctx = context.Background()
	}
	select {
	case <-rt.idle:
		return nil
	case <-ctx.Done():
		rt.mu.Lock()
		live := rt.live
		rt.mu.Unlock()
		return fmt.Errorf("runtime: shutdown: %d goroutines still running: %w", live, ctx.Err())
	}
}

func (rt *Runtime) maybeIdleLocked() {
	if rt.closed && rt.live == 0 && !rt.idled {
		rt.idled = true
		close(rt.idle)
	}
}

// goLocked starts a goroutine the runtime owns; rt.mu is held.
func (rt *Runtime) goLocked(fn func()) {
	rt.live++
	go func() {
		defer func() {
			rt.mu.Lock()
			rt.live--
			rt.maybeIdleLocked()
			rt.mu.Unlock()
		}()
		fn()
	}()
}

// enqueue queues t and starts a worker if one is free. It fails t with
// ErrClosed after Shutdown.
func (rt *Runtime) enqueue(t *task) {
	rt.mu.Lock()
	if rt.closed {
		rt.mu.Unlock()
		t.abort(ErrClosed)
		return
	}
	delete(rt.waiting, t)
	rt.queue.push(t)
	rt.spawnLocked()
	rt.mu.Unlock()
}

// spawnLocked starts a worker when tasks are queued and fewer than the
// limit are running.
func (rt *Runtime) spawnLocked() {
	if rt.closed || rt.queue.len() == 0 || rt.busy >= rt.workers {
		return
	}
	rt.busy++
	rt.goLocked(rt.work)
}

// work runs queued tasks until the queue is empty.
func (rt *Runtime) work() {
	defer func() {
		// Also reached when a task called runtime.Goexit: a replacement
		// starts if work is left.
		rt.mu.Lock()
		rt.busy--
		rt.spawnLocked()
		rt.mu.Unlock()
	}()
	for {
		rt.mu.Lock()
		t, ok := rt.queue.pop()
		rt.mu.Unlock()
		if !ok {
			return
		}
		t.execute()
	}
}

// panicked is a recovered panic.
type panicked struct {
	value any
	stack []byte
}

// protect runs fn, turning a panic into p. A runtime.Goexit in fn is not
// stopped: callers handle it in a deferred function.
func protect(ctx context.Context, fn func(context.Context) error) (p *panicked, err error) {
	defer func() {
		if r := recover(); r != nil {
			p = &panicked{value: r, stack: debug.Stack()}
		}
	}()
	return nil, fn(ctx)
}

var funcNames sync.Map // uintptr -> string

// funcName names fn for messages: its package's last path element and its
// name, e.g. "main.index" or "main.(*Child).Greet".
func funcName(fn any) string {
	v := reflect.ValueOf(fn)
	if v.Kind() != reflect.Func || v.IsNil() {
		return "<nil>"
	}
	pc := v.Pointer()
	if n, ok := funcNames.Load(pc); ok {
		return n.(string)
	}
	name := "func"
	if f := goruntime.FuncForPC(pc); f != nil {
		name = f.Name()
		if i := strings.LastIndex(name, "/"); i >= 0 {
			name = name[i+1:]
		}
		name = strings.TrimSuffix(name, "-fm")
	}
	funcNames.Store(pc, name)
	return name
}
