package collective

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/ringo-ml/ringo/internal/engine"
	"github.com/ringo-ml/ringo/internal/wire"
)

// Work is an operation that an asynchronous call issued, as
// torch.distributed's Work and MPI's requests: Wait for it before
// touching its buffers. Package runtime turns one into a Future
// (runtime.Await).
type Work struct {
	call   string
	done   chan struct{}
	err    error // set before done is closed
	cancel context.CancelFunc
}

// Wait waits until the operation has completed and returns its error (an
// *OpError), or until ctx ends and returns ctx's error: the operation
// goes on, and Wait may be called again.
func (w *Work) Wait(ctx context.Context) error {
	select {
	case <-w.done:
		return w.err
	case <-ctx.Done():
		select {
		case <-w.done:
			return w.err
		default:
		}
		return ctx.Err()
	}
}

// Done is closed when the operation has completed.
func (w *Work) Done() <-chan struct{} { return w.done }

// Err is the operation's error once Done is closed, nil before.
func (w *Work) Err() error {
	select {
	case <-w.done:
		return w.err
	default:
		return nil
	}
}

// Cancel cancels the operation's context: as if the context given to the
// asynchronous call had ended (see AllReduceAsync). It does not wait.
func (w *Work) Cancel() { w.cancel() }

// String names the operation, e.g. "AllReduce (asynchronous)".
func (w *Work) String() string { return w.call }

func (w *Work) finish(err error) {
	w.err = err
	w.cancel()
	close(w.done)
}

// WaitAll waits for every Work and returns the first error among them in
// order, or ctx's error if it ends first.
func WaitAll(ctx context.Context, works ...*Work) error {
	var first error
	for _, w := range works {
		if err := w.Wait(ctx); err != nil {
			if ctx.Err() != nil {
				return err
			}
			if first == nil {
				first = err
			}
		}
	}
	return first
}

// abandoned fails the communicator for an operation whose context ended
// before its turn: this rank skips it, so its sequence no longer matches
// the other ranks'.
func (c *Communicator) abandoned(desc string, cause error) {
	c.mu.Lock()
	closed := c.closed
	c.mu.Unlock()
	if closed {
		return
	}
	code := wire.CodeCanceled
	if errors.Is(cause, context.DeadlineExceeded) {
		code = wire.CodeTimeout
	}
	reason := fmt.Sprintf("rank %d: %s: %v before its turn", c.rank, desc, cause)
	c.poison(fmt.Errorf("%w before its turn (%s)", cause, desc), code, reason)
}

// asyncTurn is where a blocking call waits, before it takes the
// communicator, for the asynchronous operations issued before it.
func (c *Communicator) asyncTurn(ctx context.Context, h *wire.Header) (leave func(), err error) {
	if !c.queue.Busy(ctx) {
		return noTurn, nil
	}
	leave, err = c.queue.Turn(ctx, engine.Describe(h))
	if err != nil {
		return nil, &OpError{Rank: c.rank, Call: engine.Describe(h), Err: err}
	}
	return leave, nil
}

func noTurn() {}

// enqueue queues an asynchronous operation and returns its Work.
func (c *Communicator) enqueue(ctx context.Context, name string, op func(context.Context) error) *Work {
	w := &Work{call: name + " (asynchronous)", done: make(chan struct{})}
	if ctx == nil {
		w.cancel = func() {}
		w.finish(&OpError{Rank: c.rank, Call: w.call, Err: fmt.Errorf("%w: nil context", ErrInvalid)})
		return w
	}
	ctx, w.cancel = context.WithCancel(ctx)
	finish := func(err error) {
		if err != nil {
			var oe *OpError
			if !errors.As(err, &oe) {
				err = &OpError{Rank: c.rank, Call: w.call, Err: err}
			}
		}
		w.finish(err)
	}
	if !c.queue.Go(ctx, w.call, op, finish) {
		w.finish(&OpError{Rank: c.rank, Call: w.call, Err: ErrClosed})
	}
	return w
}

// AllReduceAsync is AllReduce, queued: it returns at once with a Work
// that completes when the operation has.
//
// Each asynchronous call (AllReduceAsync, BroadcastAsync, ...) queues its
// operation on the communicator and returns a Work at once; the
// operations run one at a time in the order they were issued, like the
// calls of an actor's mailbox, on a goroutine of the communicator's that
// exists while the queue is not empty. A training loop can so overlap its
// computation with communication:
//
//	for l := len(layers) - 1; l >= 0; l-- {
//		layers[l].Backward()                                  // gradients of layer l
//		works[l] = comm.AllReduceAsync(ctx, layers[l].Grad, collective.Avg)
//	}
//	for l := range layers {
//		if err := works[l].Wait(ctx); err != nil { return err }
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
//     until its Work completes: do not read or write it before (the
//     operation reads and writes it while it runs). Passing it to a later
//     operation on the same communicator is fine: that one runs after.
//   - Failures are those of blocking calls and poison the communicator the
//     same way: the operations queued behind a failed one fail with
//     ErrPoisoned. The Work's error is an *OpError.
//   - The context bounds the operation, including its wait in the queue.
//     If it ends (or the Work is cancelled) before the operation's turn,
//     the Work fails at once with the context's error and the buffer is
//     never touched; when the turn comes the communicator is poisoned, as
//     a blocking call whose context ended would have poisoned it, because
//     this rank can no longer match the others' sequence. A blocking call
//     whose context ends while it waits behind asynchronous ones behaves
//     the same.
//   - Close fails the queued operations with ErrClosed and waits for the
//     queue's goroutine to return. Wait for the Works before Close to let
//     them finish.
func (c *Communicator) AllReduceAsync(ctx context.Context, buf any, op ReduceOp, opts ...CallOption) *Work {
	opts = slices.Clone(opts)
	return c.enqueue(ctx, "AllReduce", func(ctx context.Context) error { return c.AllReduce(ctx, buf, op, opts...) })
}

// BroadcastAsync is Broadcast, queued: see AllReduceAsync.
func (c *Communicator) BroadcastAsync(ctx context.Context, buf any, root int, opts ...CallOption) *Work {
	opts = slices.Clone(opts)
	return c.enqueue(ctx, "Broadcast", func(ctx context.Context) error { return c.Broadcast(ctx, buf, root, opts...) })
}

// ReduceAsync is Reduce, queued: see AllReduceAsync.
func (c *Communicator) ReduceAsync(ctx context.Context, dst, src any, op ReduceOp, root int, opts ...CallOption) *Work {
	opts = slices.Clone(opts)
	return c.enqueue(ctx, "Reduce", func(ctx context.Context) error { return c.Reduce(ctx, dst, src, op, root, opts...) })
}

// GatherAsync is Gather, queued: see AllReduceAsync.
func (c *Communicator) GatherAsync(ctx context.Context, dst, src any, root int, opts ...CallOption) *Work {
	opts = slices.Clone(opts)
	return c.enqueue(ctx, "Gather", func(ctx context.Context) error { return c.Gather(ctx, dst, src, root, opts...) })
}

// AllGatherAsync is AllGather, queued: see AllReduceAsync.
func (c *Communicator) AllGatherAsync(ctx context.Context, dst, src any, opts ...CallOption) *Work {
	opts = slices.Clone(opts)
	return c.enqueue(ctx, "AllGather", func(ctx context.Context) error { return c.AllGather(ctx, dst, src, opts...) })
}

// ReduceScatterAsync is ReduceScatter, queued: see AllReduceAsync.
func (c *Communicator) ReduceScatterAsync(ctx context.Context, dst, src any, op ReduceOp, opts ...CallOption) *Work {
	opts = slices.Clone(opts)
	return c.enqueue(ctx, "ReduceScatter", func(ctx context.Context) error { return c.ReduceScatter(ctx, dst, src, op, opts...) })
}

// BarrierAsync is Barrier, queued: see AllReduceAsync. Its Work
// completes once every rank has entered it.
func (c *Communicator) BarrierAsync(ctx context.Context, opts ...CallOption) *Work {
	opts = slices.Clone(opts)
	return c.enqueue(ctx, "Barrier", func(ctx context.Context) error { return c.Barrier(ctx, opts...) })
}
