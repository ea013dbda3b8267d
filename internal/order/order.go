// Package order runs a communicator's asynchronous operations, and the
// blocking calls issued between them, one at a time in issue order.
//
// Every rank must run the same collectives in the same order; a rank that
// issues AllReduceAsync, then Broadcast, must run them in that order even
// though the first returns at once. A Queue keeps that promise: Go queues
// an operation to run on the queue's goroutine (one that exists while the
// queue is not empty), and Turn makes a blocking call wait for the
// operations issued before it. An operation whose context ends before its
// turn is abandoned: it fails at once, and when its turn comes the queue
// calls Abandoned, because this rank no longer matches the others'
// sequence (the communicator poisons itself).
package order

import (
	"context"
	"fmt"
	"sync"
)

// Queue orders operations and turns. The zero value is not usable: use New.
type Queue struct {
	abandoned func(desc string, cause error)

	mu      sync.Mutex
	jobs    []*job
	pending int           // jobs queued or running
	exited  chan struct{} // closed when the executor returns; nil when none runs
	closed  bool
}

// New returns a queue; abandoned is called, on the queue's goroutine, at
// the turn of each operation or blocking call whose context ended before
// it.
func New(abandoned func(desc string, cause error)) *Queue {
	return &Queue{abandoned: abandoned}
}

type state uint8

const (
	waiting   state = iota
	granted         // its turn came
	abandoned       // its context ended first
)

// job is an asynchronous operation, or a blocking call's turn.
type job struct {
	desc string
	// An asynchronous operation: run on the executor, then finish.
	ctx     context.Context
	op      func(context.Context) error
	finish  func(error)
	unwatch func() bool
	// A blocking call: turn is closed when its turn comes; the caller
	// closes fin when it is done.
	turn, fin chan struct{}

	state state // guarded by Queue.mu
	cause error // why it was abandoned
}

// executorKey marks the executor's calls, which must not queue again.
type executorKey struct{}

// pushLocked appends j and starts the executor if none runs.
func (q *Queue) pushLocked(j *job) {
	q.jobs = append(q.jobs, j)
	q.pending++
	if q.exited == nil {
		q.exited = make(chan struct{})
		go q.execute(q.exited)
	}
}

// execute runs queued jobs in order and returns when the queue is empty.
func (q *Queue) execute(exited chan struct{}) {
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
		if j.state == abandoned {
			q.mu.Unlock()
			q.abandoned(j.desc, j.cause)
			q.done()
			continue
		}
		j.state = granted
		q.mu.Unlock()
		if j.turn != nil {
			close(j.turn)
			<-j.fin // the blocking call has run (and counted itself done)
			continue
		}
		j.unwatch()
		err := j.op(context.WithValue(j.ctx, executorKey{}, true))
		q.done()
		j.finish(err)
	}
}

// done counts one job finished.
func (q *Queue) done() {
	q.mu.Lock()
	q.pending--
	q.mu.Unlock()
}

// Go queues op, named desc, to run after everything issued before it, and
// calls finish with its error once it has run, or at once with an error
// wrapping the context's when ctx ends before its turn. It reports false
// (and calls nothing) when the queue is closed.
func (q *Queue) Go(ctx context.Context, desc string, op func(context.Context) error, finish func(error)) bool {
	j := &job{desc: desc, ctx: ctx, op: op, finish: finish}
	j.unwatch = context.AfterFunc(ctx, func() {
		q.mu.Lock()
		if j.state != waiting {
			q.mu.Unlock()
			return
		}
		j.state, j.cause = abandoned, ctx.Err()
		q.mu.Unlock()
		finish(fmt.Errorf("%w while waiting for earlier operations", j.cause))
	})
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		j.unwatch()
		return false
	}
	q.pushLocked(j)
	return true
}

// Busy reports whether a blocking call issued now must take a Turn:
// operations are queued and the caller is not the queue's goroutine. It
// lets callers skip naming the call (which allocates) on the fast path.
func (q *Queue) Busy(ctx context.Context) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.pending > 0 && !q.closed && ctx.Value(executorKey{}) == nil
}

// Turn is where a blocking call named desc waits, before it runs, for the
// asynchronous operations issued before it. It returns the function that
// ends its turn, or the context's error (wrapped) when ctx ends first.
// Calls from the queue's own goroutine, and calls while nothing is
// queued, go at once.
func (q *Queue) Turn(ctx context.Context, desc string) (leave func(), err error) {
	q.mu.Lock()
	if q.pending == 0 || q.closed || ctx.Value(executorKey{}) != nil {
		q.mu.Unlock()
		return func() {}, nil
	}
	j := &job{desc: desc, turn: make(chan struct{}), fin: make(chan struct{})}
	q.pushLocked(j)
	q.mu.Unlock()
	leave = func() {
		q.done()
		close(j.fin)
	}
	select {
	case <-j.turn:
		return leave, nil
	case <-ctx.Done():
	}
	q.mu.Lock()
	if j.state == waiting {
		j.state, j.cause = abandoned, ctx.Err()
		q.mu.Unlock()
		return nil, fmt.Errorf("%w while waiting for earlier asynchronous operations", ctx.Err())
	}
	q.mu.Unlock()
	<-j.turn // granted meanwhile: run, and fail on the ended context
	return leave, nil
}

// Close refuses new operations and waits for the queue's goroutine to
// return: the operations queued run (and fail fast on a closed
// communicator) first.
func (q *Queue) Close() {
	q.mu.Lock()
	q.closed = true
	exited := q.exited
	q.mu.Unlock()
	if exited != nil {
		<-exited
	}
}

// Pending reports how many operations and turns are queued or running,
// and the channel closed when the queue's goroutine returns (nil when
// none runs).
func (q *Queue) Pending() (n int, exited <-chan struct{}) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.exited != nil {
		exited = q.exited
	}
	return q.pending, exited
}
