package runtime

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"weak"
)

// RemoteActor is a driver's handle to an actor placed on a worker of a
// cluster (ActorClass.Spawn). Its calls (Method.Remote) run one at a time,
// in submission order, on the instance, whose state persists between
// them. The driver supervises it exactly as the local runtime supervises
// a local actor (see Spawn): when its worker is lost, or a method panics,
// the actor has crashed, and it is rebuilt — its constructor runs again,
// on a live worker — within MaxRestarts; the call that was running and
// those waiting fail with ErrActorRestarted unless MaxTaskRetries or
// MaxRetries allow them to run again on the new instance. With no
// restarts left it is dead and its calls fail with ErrActorDead. Errors
// caused by a lost worker also wrap that ErrWorkerLost.
type RemoteActor[S any] struct {
	a     *remoteActor
	local *Actor[*actorProxy]
}

// remoteActor is the untyped part of a RemoteActor.
type remoteActor struct {
	c                  *Cluster
	class              string
	argType, stateType string
	arg                []byte

	lossMu sync.Mutex // alone: annotate runs in completion callbacks

	mu        sync.Mutex
	local     restartable // nil until Spawn returns
	cur       *actorProxy // the live instance, nil while placing or dead
	lastLoss  error       // the worker loss behind the last restart; under lossMu
	lostEarly bool        // lost before Spawn returned
	// While the actor is being rebuilt after a worker loss, new calls are
	// held here and submitted, in order, once the new instance is placed
	// (or the actor is dead): as in Ray, a call made after the loss waits
	// for the restart instead of failing because of it.
	restarting bool
	held       []func()
	placed     chan struct{} // closed when restarting ends
}

type restartable interface {
	Restart()
	Done() <-chan struct{}
}

// actorProxy is one incarnation of a remote actor: the instance on a
// worker. It is the state of the driver-side local actor that orders and
// supervises the calls.
type actorProxy struct {
	a  *remoteActor
	w  *rworker
	id uint64
}

// Spawn places an actor of this class on a live worker of c (the one
// hosting the fewest actors) and returns its handle once its constructor
// has been started, like Class.remote(arg) in Ray. It takes the options
// of the local Spawn: ActorName, MaxRestarts, MaxTaskRetries,
// MaxPendingCalls. It fails only for bad options, a taken name, a closed
// cluster or an argument over the message limit (ErrTooLarge); a
// constructor that fails, or finds no worker, makes the actor dead (its
// calls fail with ErrActorDead wrapping why).
func (cl *ActorClass[S, A]) Spawn(c *Cluster, arg A, opts ...ActorOption) (*RemoteActor[S], error) {
	if c == nil {
		return nil, fmt.Errorf("runtime: Spawn %s: %w: nil Cluster", cl.name, ErrInvalid)
	}
	b, err := encodeArg(cl.arg, arg, c.limit)
	if err != nil {
		return nil, fmt.Errorf("runtime: Spawn %s: %w", cl.name, err)
	}
	ra := &remoteActor{c: c, class: cl.name, argType: cl.argType, stateType: cl.stateType, arg: b}
	local, err := Spawn(c.rt, ra.construct, opts...)
	if err != nil {
		return nil, err
	}
	ra.mu.Lock()
	ra.local = local
	early := ra.lostEarly
	ra.mu.Unlock()
	if early {
		local.Restart()
	}
	return &RemoteActor[S]{a: ra, local: local}, nil
}

// construct places a new instance: it is the driver-side actor's
// constructor, so it runs again on every restart.
func (ra *remoteActor) construct(ctx context.Context) (*actorProxy, error) {
	c := ra.c
	for {
		w, err := c.pick(ctx, true)
		if err != nil {
			return nil, err
		}
		c.mu.Lock()
		c.nextActor++
		id := c.nextActor
		c.mu.Unlock()
		resp, err := c.invoke(ctx, w, &request{op: opSpawn, actor: id, name: ra.class,
			argType: ra.argType, resType: ra.stateType, arg: ra.arg})
		c.release(w)
		if err != nil {
			if errors.Is(err, ErrWorkerLost) && ctx.Err() == nil {
				continue // place it on another worker
			}
			return nil, err
		}
		switch resp.status {
		case stOK:
		case stPanic:
			panic(statusErr(w.name, resp)) // as a local constructor's panic
		default:
			return nil, statusErr(w.name, resp)
		}
		p := &actorProxy{a: ra, w: w, id: id}
		c.mu.Lock()
		attached := !w.lost
		if attached {
			w.actors[p] = struct{}{}
		}
		c.mu.Unlock()
		if !attached {
			continue // the worker was lost meanwhile, and the instance with it
		}
		ra.lossMu.Lock()
		ra.lastLoss = nil
		ra.lossMu.Unlock()
		ra.mu.Lock()
		ra.cur = p
		ra.releaseLocked()
		ra.mu.Unlock()
		// When this incarnation ends (restart, kill, stop, shutdown), its
		// instance is dropped on the worker.
		context.AfterFunc(ctx, func() { c.detach(p) })
		return p, nil
	}
}

// detach forgets an ended incarnation and kills its instance on its
// worker, if the worker is still there.
func (c *Cluster) detach(p *actorProxy) {
	c.mu.Lock()
	_, attached := p.w.actors[p]
	delete(p.w.actors, p)
	c.mu.Unlock()
	if !attached {
		return
	}
	c.background(func() {
		ctx, cancel := context.WithTimeout(c.ctx, pingTimeout)
		defer cancel()
		if _, err := c.invoke(ctx, p.w, &request{op: opKill, actor: p.id, name: p.a.class}); err != nil {
			c.log.Debug("runtime: dropping an actor instance", "worker", p.w.name, "actor", p.a.class, "err", err)
		}
	})
}

// workerLost restarts the actor if p is its live instance.
func (ra *remoteActor) workerLost(p *actorProxy, err error) {
	ra.mu.Lock()
	if ra.cur != p {
		ra.mu.Unlock()
		return
	}
	ra.cur = nil
	ra.lossMu.Lock()
	ra.lastLoss = err
	ra.lossMu.Unlock()
	local := ra.local
	if local == nil {
		ra.lostEarly = true
	}
	if !ra.restarting && local != nil {
		ra.restarting = true
		placed := make(chan struct{})
		ra.placed = placed
		c := ra.c
		started := false
		c.mu.Lock()
		if !c.closed {
			started = true
			c.goLocked(func() {
				// The restart may end in death instead (no restarts left,
				// no worker): release the held calls then too.
				select {
				case <-placed:
				case <-local.Done():
				case <-c.ctx.Done():
				}
				ra.mu.Lock()
				ra.releaseLocked()
				ra.mu.Unlock()
			})
		}
		c.mu.Unlock()
		if !started {
			ra.releaseLocked()
		}
	}
	ra.mu.Unlock()
	if local != nil {
		local.Restart()
	}
}

// releaseLocked ends a restart's hold: the held calls are submitted in
// their order, under ra.mu so that later calls queue behind them.
func (ra *remoteActor) releaseLocked() {
	if !ra.restarting {
		return
	}
	ra.restarting = false
	close(ra.placed)
	held := ra.held
	ra.held = nil
	for _, submit := range held {
		submit()
	}
}

// submit submits a call now, or holds it while the actor is being rebuilt
// after a worker loss.
func (ra *remoteActor) submit(fn func()) {
	ra.mu.Lock()
	if ra.restarting {
		ra.held = append(ra.held, fn)
		ra.mu.Unlock()
		return
	}
	ra.mu.Unlock()
	fn()
}

// annotate adds the worker loss behind a restart to the errors of calls
// that failed because of it.
func (ra *remoteActor) annotate(err error) error {
	ra.lossMu.Lock()
	loss := ra.lastLoss
	ra.lossMu.Unlock()
	if loss == nil || errors.Is(err, ErrWorkerLost) || !(errors.Is(err, ErrActorRestarted) || errors.Is(err, ErrActorDead)) {
		return err
	}
	var te *TaskError
	if !errors.As(err, &te) {
		return err
	}
	cp := *te
	cp.Err = fmt.Errorf("%w (after %w)", te.Err, loss)
	return &cp
}

func (ra *remoteActor) clearLoss() {
	ra.lossMu.Lock()
	ra.lastLoss = nil
	ra.lossMu.Unlock()
}

// call runs one method call on the instance.
func (p *actorProxy) call(ctx context.Context, q *request) ([]byte, error) {
	c := p.a.c
	if !c.acquire(p.w) {
		err := c.lostErr(p.w)
		p.a.workerLost(p, err)
		return nil, err
	}
	resp, err := c.invoke(ctx, p.w, q)
	c.release(p.w)
	if err != nil {
		if errors.Is(err, ErrWorkerLost) {
			p.a.workerLost(p, err)
		}
		return nil, err
	}
	switch resp.status {
	case stOK:
		return resp.result, nil
	case stPanic:
		// The method panicked: the instance crashed, as a local actor's
		// does, and restarts within MaxRestarts.
		panic(statusErr(p.w.name, resp))
	case stActorGone:
		err := statusErr(p.w.name, resp)
		p.a.mu.Lock()
		current := p.a.cur == p
		local := p.a.local
		p.a.mu.Unlock()
		if current && local != nil {
			local.Restart()
		}
		return nil, err
	}
	return nil, statusErr(p.w.name, resp)
}

// Remote calls the method on the actor with arg, like
// actor.method.remote(arg) in Ray, and returns its future. Calls run one
// at a time in submission order; they take the options of Call (Name,
// MaxRetries, RetryExceptions, RetryIf, After). c.Placement(future) tells
// which worker hosted the instance that ran it.
func (m *Method[S, A, R]) Remote(h *RemoteActor[S], arg A, opts ...Option) *Future[R] {
	if h == nil || h.a == nil {
		return Failed[R](&TaskError{Name: m.Name(), Err: fmt.Errorf("%w: nil RemoteActor", ErrInvalid)})
	}
	if h.a.class != m.actor {
		return Failed[R](&TaskError{Name: m.Name(), Err: fmt.Errorf("%w: method of actor type %q called on a %q", ErrInvalid, m.actor, h.a.class)})
	}
	c := h.a.c
	b, err := encodeArg(m.arg, arg, c.limit)
	if err != nil {
		return Failed[R](&TaskError{Name: m.Name(), Err: err})
	}
	rec := &placementRec{}
	tmpl := request{op: opCall, name: m.actor, method: m.name, argType: m.argType, resType: m.resType, arg: b}
	outer := newFuture[R](buildOptions(opts, m.Name(), 0).name)
	h.a.submit(func() {
		inner := Call(h.local, func(p *actorProxy, ctx context.Context) (R, error) {
			var zero R
			rec.add(p.w.name)
			q := tmpl
			q.actor = p.id
			out, err := p.call(ctx, &q)
			if err != nil {
				return zero, err
			}
			return decodeAs(m.res, out, "the result from worker "+p.w.name)
		}, append([]Option{Name(m.Name())}, opts...)...)
		outer.setCancel(inner.Cancel)
		inner.c.onDone(func() {
			err := inner.c.err
			if err != nil {
				err = h.a.annotate(err)
			}
			outer.resolve(inner.val, err)
		})
	})
	c.places.put(&outer.c, rec)
	return outer
}

// Name is the actor's name (ActorName) or a generated one.
func (h *RemoteActor[S]) Name() string { return h.local.Name() }

// Worker names the worker hosting the live instance; "" while the actor
// is being placed or is dead.
func (h *RemoteActor[S]) Worker() string {
	h.a.mu.Lock()
	defer h.a.mu.Unlock()
	if h.a.cur == nil {
		return ""
	}
	return h.a.cur.w.name
}

// Kill stops the actor now, without a restart, like ray.kill; see
// Actor.Kill. Its instance is dropped on its worker.
func (h *RemoteActor[S]) Kill() {
	h.a.clearLoss()
	h.local.Kill()
}

// Restart rebuilds the actor as a crash would, within MaxRestarts; see
// Actor.Restart. The new instance may be placed on another worker.
func (h *RemoteActor[S]) Restart() {
	h.a.clearLoss()
	h.local.Restart()
}

// Stop stops the actor gracefully; see Actor.Stop.
func (h *RemoteActor[S]) Stop(ctx context.Context) error {
	h.a.clearLoss()
	return h.local.Stop(ctx)
}

// Done is closed when the actor is dead for good.
func (h *RemoteActor[S]) Done() <-chan struct{} { return h.local.Done() }

// Err is nil while the actor lives, and why it died once it is dead.
func (h *RemoteActor[S]) Err() error { return h.local.Err() }

// Placement says where a remote task or actor call ran.
type Placement struct {
	// Worker names the worker of the last attempt ("" before the first).
	Worker string
	// Attempts names the worker of every attempt, in order: more than
	// one when a lost worker made the call run again.
	Attempts []string
}

type placementRec struct {
	mu      sync.Mutex
	workers []string
}

func (r *placementRec) add(worker string) {
	r.mu.Lock()
	r.workers = append(r.workers, worker)
	r.mu.Unlock()
}

// placements maps futures to where they ran without keeping them alive:
// an entry goes once its future has been collected.
type placements struct {
	mu      sync.Mutex
	m       map[weak.Pointer[core]]*placementRec
	sweepAt int
}

func (p *placements) put(c *core, rec *placementRec) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.m == nil {
		p.m = make(map[weak.Pointer[core]]*placementRec)
	}
	if len(p.m) >= p.sweepAt {
		for k := range p.m {
			if k.Value() == nil {
				delete(p.m, k)
			}
		}
		p.sweepAt = max(1024, 2*len(p.m))
	}
	p.m[weak.Make(c)] = rec
}

func (p *placements) get(c *core) *placementRec {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.m[weak.Make(c)]
}

// Placement says which worker ran f, a future of this cluster's
// RemoteFunc.Remote or Method.Remote; false for any other future.
func (c *Cluster) Placement(f Waitable) (Placement, bool) {
	if f == nil || f.base() == nil {
		return Placement{}, false
	}
	rec := c.places.get(f.base())
	if rec == nil {
		return Placement{}, false
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	pl := Placement{Attempts: slices.Clone(rec.workers)}
	if n := len(rec.workers); n > 0 {
		pl.Worker = rec.workers[n-1]
	}
	return pl, true
}
