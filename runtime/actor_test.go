package runtime_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"

	rt "github.com/ringo-ml/ringo/runtime"
)

// ledger is an actor's state that records what ran, and checks that no
// two calls overlap.
type ledger struct {
	gen    int // which incarnation (constructor run) this is
	busy   atomic.Int32
	ran    []string
	gate   chan struct{} // what block waits for
	shared *shared
}

// shared is what the test sees of an actor across its incarnations.
type shared struct {
	mu      sync.Mutex
	ctors   int
	log     []string
	overlap bool
}

func (s *shared) record(e string) {
	s.mu.Lock()
	s.log = append(s.log, e)
	s.mu.Unlock()
}

func (s *shared) entries() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.log...)
}

func newLedger(s *shared, gate chan struct{}) func(context.Context) (*ledger, error) {
	return func(context.Context) (*ledger, error) {
		s.mu.Lock()
		s.ctors++
		gen := s.ctors
		s.mu.Unlock()
		s.record(fmt.Sprintf("new %d", gen))
		return &ledger{gen: gen, gate: gate, shared: s}, nil
	}
}

// note returns a method that records e.
func note(e string) func(*ledger, context.Context) (int, error) {
	return func(l *ledger, _ context.Context) (int, error) {
		if l.busy.Add(1) != 1 {
			l.shared.mu.Lock()
			l.shared.overlap = true
			l.shared.mu.Unlock()
		}
		defer l.busy.Add(-1)
		l.ran = append(l.ran, e)
		l.shared.record(e)
		return l.gen, nil
	}
}

// block waits for the gate (or its context) and then records e.
func block(e string, started chan<- struct{}) func(*ledger, context.Context) (int, error) {
	return func(l *ledger, ctx context.Context) (int, error) {
		if started != nil {
			close(started)
		}
		select {
		case <-l.gate:
		case <-ctx.Done():
			return 0, context.Cause(ctx)
		}
		l.shared.record(e)
		return l.gen, nil
	}
}

func explode(*ledger, context.Context) (int, error) { panic("crash") }

// Calls from many goroutines run one at a time, in the order they reached
// the mailbox.
func TestActorOrder(t *testing.T) {
	ctx := testCtx(t)
	r := newRuntime(t, 1)
	s := &shared{}
	a, err := rt.Spawn(r, newLedger(s, nil))
	if err != nil {
		t.Fatal(err)
	}
	const callers, calls = 8, 150
	var mu sync.Mutex // orders submission so that the test knows it
	var submitted []string
	var futs []*rt.Future[int]
	var wg sync.WaitGroup
	for g := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range calls {
				e := fmt.Sprintf("%d/%d", g, i)
				mu.Lock()
				submitted = append(submitted, e)
				futs = append(futs, rt.Call(a, note(e)))
				mu.Unlock()
				if i%16 == 0 {
					runtime.Gosched()
				}
			}
		}()
	}
	wg.Wait()
	if _, err := rt.GetAll(ctx, futs...); err != nil {
		t.Fatal(err)
	}
	log := s.entries()[1:] // after "new 1"
	if len(log) != len(submitted) {
		t.Fatalf("%d calls ran, %d submitted", len(log), len(submitted))
	}
	for i := range log {
		if log[i] != submitted[i] {
			t.Fatalf("call %d: ran %s, submitted %s", i, log[i], submitted[i])
		}
	}
	if s.overlap {
		t.Fatal("two calls ran at once")
	}
	if err := a.Stop(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestActorNames(t *testing.T) {
	ctx := testCtx(t)
	r := newRuntime(t, 1)
	s := &shared{}
	a, err := rt.Spawn(r, newLedger(s, nil), rt.ActorName("bank"))
	if err != nil || a.Name() != "bank" {
		t.Fatalf("Spawn: %v, %q", err, a.Name())
	}
	if _, err := rt.Spawn(r, newLedger(s, nil), rt.ActorName("bank")); !errors.Is(err, rt.ErrNameTaken) {
		t.Fatalf("duplicate name: %v", err)
	}
	b, err := rt.Lookup[*ledger](r, "bank")
	if err != nil || b != a {
		t.Fatalf("Lookup: %v", err)
	}
	if _, err := rt.Lookup[*Child](r, "bank"); !errors.Is(err, rt.ErrInvalid) {
		t.Fatalf("Lookup with the wrong type: %v", err)
	}
	if _, err := rt.Lookup[*ledger](r, "nobody"); !errors.Is(err, rt.ErrNotFound) {
		t.Fatalf("Lookup of an unknown name: %v", err)
	}
	anon, err := rt.Spawn(r, newLedger(s, nil))
	if err != nil || anon.Name() == "" {
		t.Fatalf("unnamed actor: %v %q", err, anon.Name())
	}
	// A dead actor's name is free again.
	a.Kill()
	<-a.Done()
	if _, err := rt.Lookup[*ledger](r, "bank"); !errors.Is(err, rt.ErrNotFound) {
		t.Fatalf("Lookup of a killed actor: %v", err)
	}
	c, err := rt.Spawn(r, newLedger(s, nil), rt.ActorName("bank"))
	if err != nil {
		t.Fatalf("reusing a dead actor's name: %v", err)
	}
	if _, err := rt.Call(c, note("x")).Get(ctx); err != nil {
		t.Fatal(err)
	}
	for name, opt := range map[string]rt.ActorOption{
		"empty name": rt.ActorName(""), "MaxRestarts(-2)": rt.MaxRestarts(-2),
		"MaxTaskRetries(-2)": rt.MaxTaskRetries(-2), "MaxPendingCalls(-1)": rt.MaxPendingCalls(-1), "nil": nil,
	} {
		if _, err := rt.Spawn(r, newLedger(s, nil), opt); !errors.Is(err, rt.ErrInvalid) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := rt.Spawn[*ledger](r, nil); !errors.Is(err, rt.ErrInvalid) {
		t.Errorf("nil constructor: %v", err)
	}
	if _, err := rt.Call(a, (func(*ledger, context.Context) (int, error))(nil)).Get(ctx); !errors.Is(err, rt.ErrInvalid) {
		t.Errorf("nil method: %v", err)
	}
	if _, err := rt.Call(c, note("y"), rt.MaxRetries(-5)).Get(ctx); !errors.Is(err, rt.ErrInvalid) {
		t.Errorf("bad call option: %v", err)
	}
}

// A panic crashes the actor: it is rebuilt up to MaxRestarts times, then
// it is dead.
func TestActorRestarts(t *testing.T) {
	ctx := testCtx(t)
	r := newRuntime(t, 1)
	s := &shared{}
	a, err := rt.Spawn(r, newLedger(s, nil), rt.MaxRestarts(2))
	if err != nil {
		t.Fatal(err)
	}
	for gen := 1; gen <= 3; gen++ {
		if g, err := rt.Call(a, note("hello")).Get(ctx); g != gen || err != nil {
			t.Fatalf("incarnation %d: call gave %d, %v", gen, g, err)
		}
		_, err := rt.Call(a, explode).Get(ctx)
		te := taskErr(t, err)
		if !errors.Is(err, rt.ErrPanic) || te.Panic != "crash" {
			t.Fatalf("crash %d: %v", gen, err)
		}
	}
	_, err = rt.Call(a, note("too late")).Get(ctx)
	if !errors.Is(err, rt.ErrActorDead) {
		t.Fatalf("after the last restart: %v", err)
	}
	<-a.Done()
	if !errors.Is(a.Err(), rt.ErrActorDead) {
		t.Fatalf("Err() = %v", a.Err())
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ctors != 3 {
		t.Fatalf("constructor ran %d times, want 3", s.ctors)
	}
}

// On a restart, calls waiting in the mailbox fail with ErrActorRestarted
// unless they allow retries; those run on the new instance in order.
func TestActorRestartPending(t *testing.T) {
	ctx := testCtx(t)
	r := newRuntime(t, 1)
	s := &shared{}
	gate := make(chan struct{})
	a, err := rt.Spawn(r, newLedger(s, gate), rt.MaxRestarts(1))
	if err != nil {
		t.Fatal(err)
	}
	started := make(chan struct{})
	first := rt.Call(a, block("blocked", started))
	<-started
	dropped := rt.Call(a, note("dropped"))
	kept := rt.Call(a, note("kept"), rt.MaxRetries(1))
	dropped2 := rt.Call(a, note("dropped2"))
	kept2 := rt.Call(a, note("kept2"), rt.MaxRetries(-1))
	a.Restart()

	_, err = first.Get(ctx)
	if !errors.Is(err, rt.ErrActorRestarted) {
		t.Fatalf("running call at a restart: %v", err)
	}
	for _, f := range []*rt.Future[int]{dropped, dropped2} {
		_, err := f.Get(ctx)
		if !errors.Is(err, rt.ErrActorRestarted) || errors.Is(err, rt.ErrPanic) {
			t.Fatalf("waiting call without retries: %v", err)
		}
		if te := taskErr(t, err); te.Attempts != 0 {
			t.Fatalf("a dropped call never ran: Attempts %d", te.Attempts)
		}
	}
	for _, f := range []*rt.Future[int]{kept, kept2} {
		if g, err := f.Get(ctx); g != 2 || err != nil {
			t.Fatalf("waiting call with retries: %d, %v", g, err)
		}
	}
	want := []string{"new 1", "new 2", "kept", "kept2"}
	if got := s.entries(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("log %v, want %v", got, want)
	}
	// Out of restarts: the next crash kills it; waiting calls fail dead.
	started = make(chan struct{})
	crashing := rt.Call(a, func(l *ledger, ctx context.Context) (int, error) {
		close(started)
		<-l.gate
		panic("again")
	})
	<-started
	waiting := rt.Call(a, note("never"), rt.MaxRetries(3))
	close(gate)
	if _, err := crashing.Get(ctx); !errors.Is(err, rt.ErrPanic) {
		t.Fatalf("crash: %v", err)
	}
	if _, err := waiting.Get(ctx); !errors.Is(err, rt.ErrActorDead) {
		t.Fatalf("waiting when the actor died: %v", err)
	}
}

// MaxTaskRetries: a call interrupted by a crash runs again first on the new
// instance.
func TestActorTaskRetries(t *testing.T) {
	ctx := testCtx(t)
	r := newRuntime(t, 1)
	s := &shared{}
	a, err := rt.Spawn(r, newLedger(s, nil), rt.MaxRestarts(-1), rt.MaxTaskRetries(2))
	if err != nil {
		t.Fatal(err)
	}
	// Panics in the first two incarnations, succeeds in the third.
	flaky := func(l *ledger, _ context.Context) (int, error) {
		if l.gen < 3 {
			panic(fmt.Sprint("crash in incarnation ", l.gen))
		}
		l.shared.record("flaky ok")
		return l.gen, nil
	}
	f := rt.Call(a, flaky)
	after := rt.Call(a, note("after"))
	if g, err := f.Get(ctx); g != 3 || err != nil {
		t.Fatalf("retried call: %d, %v", g, err)
	}
	if g, err := after.Get(ctx); g != 3 || err != nil {
		t.Fatalf("next call: %d, %v", g, err)
	}
	want := []string{"new 1", "new 2", "new 3", "flaky ok", "after"}
	if got := s.entries(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("log %v, want %v", got, want)
	}
	// The per-call MaxRetries overrides the actor's default.
	_, err = rt.Call(a, explode, rt.MaxRetries(0)).Get(ctx)
	if te := taskErr(t, err); !errors.Is(err, rt.ErrPanic) || te.Attempts != 1 {
		t.Fatalf("MaxRetries(0) call: %v", err)
	}
	// The retry budget ends.
	_, err = rt.Call(a, explode).Get(ctx)
	if te := taskErr(t, err); !errors.Is(err, rt.ErrPanic) || te.Attempts != 3 {
		t.Fatalf("after MaxTaskRetries: %v (attempts %d)", err, te.Attempts)
	}
	// Application errors: retried in place only under RetryExceptions.
	appErr := errors.New("declined")
	n := 0
	failTwice := func(l *ledger, _ context.Context) (int, error) {
		if n++; n <= 2 {
			return 0, appErr
		}
		return n, nil
	}
	if _, err := rt.Call(a, failTwice).Get(ctx); !errors.Is(err, appErr) {
		t.Fatalf("application error: %v", err)
	}
	n = 0
	if v, err := rt.Call(a, failTwice, rt.RetryExceptions(appErr)).Get(ctx); v != 3 || err != nil {
		t.Fatalf("retried application error: %d, %v", v, err)
	}
}

func TestActorKill(t *testing.T) {
	ctx := testCtx(t)
	r := newRuntime(t, 1)
	s := &shared{}
	a, err := rt.Spawn(r, newLedger(s, make(chan struct{})), rt.MaxRestarts(5))
	if err != nil {
		t.Fatal(err)
	}
	started := make(chan struct{})
	running := rt.Call(a, block("never", started))
	<-started
	waiting := rt.Call(a, note("never"), rt.MaxRetries(-1))
	a.Kill()
	for _, f := range []*rt.Future[int]{running, waiting} {
		if _, err := f.Get(ctx); !errors.Is(err, rt.ErrActorDead) {
			t.Fatalf("after Kill: %v", err)
		}
	}
	<-a.Done()
	if _, err := rt.Call(a, note("never")).Get(ctx); !errors.Is(err, rt.ErrActorDead) {
		t.Fatalf("call after Kill: %v", err)
	}
	a.Kill() // idempotent
	a.Restart()
	if got := s.entries(); len(got) != 1 {
		t.Fatalf("log %v: no call may run after Kill, and no restart", got)
	}
}

func TestActorStop(t *testing.T) {
	ctx := testCtx(t)
	r := newRuntime(t, 1)
	s := &shared{}
	gate := make(chan struct{})
	a, err := rt.Spawn(r, newLedger(s, gate))
	if err != nil {
		t.Fatal(err)
	}
	started := make(chan struct{})
	futs := []*rt.Future[int]{rt.Call(a, block("b", started)), rt.Call(a, note("c"))}
	<-started
	stopped := make(chan error)
	go func() { stopped <- a.Stop(ctx) }()
	// Stop refuses new calls at once but runs the queued ones; wait until
	// it has taken effect, seen as a refused call.
	// A refused call fails at once; one accepted before Stop queues.
	for {
		f := rt.Call(a, note("late"))
		if err := f.Err(); err != nil {
			if !errors.Is(err, rt.ErrActorDead) {
				t.Fatal(err)
			}
			break
		}
		futs = append(futs, f)
		runtime.Gosched()
	}
	close(gate)
	if err := <-stopped; err != nil {
		t.Fatal(err)
	}
	if _, err := rt.GetAll(ctx, futs...); err != nil {
		t.Fatalf("calls queued before Stop: %v", err)
	}
	if !errors.Is(a.Err(), rt.ErrActorDead) {
		t.Fatalf("Err() after Stop: %v", a.Err())
	}

	// Stop whose context ends first kills the actor.
	b, err := rt.Spawn(r, newLedger(s, make(chan struct{})))
	if err != nil {
		t.Fatal(err)
	}
	started = make(chan struct{})
	stuck := rt.Call(b, block("never", started))
	<-started
	short, cancel := context.WithCancel(ctx)
	cancel()
	if err := b.Stop(short); !errors.Is(err, context.Canceled) {
		t.Fatalf("Stop with an ended context: %v", err)
	}
	if _, err := stuck.Get(ctx); !errors.Is(err, rt.ErrActorDead) {
		t.Fatalf("call of an actor killed by Stop: %v", err)
	}
}

func TestActorConstructorFails(t *testing.T) {
	ctx := testCtx(t)
	r := newRuntime(t, 1)
	bad := errors.New("no database")
	a, err := rt.Spawn(r, func(context.Context) (*ledger, error) { return nil, bad }, rt.MaxRestarts(3))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rt.Call(a, note("x")).Get(ctx); !errors.Is(err, rt.ErrActorDead) || !errors.Is(err, bad) {
		t.Fatalf("call of an actor whose constructor failed: %v", err)
	}
	p, err := rt.Spawn(r, func(context.Context) (*ledger, error) { panic("ctor") })
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rt.Call(p, note("x")).Get(ctx); !errors.Is(err, rt.ErrActorDead) || !errors.Is(err, rt.ErrPanic) {
		t.Fatalf("call of an actor whose constructor panicked: %v", err)
	}
}

func TestActorCancel(t *testing.T) {
	ctx := testCtx(t)
	r := newRuntime(t, 1)
	s := &shared{}
	a, err := rt.Spawn(r, newLedger(s, make(chan struct{})))
	if err != nil {
		t.Fatal(err)
	}
	started := make(chan struct{})
	running := rt.Call(a, block("never", started))
	<-started
	queued := rt.Call(a, note("cancelled"))
	after := rt.Call(a, note("after"))
	queued.Cancel()
	if _, err := queued.Get(ctx); !errors.Is(err, rt.ErrCanceled) {
		t.Fatalf("cancelled while queued: %v", err)
	}
	running.Cancel()
	if _, err := running.Get(ctx); !errors.Is(err, rt.ErrCanceled) {
		t.Fatalf("cancelled while running: %v", err)
	}
	if _, err := after.Get(ctx); err != nil {
		t.Fatal(err)
	}
	if got := s.entries(); fmt.Sprint(got) != "[new 1 after]" {
		t.Fatalf("log %v", got)
	}
}

func TestActorMaxPending(t *testing.T) {
	ctx := testCtx(t)
	r := newRuntime(t, 1)
	s := &shared{}
	gate := make(chan struct{})
	a, err := rt.Spawn(r, newLedger(s, gate), rt.MaxPendingCalls(2))
	if err != nil {
		t.Fatal(err)
	}
	started := make(chan struct{})
	futs := []*rt.Future[int]{rt.Call(a, block("b", started))}
	<-started // running: no longer pending
	futs = append(futs, rt.Call(a, note("1")), rt.Call(a, note("2")))
	if _, err := rt.Call(a, note("3")).Get(ctx); !errors.Is(err, rt.ErrTooManyPending) {
		t.Fatalf("third pending call: %v", err)
	}
	close(gate)
	if _, err := rt.GetAll(ctx, futs...); err != nil {
		t.Fatal(err)
	}
}

// A call with dependencies holds up the calls behind it: the order stays
// the submission order.
func TestActorDependencies(t *testing.T) {
	ctx := testCtx(t)
	r := newRuntime(t, 1)
	s := &shared{}
	a, err := rt.Spawn(r, newLedger(s, nil))
	if err != nil {
		t.Fatal(err)
	}
	dep := rt.NewPromise[int]("dep", nil)
	first := rt.Call(a, note("first"), rt.After(dep.Future()))
	second := rt.Call(a, note("second"))
	dep.Resolve(1, nil)
	if _, err := rt.GetAll(ctx, first, second); err != nil {
		t.Fatal(err)
	}
	bad := rt.Failed[int](errors.New("upstream"))
	if _, err := rt.Call(a, note("never"), rt.After(bad)).Get(ctx); !errors.Is(err, rt.ErrDependency) {
		t.Fatalf("failed dependency: %v", err)
	}
	if got := s.entries(); fmt.Sprint(got) != "[new 1 first second]" {
		t.Fatalf("log %v", got)
	}
	// Do: a call without a result.
	if _, err := rt.Do(a, func(l *ledger, _ context.Context) error { l.shared.record("do"); return nil }).Get(ctx); err != nil {
		t.Fatal(err)
	}
}

// Shutdown kills actors; their goroutines are gone when it returns.
func TestShutdownActors(t *testing.T) {
	ctx := testCtx(t)
	r, err := rt.New(rt.Config{})
	if err != nil {
		t.Fatal(err)
	}
	s := &shared{}
	a, err := rt.Spawn(r, newLedger(s, make(chan struct{})))
	if err != nil {
		t.Fatal(err)
	}
	started := make(chan struct{})
	running := rt.Call(a, block("never", started))
	<-started
	waiting := rt.Call(a, note("never"))
	if err := r.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	for _, f := range []*rt.Future[int]{running, waiting} {
		if _, err := f.Get(ctx); !errors.Is(err, rt.ErrActorDead) || !errors.Is(err, rt.ErrClosed) {
			t.Fatalf("call at shutdown: %v", err)
		}
	}
	select {
	case <-a.Done():
	default:
		t.Fatal("actor goroutine alive after Shutdown")
	}
}

// runtime.Goexit in a method fails the call and ends the actor.
func TestActorGoexit(t *testing.T) {
	ctx := testCtx(t)
	r := newRuntime(t, 1)
	s := &shared{}
	a, err := rt.Spawn(r, newLedger(s, nil), rt.MaxRestarts(3))
	if err != nil {
		t.Fatal(err)
	}
	_, err = rt.Call(a, func(*ledger, context.Context) (int, error) { runtime.Goexit(); return 0, nil }).Get(ctx)
	if !errors.Is(err, rt.ErrPanic) {
		t.Fatalf("call that called Goexit: %v", err)
	}
	<-a.Done()
	if _, err := rt.Call(a, note("after")).Get(ctx); !errors.Is(err, rt.ErrActorDead) {
		t.Fatalf("call after Goexit: %v", err)
	}
}
