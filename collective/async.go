package collective

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/ringo-ml/ringo/internal/engine"
	"github.com/ringo-ml/ringo/internal/wire"
	"github.com/ringo-ml/ringo/runtime"
)

// asyncQueue orders a communicator's asynchronous operations, and the
// blocking calls issued while any is pending, in issue order.
type asyncQueue struct {
	mu      sync.Mutex
	jobs    []*asyncJob
	pending int           // jobs queued or running
	exited  chan struct{} // closed when the executor returns; nil when none runs
	closed  bool
}

type jobState uint8

const (
	jobWaiting   jobState = iota
	jobGranted            // its turn came
	jobAbandoned          // its context ended first
)

// asyncJob is an asynchronous operation, or a blocking call's turn.
type asyncJob struct {
	desc string
	// An asynchronous operation: run on the executor, then resolve.
	ctx     context.Context
	op      func(context.Context) error
	resolve func(error)
	unwatch func() bool
	// A blocking call: turn is closed when its turn comes; the caller
	// closes fin when it is done.
	turn, fin chan struct{}

	state   jobState // guarded by asyncQueue.mu
	abandon error
}

// execKey marks the executor's calls, which must not queue again.
type execKey struct{}

// pushLocked appends j and starts the executor if none runs.
func (c *Communicator) pushLocked(j *asyncJob) {
	q := &c.async
	q.jobs = append(q.jobs, j)
	q.pending++
	if q.exited == nil {
		q.exited = make(chan struct{})
		go c.execute(q.exited)
	}
}

// execute runs queued jobs in order and returns when the queue is empty.
func (c *Communicator) execute(exited chan struct{}) {
	q := &c.async
	defer close(exited)
	for {
		q.mu.Lock()
		if len(q.jobs) == 0 {
			q.jobs = nil
			q.exited = nil
			q.mu.Unlock()
			return
		}
		j := q.jobs[0]
		q.jobs[0] = nil
		q.jobs = q.jobs[1:]
		if j.state == jobAbandoned {
			q.mu.Unlock()
			c.poisonAbandoned(j)
			q.mu.Lock()
			q.pending--
			q.mu.Unlock()
			continue
		}
		j.state = jobGranted
		q.mu.Unlock()
		if j.turn != nil {
			close(j.turn)
			<-j.fin // the blocking call has run (and counted itself done)
			continue
		}
		j.unwatch()
		err := j.op(context.WithValue(j.ctx, execKey{}, true))
		q.mu.Lock()
		q.pending--
		q.mu.Unlock()
		j.resolve(err)
	}
}

// poisonAbandoned fails the communicator for an operation whose context
// ended before its turn: this rank skips it, so its sequence no longer
// matches the other ranks'.
func (c *Communicator) poisonAbandoned(j *asyncJob) {
	c.mu.Lock()
	closed := c.closed
	c.mu.Unlock()
	if closed {
		return
	}
	code := wire.CodeCanceled
	if errors.Is(j.abandon, context.DeadlineExceeded) {
		code = wire.CodeTimeout
	}
	reason := fmt.Sprintf("rank %d: %s: %v before its turn", c.rank, j.desc, j.abandon)
	c.poison(fmt.Errorf("%w before its turn (%s)", j.abandon, j.desc), code, reason)
}

// asyncTurn is where a blocking call waits, before it takes the
// communicator, for the asynchronous operations issued before it. It
// returns the function that ends its turn.
func (c *Communicator) asyncTurn(ctx context.Context, h *wire.Header) (leave func(), err error) {
	q := &c.async
	q.mu.Lock()
	if q.pending == 0 || q.closed || ctx.Value(execKey{}) != nil {
		q.mu.Unlock()
		return func() {}, nil
	}
	j := &asyncJob{desc: engine.Describe(h), turn: make(chan struct{}), fin: make(chan struct{})}
	c.pushLocked(j)
	q.mu.Unlock()
	leave = func() {
		q.mu.Lock()
		q.pending--
		q.mu.Unlock()
		close(j.fin)
	}
	select {
	case <-j.turn:
		return leave, nil
	case <-ctx.Done():
	}
	q.mu.Lock()
	if j.state == jobWaiting {
		j.state, j.abandon = jobAbandoned, ctx.Err()
		q.mu.Unlock()
		return nil, &OpError{Rank: c.rank, Call: j.desc,
			Err: fmt.Errorf("%w while waiting for earlier asynchronous operations", ctx.Err())}
	}
	q.mu.Unlock()
	<-j.turn // granted meanwhile: run, and fail on the ended context
	return leave, nil
}

// stopAsync refuses new asynchronous operations and waits for the executor
// to return. Called by Close, after which every queued operation fails
// fast with ErrClosed.
func (c *Communicator) stopAsync() {
	q := &c.async
	q.mu.Lock()
	q.closed = true
	exited := q.exited
	q.mu.Unlock()
	if exited != nil {
		<-exited
	}
}

// enqueue queues an asynchronous operation and returns its future.
func (c *Communicator) enqueue(ctx context.Context, name string, op func(context.Context) error) *runtime.Future[struct{}] {
	desc := name + " (asynchronous)"
	if ctx == nil {
		return runtime.Failed[struct{}](&OpError{Rank: c.rank, Call: desc, Err: fmt.Errorf("%w: nil context", ErrInvalid)})
	}
	opCtx, cancel := context.WithCancel(ctx)
	p := runtime.NewPromise[struct{}](desc, cancel)
	j := &asyncJob{desc: desc, ctx: opCtx, op: op}
	j.resolve = func(err error) {
		cancel()
		p.Resolve(struct{}{}, err)
	}
	q := &c.async
	j.unwatch = context.AfterFunc(opCtx, func() {
		q.mu.Lock()
		if j.state != jobWaiting {
			q.mu.Unlock()
			return
		}
		j.state, j.abandon = jobAbandoned, opCtx.Err()
		q.mu.Unlock()
		j.resolve(&OpError{Rank: c.rank, Call: desc,
			Err: fmt.Errorf("%w while waiting for earlier operations", j.abandon)})
	})
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		j.unwatch()
		j.resolve(&OpError{Rank: c.rank, Call: desc, Err: ErrClosed})
		return p.Future()
	}
	c.pushLocked(j)
	q.mu.Unlock()
	return p.Future()
}

// AllReduceAsync is AllReduce, queued: it returns at once with a future
// that completes when the operation has.
//
// Each asynchronous call (AllReduceAsync, BroadcastAsync, ...) queues its
// operation on the communicator and returns a future at once; the
// operations run one at a time in the order they were issued, like the
// calls of an actor's mailbox, on a goroutine of the communicator's that
// exists while the queue is not empty. A training loop can so overlap its
// computation with communication:
//
//	for l := len(layers) - 1; l >= 0; l-- {
//		layers[l].Backward()                                  // gradients of layer l
//		futs[l] = comm.AllReduceAsync(ctx, layers[l].Grad, collective.Avg)
//	}
//	for l := range layers {
//		if _, err := futs[l].Get(ctx); err != nil { return err }
//		layers[l].Apply()
//	}
//
// The rules:
//
//   - Issue order is execution order, on every rank: as with blocking
//     calls, every rank must issue the same operations in the same order.
//     A blocking call issued while asynchronous ones are queued or running
//     waits for them and then runs in its turn: mixing both keeps the
//     order in which they were issued. Calls issued concurrently from
//     several goroutines get an arbitrary order, which the other ranks
//     will not match.
//   - A buffer passed to an asynchronous call belongs to the operation
//     until its future completes: do not read or write it before (the
//     operation reads and writes it while it runs). Passing it to a later
//     operation on the same communicator is fine: that one runs after.
//   - Failures are those of blocking calls and poison the communicator the
//     same way: the operations queued behind a failed one fail with
//     ErrPoisoned. The future's error is an *OpError.
//   - The context bounds the operation, including its wait in the queue.
//     If it ends (or the future is cancelled) before the operation's turn,
//     the future fails at once with the context's error and the buffer is
//     never touched; when the turn comes the communicator is poisoned, as
//     a blocking call whose context ended would have poisoned it, because
//     this rank can no longer match the others' sequence. A blocking call
//     whose context ends while it waits behind asynchronous ones behaves
//     the same.
//   - Close fails the queued operations with ErrClosed and waits for the
//     queue's goroutine to return. Get the futures before Close to let
//     them finish.
func (c *Communicator) AllReduceAsync(ctx context.Context, buf any, op Op, opts ...CallOption) *runtime.Future[struct{}] {
	opts = slices.Clone(opts)
	return c.enqueue(ctx, "AllReduce", func(ctx context.Context) error { return c.AllReduce(ctx, buf, op, opts...) })
}

// BroadcastAsync is Broadcast, queued: see AllReduceAsync.
func (c *Communicator) BroadcastAsync(ctx context.Context, buf any, root int, opts ...CallOption) *runtime.Future[struct{}] {
	opts = slices.Clone(opts)
	return c.enqueue(ctx, "Broadcast", func(ctx context.Context) error { return c.Broadcast(ctx, buf, root, opts...) })
}

// ReduceAsync is Reduce, queued: see AllReduceAsync.
func (c *Communicator) ReduceAsync(ctx context.Context, dst, src any, op Op, root int, opts ...CallOption) *runtime.Future[struct{}] {
	opts = slices.Clone(opts)
	return c.enqueue(ctx, "Reduce", func(ctx context.Context) error { return c.Reduce(ctx, dst, src, op, root, opts...) })
}

// GatherAsync is Gather, queued: see AllReduceAsync.
func (c *Communicator) GatherAsync(ctx context.Context, dst, src any, root int, opts ...CallOption) *runtime.Future[struct{}] {
	opts = slices.Clone(opts)
	return c.enqueue(ctx, "Gather", func(ctx context.Context) error { return c.Gather(ctx, dst, src, root, opts...) })
}

// AllGatherAsync is AllGather, queued: see AllReduceAsync.
func (c *Communicator) AllGatherAsync(ctx context.Context, dst, src any, opts ...CallOption) *runtime.Future[struct{}] {
	opts = slices.Clone(opts)
	return c.enqueue(ctx, "AllGather", func(ctx context.Context) error { return c.AllGather(ctx, dst, src, opts...) })
}

// ReduceScatterAsync is ReduceScatter, queued: see AllReduceAsync.
func (c *Communicator) ReduceScatterAsync(ctx context.Context, dst, src any, op Op, opts ...CallOption) *runtime.Future[struct{}] {
	opts = slices.Clone(opts)
	return c.enqueue(ctx, "ReduceScatter", func(ctx context.Context) error { return c.ReduceScatter(ctx, dst, src, op, opts...) })
}

// BarrierAsync is Barrier, queued: see AllReduceAsync. Its future
// completes once every rank has entered it.
func (c *Communicator) BarrierAsync(ctx context.Context, opts ...CallOption) *runtime.Future[struct{}] {
	opts = slices.Clone(opts)
	return c.enqueue(ctx, "Barrier", func(ctx context.Context) error { return c.Barrier(ctx, opts...) })
}
