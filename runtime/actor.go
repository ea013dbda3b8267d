package runtime

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"
)

// ActorOption adjusts an actor, like Ray's actor .options(...).
type ActorOption func(*actorOptions)

type actorOptions struct {
	name           string
	maxRestarts    int
	maxTaskRetries int
	maxPending     int
	err            error
}

func (o *actorOptions) setErr(err error) {
	if o.err == nil {
		o.err = err
	}
}

// ActorName registers the actor under name in its runtime, so that Lookup
// finds it (Ray's name= and ray.get_actor). The name is free again once
// the actor is dead.
func ActorName(name string) ActorOption {
	return func(o *actorOptions) {
		if name == "" {
			o.setErr(fmt.Errorf("%w: empty actor name", ErrInvalid))
			return
		}
		o.name = name
	}
}

// MaxRestarts bounds how many times the actor is rebuilt after a crash (a
// panic in a method, or Restart): n >= 0, or -1 for no limit. Default 0:
// the first crash kills it. Like Ray's max_restarts.
func MaxRestarts(n int) ActorOption {
	return func(o *actorOptions) {
		if n < -1 {
			o.setErr(fmt.Errorf("%w: MaxRestarts %d (want >= 0, or -1 for no limit)", ErrInvalid, n))
			return
		}
		o.maxRestarts = n
	}
}

// MaxTaskRetries is the default MaxRetries of the actor's calls, like
// Ray's max_task_retries: n >= 0, or -1 for no limit. Default 0: a call
// interrupted by a crash fails, and calls waiting in the mailbox fail with
// ErrActorRestarted. A call with retries left survives a restart: the one
// that was running runs again first on the new instance (using one retry),
// those waiting keep their order.
func MaxTaskRetries(n int) ActorOption {
	return func(o *actorOptions) {
		if n < -1 {
			o.setErr(fmt.Errorf("%w: MaxTaskRetries %d (want >= 0, or -1 for no limit)", ErrInvalid, n))
			return
		}
		o.maxTaskRetries = n
	}
}

// MaxPendingCalls bounds the actor's mailbox: a call that finds n calls
// waiting fails at once with ErrTooManyPending (Ray's max_pending_calls).
// Default 0: no bound.
func MaxPendingCalls(n int) ActorOption {
	return func(o *actorOptions) {
		if n < 0 {
			o.setErr(fmt.Errorf("%w: MaxPendingCalls %d is negative", ErrInvalid, n))
			return
		}
		o.maxPending = n
	}
}

type actorStatus uint8

const (
	actorAlive    actorStatus = iota
	actorStopping             // Stop: runs what is queued, takes nothing new
	actorDead
)

// actorCore is the untyped part of an actor: its mailbox, its life and its
// supervision.
type actorCore struct {
	rt        *Runtime
	name      string
	named     bool
	o         actorOptions
	construct func(context.Context) error // builds the state (on the actor's goroutine)
	handle    any                         // the *Actor[S], for Lookup
	typ       reflect.Type                // S
	exited    chan struct{}               // closed when the goroutine returns
	wake      chan struct{}               // a token whenever there is something to look at

	mu         sync.Mutex
	mailbox    fifo[*call]
	status     actorStatus
	cause      error // why it is dead
	inc        context.Context
	endInc     context.CancelCauseFunc
	restartReq bool
	restarts   int
}

func (a *actorCore) lock()   { a.mu.Lock() }
func (a *actorCore) unlock() { a.mu.Unlock() }

func (a *actorCore) poke() {
	select {
	case a.wake <- struct{}{}:
	default:
	}
}

// call is one actor method call and its future's completion.
type call struct {
	name     string
	o        options
	run      func(context.Context) error
	complete func(error) bool

	// Guarded by the actor's lock.
	phase    taskPhase
	attempts int
	canceled bool                    // Cancel was called while it ran
	stop     context.CancelCauseFunc // while running
}

// Actor is a handle to an actor: a value of type S whose method calls run
// one at a time, in the order they were submitted, on the actor's own
// goroutine. Handles are safe for concurrent use; concurrent callers' calls
// are ordered as they reach the mailbox.
type Actor[S any] struct {
	c     *actorCore
	state S // touched only on the actor's goroutine
}

// Spawn starts an actor whose state ctor builds, like ActorClass.remote()
// in Ray. ctor runs on the actor's goroutine before any call, and again on
// every restart. If it fails or panics the actor is dead: its calls fail
// with ErrActorDead wrapping the constructor's *TaskError. Spawn itself
// fails only for bad options, a taken name, or a closed runtime.
func Spawn[S any](rt *Runtime, ctor func(ctx context.Context) (S, error), opts ...ActorOption) (*Actor[S], error) {
	var o actorOptions
	for _, opt := range opts {
		if opt == nil {
			o.setErr(fmt.Errorf("%w: nil ActorOption", ErrInvalid))
			continue
		}
		opt(&o)
	}
	switch {
	case rt == nil:
		o.setErr(fmt.Errorf("%w: nil Runtime", ErrInvalid))
	case ctor == nil:
		o.setErr(fmt.Errorf("%w: nil constructor", ErrInvalid))
	}
	if o.err != nil {
		return nil, fmt.Errorf("runtime: Spawn: %w", o.err)
	}
	h := &Actor[S]{}
	a := &actorCore{
		rt:     rt,
		name:   o.name,
		named:  o.name != "",
		o:      o,
		handle: h,
		exited: make(chan struct{}),
		wake:   make(chan struct{}, 1),
		typ:    reflect.TypeFor[S](),
	}
	h.c = a
	a.construct = func(ctx context.Context) error {
		s, err := ctor(ctx)
		h.state = s
		return err
	}
	rt.mu.Lock()
	defer rt.mu.Unlock()
	if rt.closed {
		return nil, fmt.Errorf("runtime: Spawn: %w", ErrClosed)
	}
	rt.nextID++
	if !a.named {
		a.name = fmt.Sprintf("actor %d (%s)", rt.nextID, reflect.TypeFor[S]())
	} else if _, taken := rt.names[a.name]; taken {
		return nil, fmt.Errorf("runtime: Spawn: %w: %q", ErrNameTaken, a.name)
	}
	if a.named {
		rt.names[a.name] = a
	}
	rt.actors[a] = struct{}{}
	a.inc, a.endInc = context.WithCancelCause(rt.life)
	rt.goLocked(a.loop)
	return h, nil
}

// Lookup returns the live actor registered under name (ActorName), like
// ray.get_actor. It fails with ErrNotFound, or with ErrInvalid when the
// actor's state is not an S.
func Lookup[S any](rt *Runtime, name string) (*Actor[S], error) {
	if rt == nil {
		return nil, fmt.Errorf("runtime: Lookup: %w: nil Runtime", ErrInvalid)
	}
	rt.mu.Lock()
	a, ok := rt.names[name]
	rt.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("runtime: Lookup: %w: %q", ErrNotFound, name)
	}
	h, ok := a.handle.(*Actor[S])
	if !ok {
		return nil, fmt.Errorf("runtime: Lookup: %w: actor %q holds a %s, not a %s",
			ErrInvalid, name, a.typ, reflect.TypeFor[S]())
	}
	return h, nil
}

// Call submits a method call to the actor and returns its future, like
// actor.method.remote(...) in Ray. method is usually a method expression,
// e.g. (*Counter).Add, or a closure that passes arguments. Calls run one
// at a time in submission order; method's context is cancelled by the
// future's Cancel, by Kill and Restart, and by Shutdown. Failures are
// retried as the options say (see MaxRetries and MaxTaskRetries).
func Call[S, T any](a *Actor[S], method func(S, context.Context) (T, error), opts ...Option) *Future[T] {
	name := funcName(method)
	if a == nil || a.c == nil || method == nil {
		return Failed[T](&TaskError{Name: name, Err: fmt.Errorf("%w: Call: nil actor or method", ErrInvalid)})
	}
	o := buildOptions(opts, name, a.c.o.maxTaskRetries)
	f := newFuture[T](o.name)
	if o.err != nil {
		f.resolve(*new(T), &TaskError{Name: o.name, Err: o.err})
		return f
	}
	var val T
	c := &call{
		name: o.name,
		o:    o,
		run: func(ctx context.Context) error {
			v, err := method(a.state, ctx)
			val = v
			return err
		},
		complete: func(err error) bool { return f.resolve(val, err) },
	}
	f.setCancel(func() { a.c.cancel(c) })
	a.c.submit(c)
	return f
}

// Do is Call for a method with no result.
func Do[S any](a *Actor[S], method func(S, context.Context) error, opts ...Option) *Future[struct{}] {
	if method == nil {
		return Failed[struct{}](&TaskError{Name: "<nil>", Err: fmt.Errorf("%w: Do: nil method", ErrInvalid)})
	}
	return Call(a, func(s S, ctx context.Context) (struct{}, error) { return struct{}{}, method(s, ctx) },
		append([]Option{Name(funcName(method))}, opts...)...)
}

// Name is the actor's registered name, or a generated one.
func (a *Actor[S]) Name() string { return a.c.name }

// Kill stops the actor now, without a restart, like ray.kill: waiting
// calls fail with ErrActorDead at once; the running call's context is
// cancelled and it fails with ErrActorDead when it returns. Kill does not
// wait (see Done).
func (a *Actor[S]) Kill() { a.c.kill(fmt.Errorf("%w: %s killed", ErrActorDead, a.c.name)) }

// Restart kills the actor as a crash would, like ray.kill with
// no_restart=False: it is rebuilt if its MaxRestarts allow, else it dies.
// Calls are treated as in a crash (see MaxTaskRetries).
func (a *Actor[S]) Restart() {
	c := a.c
	c.lock()
	if c.status != actorDead {
		c.restartReq = true
		c.endInc(fmt.Errorf("%w: restart requested", ErrActorRestarted))
		c.poke()
	}
	c.unlock()
}

// Stop stops the actor gracefully: calls submitted from now on fail with
// ErrActorDead, those already queued run, then its goroutine returns. If
// ctx ends first, Stop kills the actor and returns ctx's error.
func (a *Actor[S]) Stop(ctx context.Context) error {
	c := a.c
	c.lock()
	if c.status == actorAlive {
		c.status = actorStopping
		c.poke()
	}
	c.unlock()
	if ctx == nil {
		ctx = context.Background()
	}
	select {
	case <-c.exited:
		return nil
	case <-ctx.Done():
		c.kill(fmt.Errorf("%w: %s: stop deadline passed", ErrActorDead, c.name))
		return fmt.Errorf("runtime: stopping %s: %w", c.name, ctx.Err())
	}
}

// Done is closed when the actor's goroutine has returned.
func (a *Actor[S]) Done() <-chan struct{} { return a.c.exited }

// Err is nil while the actor lives, and why it died (wrapping
// ErrActorDead) once it is dead.
func (a *Actor[S]) Err() error {
	c := a.c
	c.lock()
	defer c.unlock()
	return c.cause
}

// submit queues c, or fails it when the actor takes no more calls.
func (a *actorCore) submit(c *call) {
	a.lock()
	var err error
	switch {
	case a.status == actorDead:
		err = a.cause
	case a.status == actorStopping:
		err = fmt.Errorf("%w: %s is stopping", ErrActorDead, a.name)
	case a.o.maxPending > 0 && a.mailbox.len() >= a.o.maxPending:
		err = fmt.Errorf("%w: %s has %d calls waiting", ErrTooManyPending, a.name, a.mailbox.len())
	}
	if err != nil {
		a.unlock()
		c.complete(&TaskError{Name: c.name, Err: err})
		return
	}
	c.phase = phaseQueued
	a.mailbox.push(c)
	a.poke()
	a.unlock()
}

// cancel is a call future's Cancel.
func (a *actorCore) cancel(c *call) {
	a.lock()
	switch c.phase {
	case phaseQueued:
		a.mailbox.remove(func(x *call) bool { return x == c })
		c.phase = phaseDone
		a.unlock()
		c.complete(&TaskError{Name: c.name, Attempts: c.attempts, Err: ErrCanceled})
		return
	case phaseRunning:
		c.canceled = true
		if c.stop != nil {
			c.stop(ErrCanceled)
		}
	}
	a.unlock()
}

// kill ends the actor for good with cause.
func (a *actorCore) kill(cause error) {
	a.lock()
	if a.status == actorDead {
		a.unlock()
		return
	}
	pending := a.dieLocked(cause)
	a.unlock()
	fail(pending, cause)
}

// dieLocked marks the actor dead, frees its name and returns the calls
// that were waiting, for the caller to fail outside the lock.
func (a *actorCore) dieLocked(cause error) []*call {
	a.status = actorDead
	a.cause = cause
	a.endInc(cause)
	a.poke()
	pending := a.mailbox.drain()
	for _, c := range pending {
		c.phase = phaseDone
	}
	rt := a.rt
	rt.mu.Lock()
	delete(rt.actors, a)
	if a.named && rt.names[a.name] == a {
		delete(rt.names, a.name)
	}
	rt.mu.Unlock()
	return pending
}

func fail(calls []*call, err error) {
	for _, c := range calls {
		c.complete(&TaskError{Name: c.name, Attempts: c.attempts, Err: err})
	}
}

// loop is the actor's goroutine: build the state, serve calls, restart
// after crashes while the budget allows.
func (a *actorCore) loop() {
	normal := false
	defer func() {
		if !normal { // a method or the constructor called runtime.Goexit
			a.kill(fmt.Errorf("%w: runtime.Goexit called on %s's goroutine", ErrActorDead, a.name))
		}
		close(a.exited)
	}()
	for {
		a.lock()
		ctx := a.inc
		a.unlock()
		p, err := protect(ctx, a.construct)
		a.lock()
		restart := a.restartReq
		a.unlock()
		if restart { // Restart during construction
			if !a.restart(fmt.Errorf("%w: restart requested", ErrActorRestarted)) {
				normal = true
				return
			}
			continue
		}
		if err != nil || p != nil {
			te := &TaskError{Name: a.name + " constructor", Attempts: 1, Err: err}
			if p != nil {
				te.Err, te.Panic, te.Stack = ErrPanic, p.value, p.stack
			}
			a.kill(fmt.Errorf("%w: %s: constructor failed: %w", ErrActorDead, a.name, te))
			normal = true
			return
		}
		settle, crash := a.serve(ctx)
		goOn := crash != nil && a.restart(crash)
		// The crashed call completes after the mailbox was dealt with, so
		// that a call made on seeing its failure goes to the new instance.
		settle()
		if !goOn {
			normal = true
			return
		}
	}
}

// serve runs calls until the actor stops (nil) or crashes (the cause, and
// what settles the call that was running, to be called after the restart).
func (a *actorCore) serve(inc context.Context) (settle func(), crash error) {
	for {
		c, crash := a.next()
		if c == nil {
			return func() {}, crash
		}
		if settle, crash := a.runCall(inc, c); crash != nil {
			return settle, crash
		}
	}
}

// next waits for the next call. It returns nil and nil when the actor is
// dead or has stopped, nil and a cause when a restart was requested.
func (a *actorCore) next() (*call, error) {
	for {
		a.lock()
		switch {
		case a.status == actorDead:
			a.unlock()
			return nil, nil
		case a.restartReq:
			a.unlock()
			return nil, fmt.Errorf("%w: restart requested", ErrActorRestarted)
		}
		if c, ok := a.mailbox.pop(); ok {
			c.phase = phaseRunning
			a.unlock()
			return c, nil
		}
		if a.status == actorStopping {
			pending := a.dieLocked(fmt.Errorf("%w: %s stopped", ErrActorDead, a.name))
			a.unlock()
			fail(pending, a.cause) // none: the mailbox was empty
			return nil, nil
		}
		a.unlock()
		<-a.wake
	}
}

// runCall runs c (after its dependencies) and settles its future, unless
// it must run again. When the actor crashed it returns the cause and what
// settles c (or nothing, when c runs again).
func (a *actorCore) runCall(inc context.Context, c *call) (settle func(), crash error) {
	ctx, stop := context.WithCancelCause(inc)
	defer stop(nil)
	a.lock()
	c.stop = stop
	if c.canceled { // between next and here
		stop(ErrCanceled)
	}
	a.unlock()
	for _, d := range c.o.deps {
		select {
		case <-d.Done():
		case <-ctx.Done():
		}
	}
	var err error
	var p *panicked
	ran := false
	if ctx.Err() == nil {
		if err = depsFailure(c.o.deps); err == nil {
			a.lock()
			c.attempts++
			a.unlock()
			ran = true
			returned := false
			defer func() {
				if !returned { // runtime.Goexit: the goroutine, and so the actor, ends
					a.lock()
					c.phase = phaseDone
					a.unlock()
					c.complete(&TaskError{Name: c.name, Attempts: c.attempts, Err: ErrPanic, Panic: "runtime.Goexit called"})
				}
			}()
			p, err = protect(ctx, c.run)
			returned = true
		}
	}
	a.lock()
	c.stop = nil
	attempt := c.attempts
	dead, restart := a.status == actorDead, a.restartReq
	cause := a.cause
	a.unlock()
	done := func(err error) func() {
		a.lock()
		c.phase = phaseDone
		a.unlock()
		te := &TaskError{Name: c.name, Attempts: attempt, Err: err}
		if p != nil && errors.Is(err, ErrPanic) {
			te.Panic, te.Stack = p.value, p.stack
		}
		return func() { c.complete(te) }
	}
	switch {
	case errors.Is(context.Cause(ctx), ErrCanceled):
		done(ErrCanceled)()
		return nil, nil
	case dead:
		done(cause)()
		return nil, nil
	case p != nil:
		crash := &TaskError{Name: c.name, Attempts: attempt, Err: ErrPanic, Panic: p.value, Stack: p.stack}
		// %v: the calls that fail because of the crash did not panic.
		return a.requeueOr(c, attempt, crash, func() func() { return done(ErrPanic) }),
			fmt.Errorf("%w: %s crashed: %v", ErrActorRestarted, a.name, crash)
	case restart:
		why := fmt.Errorf("%w: restart requested", ErrActorRestarted)
		return a.requeueOr(c, attempt, why, func() func() { return done(why) }), why
	case !ran: // a dependency failed, or the context ended while waiting
		if err == nil {
			err = context.Cause(ctx)
		}
		done(err)()
		return nil, nil
	case err == nil:
		a.lock()
		c.phase = phaseDone
		a.unlock()
		c.complete(nil)
		return nil, nil
	}
	te := &TaskError{Name: c.name, Attempts: attempt, Err: err}
	if c.o.canRetry(attempt, te, false) {
		a.lock()
		c.phase = phaseQueued
		a.mailbox.pushFront(c)
		a.unlock()
		return nil, nil
	}
	done(err)()
	return nil, nil
}

// requeueOr puts the crashed call back at the head of the mailbox if it
// may run again (and returns a no-op), or else returns what settle gives:
// the completion, for after the restart.
func (a *actorCore) requeueOr(c *call, attempt int, err error, settle func() func()) func() {
	if c.o.canRetry(attempt, err, true) {
		a.lock()
		if a.status != actorDead {
			c.phase = phaseQueued
			a.mailbox.pushFront(c)
			a.unlock()
			return func() {}
		}
		a.unlock()
	}
	return settle()
}

// restart rebuilds the actor after a crash if its budget allows; it
// reports whether the loop goes on. Waiting calls without retries fail
// with ErrActorRestarted (or ErrActorDead when it does not restart).
func (a *actorCore) restart(crash error) bool {
	a.lock()
	a.restartReq = false
	if a.status == actorDead {
		a.unlock()
		return false
	}
	if a.o.maxRestarts >= 0 && a.restarts >= a.o.maxRestarts {
		cause := fmt.Errorf("%w: %s crashed with no restarts left (%d used): %v", ErrActorDead, a.name, a.restarts, crash)
		pending := a.dieLocked(cause)
		a.unlock()
		fail(pending, cause)
		return false
	}
	a.restarts++
	a.endInc(crash)
	var kept fifo[*call]
	var dropped []*call
	for _, c := range a.mailbox.drain() {
		if c.o.maxRetries != 0 {
			kept.push(c)
		} else {
			c.phase = phaseDone
			dropped = append(dropped, c)
		}
	}
	a.mailbox = kept
	a.inc, a.endInc = context.WithCancelCause(a.rt.life)
	a.unlock()
	fail(dropped, crash)
	return true
}
