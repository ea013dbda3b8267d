package collective

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"time"
	"unsafe"

	"github.com/ringo-ml/ringo/internal/engine"
	"github.com/ringo-ml/ringo/internal/engine/stream"
	"github.com/ringo-ml/ringo/internal/reduce"
	"github.com/ringo-ml/ringo/internal/transport"
	"github.com/ringo-ml/ringo/internal/wire"
)

// tensor is a caller's buffer seen as bytes.
type tensor struct {
	b  []byte
	dt wire.DType
	n  int // elements
}

// asTensor accepts []float32, []float64, []int32, []int64, []uint8,
// []Float16 and []BFloat16. A nil slice of any of them is a valid empty
// tensor; nil (untyped) is accepted where allowNil says so.
func asTensor(name string, v any, allowNil bool) (tensor, error) {
	switch s := v.(type) {
	case []float32:
		return tensor{engine.Bytes(s), wire.Float32, len(s)}, nil
	case []float64:
		return tensor{engine.Bytes(s), wire.Float64, len(s)}, nil
	case []int32:
		return tensor{bytesOf(s), wire.Int32, len(s)}, nil
	case []int64:
		return tensor{bytesOf(s), wire.Int64, len(s)}, nil
	case []uint8:
		return tensor{s, wire.Uint8, len(s)}, nil
	case []Float16:
		return tensor{bytesOf(s), wire.Float16, len(s)}, nil
	case []BFloat16:
		return tensor{bytesOf(s), wire.BFloat16, len(s)}, nil
	case nil:
		if allowNil {
			return tensor{}, nil
		}
		return tensor{}, fmt.Errorf("%w: %s is nil", ErrInvalid, name)
	}
	// reflect.TypeOf, not %T: passing v to fmt would make every caller's
	// slice escape to the heap, one allocation per call.
	return tensor{}, fmt.Errorf("%w: %s is a %s; want []float32, []float64, []int32, []int64, []uint8, []Float16 or []BFloat16", ErrInvalid, name, reflect.TypeOf(v))
}

// bytesOf views any slice of fixed-size elements as its bytes.
func bytesOf[T any](s []T) []byte {
	if len(s) == 0 {
		if s == nil {
			return nil
		}
		return []byte{}
	}
	var z T
	return unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(s))), len(s)*int(unsafe.Sizeof(z)))
}

// AllReduce reduces buf element by element over all ranks with op and
// leaves the result in buf on every rank, identical bit for bit.
func (c *Communicator) AllReduce(ctx context.Context, buf any, op ReduceOp, opts ...CallOption) error {
	h := wire.Header{Op: wire.OpAllReduce, Root: -1}
	t, err := asTensor("buf", buf, false)
	if err == nil {
		err = checkOp(op)
	}
	if err == nil {
		err = checkAvg(op, t.dt)
	}
	if err == nil && engine.Half(t.dt) {
		return c.reduceHalf(ctx, t, tensor{}, func(d, _ []float32) error { return c.AllReduce(ctx, d, op, opts...) })
	}
	h.DType, h.Count, h.Reduce = t.dt, uint64(t.n), op.wire()
	return c.do(ctx, &h, err, opts, func(o *stream.Op) {
		o.Dst, o.Lay.DstParts = t.b, c.world
		o.Kernel = op.kernel()
	}, op == Avg)
}

// Broadcast copies root's buf into buf on every other rank. Every rank
// passes a buffer of the same length and type.
func (c *Communicator) Broadcast(ctx context.Context, buf any, root int, opts ...CallOption) error {
	h := wire.Header{Op: wire.OpBroadcast}
	t, err := asTensor("buf", buf, false)
	if err == nil {
		err = c.checkRoot(root)
	}
	h.DType, h.Count, h.Root = t.dt, uint64(t.n), int32(root)
	return c.do(ctx, &h, err, opts, func(o *stream.Op) {
		o.Dst, o.Lay.DstParts = t.b, 1
	}, false)
}

// Reduce reduces src over all ranks with op into dst at root. dst is used
// only at root (len(dst) == len(src)); elsewhere it may be nil. src is
// never modified.
func (c *Communicator) Reduce(ctx context.Context, dst, src any, op ReduceOp, root int, opts ...CallOption) error {
	h := wire.Header{Op: wire.OpReduce}
	s, err := asTensor("src", src, false)
	var d tensor
	if err == nil {
		err = checkOp(op)
	}
	if err == nil {
		err = c.checkRoot(root)
	}
	if err == nil && c.rank == root {
		if d, err = asTensor("dst", dst, false); err == nil {
			err = sameShape("dst", d, s.dt, s.n)
		}
	}
	if err == nil {
		err = checkAvg(op, s.dt)
	}
	if err == nil && engine.Half(s.dt) {
		return c.reduceHalf(ctx, d, s, func(df, sf []float32) error {
			var dv any
			if df != nil {
				dv = df
			}
			return c.Reduce(ctx, dv, sf, op, root, opts...)
		})
	}
	h.DType, h.Count, h.Reduce, h.Root = s.dt, uint64(s.n), op.wire(), int32(root)
	return c.do(ctx, &h, err, opts, func(o *stream.Op) {
		o.Src, o.Dst = s.b, d.b
		o.Lay = stream.Layout{DstParts: 1, SrcParts: 1, StageTotal: s.n, StageParts: 1}
		o.Kernel = op.kernel()
	}, op == Avg && c.rank == root)
}

// Gather collects every rank's src into dst at root: block k of dst (of
// len(src) elements) is rank k's src. dst is used only at root, where
// len(dst) == Size()*len(src); elsewhere it may be nil.
func (c *Communicator) Gather(ctx context.Context, dst, src any, root int, opts ...CallOption) error {
	h := wire.Header{Op: wire.OpGather}
	s, err := asTensor("src", src, false)
	var d tensor
	if err == nil {
		err = c.checkRoot(root)
	}
	if err == nil && c.rank == root {
		if d, err = asTensor("dst", dst, false); err == nil {
			err = sameShape("dst", d, s.dt, s.n*c.world)
		}
	}
	h.DType, h.Count, h.Root = s.dt, uint64(s.n), int32(root)
	return c.do(ctx, &h, err, opts, func(o *stream.Op) {
		o.Src, o.Dst = s.b, d.b
		o.Lay = stream.Layout{DstParts: c.world, SrcParts: 1, StageTotal: s.n * c.world, StageParts: c.world}
	}, false)
}

// AllGather collects every rank's src into dst on every rank: block k of
// dst (len(src) elements) is rank k's src; len(dst) == Size()*len(src).
func (c *Communicator) AllGather(ctx context.Context, dst, src any, opts ...CallOption) error {
	h := wire.Header{Op: wire.OpAllGather, Root: -1}
	s, err := asTensor("src", src, false)
	var d tensor
	if err == nil {
		if d, err = asTensor("dst", dst, false); err == nil {
			err = sameShape("dst", d, s.dt, s.n*c.world)
		}
	}
	h.DType, h.Count = s.dt, uint64(s.n)
	return c.do(ctx, &h, err, opts, func(o *stream.Op) {
		o.Src, o.Dst = s.b, d.b
		o.Lay = stream.Layout{DstParts: c.world, SrcParts: 1}
	}, false)
}

// ReduceScatter reduces src over all ranks with op and leaves block r of
// the result (len(dst) elements) in dst on rank r; len(src) ==
// Size()*len(dst). src is never modified.
func (c *Communicator) ReduceScatter(ctx context.Context, dst, src any, op ReduceOp, opts ...CallOption) error {
	h := wire.Header{Op: wire.OpReduceScatter, Root: -1}
	d, err := asTensor("dst", dst, false)
	var s tensor
	if err == nil {
		if s, err = asTensor("src", src, false); err == nil {
			err = sameShape("src", s, d.dt, d.n*c.world)
		}
	}
	if err == nil {
		err = checkOp(op)
	}
	if err == nil {
		err = checkAvg(op, d.dt)
	}
	if err == nil && engine.Half(d.dt) {
		return c.reduceHalf(ctx, d, s, func(df, sf []float32) error { return c.ReduceScatter(ctx, df, sf, op, opts...) })
	}
	h.DType, h.Count, h.Reduce = d.dt, uint64(d.n), op.wire()
	return c.do(ctx, &h, err, opts, func(o *stream.Op) {
		o.Src, o.Dst = s.b, d.b
		o.Lay = stream.Layout{DstParts: 1, SrcParts: c.world, TmpParts: c.world}
		o.Tmp = c.eng.Scratch(len(s.b))
		o.Kernel = op.kernel()
	}, op == Avg)
}

// Barrier returns once every rank has entered it.
func (c *Communicator) Barrier(ctx context.Context, opts ...CallOption) error {
	h := wire.Header{Op: wire.OpBarrier, DType: wire.Float32, Root: -1}
	return c.do(ctx, &h, nil, opts, func(o *stream.Op) { o.Kernel = reduce.Sum }, false)
}

// SendRecv sends src to the next rank of the ring and receives the previous
// rank's into dst (same length): the ring's link pattern, for benchmarks.
func (c *Communicator) SendRecv(ctx context.Context, dst, src any, opts ...CallOption) error {
	h := wire.Header{Op: wire.OpSendRecv, Root: -1}
	s, err := asTensor("src", src, false)
	var d tensor
	if err == nil {
		if d, err = asTensor("dst", dst, false); err == nil {
			err = sameShape("dst", d, s.dt, s.n)
		}
	}
	h.DType, h.Count = s.dt, uint64(s.n)
	return c.do(ctx, &h, err, opts, func(o *stream.Op) {
		o.Src, o.Dst = s.b, d.b
		o.Lay = stream.Layout{DstParts: 1, SrcParts: 1}
	}, false)
}

func checkOp(op ReduceOp) error {
	if !op.valid() {
		return fmt.Errorf("%w: unknown reduction operator %v", ErrInvalid, op)
	}
	return nil
}

func (c *Communicator) checkRoot(root int) error {
	if root < 0 || root >= c.world {
		return fmt.Errorf("%w: root %d outside [0, %d)", ErrInvalid, root, c.world)
	}
	return nil
}

func sameShape(name string, t tensor, dt wire.DType, n int) error {
	if t.dt != dt {
		return fmt.Errorf("%w: %s is %s, want %s", ErrInvalid, name, t.dt, dt)
	}
	if t.n != n {
		return fmt.Errorf("%w: %s has %d elements, want %d", ErrInvalid, name, t.n, n)
	}
	return nil
}

// do runs one operation: it checks the communicator, numbers the call,
// lets setup fill in the engine's operation and runs it on the engine the
// communicator has; on failure it poisons the communicator and tells the
// peers. avg divides the result by the world size (Avg).
func (c *Communicator) do(ctx context.Context, h *wire.Header, argErr error, opts []CallOption, setup func(*stream.Op), avg bool) error {
	h.Epoch, h.Algo = c.epoch, wire.AlgoRing
	var choice Choice
	var path stream.Path
	if argErr == nil {
		choice, path, argErr = c.choose(h.Op, callAlgo(opts), callOver(opts), int(h.Count)*h.DType.Size(), callSched(opts))
	}
	if argErr == nil && ctx == nil {
		argErr = fmt.Errorf("%w: nil context", ErrInvalid)
	}
	if argErr != nil {
		return &OpError{Rank: c.rank, Call: h.Op.String(), Err: argErr}
	}
	if choice.Schedule.Tree() {
		h.Algo = wire.AlgoTree
	}
	leave, turnErr := c.asyncTurn(ctx, h) // after the asynchronous calls issued before
	if turnErr != nil {
		return turnErr
	}
	defer leave()
	c.opMu.Lock()
	defer c.opMu.Unlock()
	if err := c.number(h); err != nil {
		return err
	}
	c.board.begin(c, ctx, h, choice.Schedule)
	defer func() {
		c.board.end()
		c.mu.Lock()
		c.inFlight = false
		c.doneSeq = h.Seq
		c.mu.Unlock()
		c.answerByes()
	}()
	o := c.eng.Begin(h)
	setup(o)
	var timeout time.Duration
	if _, ok := ctx.Deadline(); !ok && c.timeout > 0 {
		timeout = c.timeout
	}
	var err error
	if c.shm != nil {
		err = c.runOnShm(ctx, o, timeout)
	} else {
		err = c.runOnLinks(ctx, o, choice.Schedule, path, timeout)
	}
	if err != nil {
		return err
	}
	if avg {
		c.divide(o)
	}
	return nil
}

// number gives the call h its sequence number, unless the communicator
// is closed or poisoned.
func (c *Communicator) number(h *wire.Header) error {
	c.mu.Lock()
	cause, closed := c.cause, c.closed
	if cause == nil && !closed {
		c.seq++
		c.inFlight = true
	}
	h.Seq = c.seq
	c.mu.Unlock()
	if closed {
		return &OpError{Rank: c.rank, Call: engine.Describe(h), Err: ErrClosed}
	}
	if cause != nil {
		return &OpError{Rank: c.rank, Call: engine.Describe(h), Err: fmt.Errorf("%w: %w", ErrPoisoned, cause)}
	}
	return nil
}

// peerGone fails operation h if peer p has closed its communicator before
// it: a peer that said bye after operation s still serves s and earlier
// (what it sent is buffered); it is gone for later ones.
func (c *Communicator) peerGone(h *wire.Header, p int) error {
	c.mu.Lock()
	s, bye := c.byes[p]
	gone := p != c.rank && ((bye && s < h.Seq) || (!bye && c.peerClosed[p]))
	c.mu.Unlock()
	if !gone {
		return nil
	}
	err := fmt.Errorf("%w: rank %d closed its communicator", ErrPeerLost, p)
	c.poison(err, wire.CodePeerLost, fmt.Sprintf("rank %d: %s: %v", c.rank, engine.Describe(h), err))
	return &OpError{Rank: c.rank, Call: engine.Describe(h), Err: err}
}

// runOnShm runs o on the shared-memory engine.
func (c *Communicator) runOnShm(ctx context.Context, o *stream.Op, timeout time.Duration) error {
	for p := range c.world {
		if err := c.peerGone(&o.Hdr, p); err != nil {
			return err
		}
	}
	if err := c.shm.Run(ctx, &o.Call, timeout); err != nil {
		return c.failed(o, err)
	}
	return nil
}

// runOnLinks runs o on the frame engine under schedule s, over data path
// path: it gives every lane of the plan its link's worker, making links
// that do not exist yet.
func (c *Communicator) runOnLinks(ctx context.Context, o *stream.Op, s Schedule, path stream.Path, timeout time.Duration) error {
	c.eng.Plan(o, s)
	for _, ln := range o.Lanes() {
		if err := c.peerGone(&o.Hdr, ln.Peer); err != nil {
			return err
		}
		if err := c.linkFor(ctx, ln.Peer); err != nil {
			return c.failed(o, fmt.Errorf("%w: %w", ErrPeerLost, err))
		}
		o.Use(c.links.Worker(path, ln.Peer, ln.Send))
	}
	if err := c.eng.Run(ctx, o, timeout); err != nil {
		return c.failed(o, err)
	}
	return nil
}

// divide finishes Avg: the reduced sum divided by the world size.
func (c *Communicator) divide(o *stream.Op) {
	buf := o.Dst
	if o.Hdr.DType == wire.Float64 {
		reduce.Div64(engine.F64(buf), float64(c.world))
	} else {
		reduce.Div32(engine.F32(buf), float32(c.world))
	}
}

// failed classifies an operation's failure, poisons the communicator and
// returns the caller's error.
func (c *Communicator) failed(o *stream.Op, err error) error {
	call := engine.Describe(&o.Hdr)
	c.mu.Lock()
	cause := c.cause
	c.mu.Unlock()
	if cause != nil { // poisoned while running: a peer's abort, a lost link, Close
		return &OpError{Rank: c.rank, Call: call, Err: cause}
	}
	var code wire.Code
	var mm *engine.Mismatch
	var fe *stream.FrameError
	switch {
	case errors.As(err, &mm):
		code = wire.CodeMismatch
		err = fmt.Errorf("%w: %s", ErrMismatch, mm.Msg)
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled):
		code = wire.CodeTimeout
		if errors.Is(err, context.Canceled) {
			code = wire.CodeCanceled
		}
		st := c.stallReport(o)
		err = fmt.Errorf("%w %s", err, st.Report)
		if code == wire.CodeTimeout && st.Alive {
			// Every peer this rank waited for is alive and waiting itself:
			// the rank that stalled is further away, and its neighbours
			// name it in their aborts. Wait briefly for one.
			if peer := c.awaitPeerReport(o.ReportWait()); peer != nil {
				err = fmt.Errorf("%w; %w", err, peer)
				return &OpError{Rank: c.rank, Call: call, Err: err}
			}
		}
		if len(st.Silent) > 0 {
			// Lead with the culprit: the abort's reason is bounded, and the
			// peers quote it in their own errors.
			reason := fmt.Sprintf("rank %d stalled: rank %d: %s: %v", st.Silent[0], c.rank, call, err)
			c.poison(err, code, reason)
			return &OpError{Rank: c.rank, Call: call, Err: err}
		}
	case errors.As(err, &fe) && (errors.Is(err, wire.ErrMalformed) || errors.Is(err, transport.ErrLaneIntegrity)):
		// A malformed frame, or a lane record whose bytes were altered on
		// the way: the error names the link it arrived on.
		code = wire.CodeProtocol
		err = fmt.Errorf("%w: %w", ErrProtocol, err)
	case errors.As(err, &fe):
		code = wire.CodePeerLost
		err = fmt.Errorf("%w: %w", ErrPeerLost, err)
		// A peer that failed sends its abort and may close at once; the
		// connection's end can overtake the abort that says why. Give the
		// abort a moment, so that the error names the first cause.
		if peer := c.awaitPeerReport(peerReportWait); peer != nil {
			return &OpError{Rank: c.rank, Call: call, Err: fmt.Errorf("%w; %w", err, peer)}
		}
	case errors.Is(err, ErrPeerLost):
		code = wire.CodePeerLost
	default:
		code = wire.CodeInternal
	}
	reason := fmt.Sprintf("rank %d: %s: %v", c.rank, call, err)
	if code == wire.CodeMismatch {
		reason = mm.Msg
	}
	c.poison(err, code, reason)
	return &OpError{Rank: c.rank, Call: call, Err: err}
}

// awaitPeerReport waits up to d for the communicator to be poisoned by a
// peer (its abort arrives) and returns that cause, or nil.
func (c *Communicator) awaitPeerReport(d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-c.life.Done():
	case <-t.C:
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cause
}
