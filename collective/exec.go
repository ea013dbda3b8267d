package collective

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/ringo-ml/ringo/internal/reduce"
	"github.com/ringo-ml/ringo/internal/transport"
	"github.com/ringo-ml/ringo/internal/wire"
	"github.com/ringo-ml/ringo/ring"
)

// stageSlots is how many received chunks a rank may hold for forwarding
// (gather, reduce and reduce-scatter chains) before it stops reading.
const stageSlots = 4

// layout maps a schedule's segment references onto byte ranges of the
// caller's buffers. A buffer of n elements cut into parts segments has
// segment k = ring.Split(n, parts, k).
type layout struct {
	dstParts, srcParts     int
	stageTotal, stageParts int // the element layout that Stage segments follow
}

// opState is the one operation in flight. The communicator owns it and
// reuses it from call to call, so the data path allocates nothing per chunk.
type opState struct {
	hdr    wire.Header // the call's fingerprint (Step, Chunk, PayloadLen vary per frame)
	sched  *ring.Schedule
	lay    layout
	dst    []byte
	src    []byte
	tmp    []byte // laid out like src
	es     int    // element size in bytes
	kernel reduce.Op
	cb     int // chunk bytes, a multiple of es

	next, prev *transport.Link

	recvBase  []int // recvBase[i]: chunks received before Recvs[i]; recvBase[len] = total
	recvDone  atomic.Int64
	recvNote  chan struct{} // wakes the sender when recvDone grows or the op fails
	stageIn   int64         // chunks staged (receiver only)
	stageOut  atomic.Int64  // staged chunks sent on
	stageNote chan struct{} // wakes the receiver when stageOut grows or the op fails

	// Progress, for hang reports.
	recvStep, recvChunk atomic.Int64
	sendStep, sendChunk atomic.Int64

	mu     sync.Mutex
	failed atomic.Bool
	err    error // the first failure
	done   bool  // both halves finished; a late ctx expiry no longer counts
}

func newOpState() *opState {
	return &opState{recvNote: make(chan struct{}, 1), stageNote: make(chan struct{}, 1)}
}

func wake(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// fail records the first failure and wakes both halves; the caller
// interrupts the links.
func (o *opState) fail(err error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.failLocked(err)
}

func (o *opState) failLocked(err error) {
	if o.err == nil {
		o.err = err
	}
	o.failed.Store(true)
	wake(o.recvNote)
	wake(o.stageNote)
}

func (o *opState) firstErr() error {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.err
}

// errStopped ends a half whose other half failed first.
var errStopped = errors.New("stopped")

// waitRecv waits until n chunks have been received.
func (o *opState) waitRecv(n int) error {
	for o.recvDone.Load() < int64(n) {
		if o.failed.Load() {
			return errStopped
		}
		<-o.recvNote
	}
	return nil
}

// waitStageSlot waits for a free staging slot.
func (o *opState) waitStageSlot() error {
	for o.stageIn-o.stageOut.Load() >= stageSlots {
		if o.failed.Load() {
			return errStopped
		}
		<-o.stageNote
	}
	return nil
}

// seg returns the bytes of a Dst or Src segment.
func (o *opState) seg(r ring.Ref) []byte {
	var buf []byte
	var parts int
	switch r.Buf {
	case ring.Dst:
		buf, parts = o.dst, o.lay.dstParts
	case ring.Src:
		buf, parts = o.src, o.lay.srcParts
	case ring.Tmp:
		buf, parts = o.tmp, o.lay.srcParts
	default:
		panic(fmt.Sprintf("collective: no bytes for %v", r))
	}
	off, n := ring.Split(len(buf)/o.es, parts, r.Seg)
	return buf[off*o.es : (off+n)*o.es]
}

// segLen is the byte length of any segment, Stage included.
func (o *opState) segLen(r ring.Ref) int {
	if r.Buf == ring.Stage {
		_, n := ring.Split(o.lay.stageTotal, o.lay.stageParts, r.Seg)
		return n * o.es
	}
	return len(o.seg(r))
}

// chunks is how many frames carry n bytes: at least one, so that every
// transfer, even an empty one, is seen (and checked) by the receiver.
func (o *opState) chunks(n int) int {
	if n == 0 {
		return 1
	}
	return (n + o.cb - 1) / o.cb
}

func (o *opState) chunk(n, c int) (lo, hi int) {
	lo = c * o.cb
	hi = min(lo+o.cb, n)
	return lo, hi
}

// prepare resets the per-operation state for sched.
func (o *opState) prepare() {
	o.recvBase = o.recvBase[:0]
	total := 0
	for _, rv := range o.sched.Recvs {
		o.recvBase = append(o.recvBase, total)
		if rv.Kind == ring.RecvAck {
			total++
		} else {
			total += o.chunks(o.segLen(rv.To))
		}
	}
	o.recvBase = append(o.recvBase, total)
	o.recvDone.Store(0)
	o.stageIn = 0
	o.stageOut.Store(0)
	o.recvStep.Store(-1)
	o.recvChunk.Store(0)
	o.sendStep.Store(-1)
	o.sendChunk.Store(0)
	o.failed.Store(false)
	o.err = nil
	o.done = false
	select {
	case <-o.recvNote:
	default:
	}
	select {
	case <-o.stageNote:
	default:
	}
}

// frameError is a failure on one link, with where in the schedule it struck.
type frameError struct {
	peer        int
	send        bool
	step, chunk int
	err         error
}

func (e *frameError) Error() string {
	dir := "receiving step %d chunk %d from rank %d"
	if e.send {
		dir = "sending step %d chunk %d to rank %d"
	}
	return fmt.Sprintf(dir+": %v", e.step, e.chunk, e.peer, e.err)
}

func (e *frameError) Unwrap() error { return e.err }

// mismatchError is a frame whose fingerprint differs from this rank's call.
type mismatchError struct{ msg string }

func (e *mismatchError) Error() string { return e.msg }

// runSends executes the schedule's sends in order on the link to Next.
func (c *Communicator) runSends(o *opState) error {
	w := o.next.Data
	h := o.hdr
	for i := range o.sched.Sends {
		s := &o.sched.Sends[i]
		h.Step = uint32(i)
		o.sendStep.Store(int64(i))
		if s.From.Buf == ring.None {
			o.sendChunk.Store(0)
			if s.After >= 0 {
				if err := o.waitRecv(o.recvBase[s.After+1]); err != nil {
					return err
				}
			}
			h.Chunk, h.PayloadLen = 0, 0
			if _, err := w.Write(c.enc.EncodeData(&h)); err != nil {
				return &frameError{peer: o.next.Peer, send: true, step: i, err: err}
			}
			continue
		}
		var seg []byte
		n := o.segLen(s.From)
		if s.From.Buf != ring.Stage { // Dst, Src or Tmp
			seg = o.seg(s.From)
		}
		for ch := range o.chunks(n) {
			o.sendChunk.Store(int64(ch))
			if s.After >= 0 {
				if err := o.waitRecv(o.recvBase[s.After] + ch + 1); err != nil {
					return err
				}
			}
			lo, hi := o.chunk(n, ch)
			var p []byte
			if s.From.Buf == ring.Stage {
				p = c.stage[o.stageOut.Load()%stageSlots][:hi-lo]
			} else {
				p = seg[lo:hi]
			}
			h.Chunk, h.PayloadLen = uint32(ch), uint32(hi-lo)
			if _, err := w.Write(c.enc.EncodeData(&h)); err != nil {
				return &frameError{peer: o.next.Peer, send: true, step: i, chunk: ch, err: err}
			}
			if len(p) > 0 {
				if _, err := w.Write(p); err != nil {
					return &frameError{peer: o.next.Peer, send: true, step: i, chunk: ch, err: err}
				}
			}
			if s.From.Buf == ring.Stage {
				o.stageOut.Add(1)
				wake(o.stageNote)
			}
		}
	}
	return nil
}

// runRecvs executes the schedule's receives in order on the link from Prev.
func (c *Communicator) runRecvs(o *opState) error {
	r := o.prev.Data
	for i := range o.sched.Recvs {
		rv := &o.sched.Recvs[i]
		o.recvStep.Store(int64(i))
		if rv.Kind == ring.RecvAck {
			o.recvChunk.Store(0)
			if err := c.readHeader(o, i, 0, 0); err != nil {
				return err
			}
			o.recvDone.Add(1)
			wake(o.recvNote)
			continue
		}
		n := o.segLen(rv.To)
		var to, with []byte
		if rv.To.Buf == ring.Dst || rv.To.Buf == ring.Tmp {
			to = o.seg(rv.To)
		}
		if rv.With.Buf == ring.Src {
			with = o.seg(rv.With)
		}
		for ch := range o.chunks(n) {
			o.recvChunk.Store(int64(ch))
			lo, hi := o.chunk(n, ch)
			if err := c.readHeader(o, i, ch, hi-lo); err != nil {
				return err
			}
			var p []byte // where the payload lands
			switch rv.Kind {
			case ring.RecvCopy, ring.RecvCopyReduce:
				p = to[lo:hi]
			case ring.RecvReduce:
				p = c.scratch[:hi-lo]
			case ring.RecvStage, ring.RecvStageReduce:
				if err := o.waitStageSlot(); err != nil {
					return err
				}
				p = c.stage[o.stageIn%stageSlots][:hi-lo]
			}
			if len(p) > 0 {
				if _, err := readFull(r, p); err != nil {
					return &frameError{peer: o.prev.Peer, step: i, chunk: ch, err: err}
				}
			}
			switch rv.Kind {
			case ring.RecvReduce:
				reduceBytes(o.hdr.DType, o.kernel, to[lo:hi], p)
			case ring.RecvCopyReduce, ring.RecvStageReduce:
				reduceBytes(o.hdr.DType, o.kernel, p, with[lo:hi])
			}
			if rv.Kind == ring.RecvStage || rv.Kind == ring.RecvStageReduce {
				o.stageIn++
			}
			o.recvDone.Add(1)
			wake(o.recvNote)
		}
	}
	return nil
}

// readHeader reads the next frame header from Prev and checks it against
// this rank's call and its place in the schedule.
func (c *Communicator) readHeader(o *opState, step, chunk, plen int) error {
	f := &c.frame
	if err := wire.ReadFrame(o.prev.Data, c.rbuf, c.lim, f); err != nil {
		return &frameError{peer: o.prev.Peer, step: step, chunk: chunk, err: err}
	}
	if f.Kind != wire.KindData {
		return &frameError{peer: o.prev.Peer, step: step, chunk: chunk,
			err: fmt.Errorf("%w: a %s frame on the data stream", ErrProtocol, f.Kind)}
	}
	got, want := &f.Data, &o.hdr
	if got.Epoch != want.Epoch || got.Seq != want.Seq || got.Op != want.Op || got.DType != want.DType ||
		got.Count != want.Count || got.Reduce != want.Reduce || got.Root != want.Root || got.Algo != want.Algo {
		return &mismatchError{fmt.Sprintf("rank %d called %s, rank %d called %s",
			c.rank, describe(want), o.prev.Peer, describe(got))}
	}
	if got.Step != uint32(step) || got.Chunk != uint32(chunk) || got.PayloadLen != uint32(plen) {
		return &mismatchError{fmt.Sprintf("in %s rank %d expected step %d chunk %d of %d bytes from rank %d, which sent step %d chunk %d of %d bytes (do the ranks use the same chunk size?)",
			describe(want), c.rank, step, chunk, plen, o.prev.Peer, got.Step, got.Chunk, got.PayloadLen)}
	}
	return nil
}

// readFull is io.ReadFull without the interface conversion of its buffer.
func readFull(r transport.Stream, p []byte) (int, error) {
	n := 0
	for n < len(p) {
		k, err := r.Read(p[n:])
		n += k
		if err != nil {
			if n == len(p) {
				return n, nil
			}
			return n, err
		}
	}
	return n, nil
}

// runLocal performs the schedule's local copies.
func (o *opState) runLocal() {
	for _, l := range o.sched.Local {
		copy(o.seg(l.To), o.seg(l.From))
	}
}

// asF32 and asF64 view byte ranges of float buffers as floats again. The
// bytes always come from []float32/[]float64 slices or from the
// communicator's 8-byte aligned scratch, so alignment holds.
func asF32(b []byte) []float32 {
	if len(b) == 0 {
		return nil
	}
	return unsafe.Slice((*float32)(unsafe.Pointer(unsafe.SliceData(b))), len(b)/4)
}

func asF64(b []byte) []float64 {
	if len(b) == 0 {
		return nil
	}
	return unsafe.Slice((*float64)(unsafe.Pointer(unsafe.SliceData(b))), len(b)/8)
}

func bytesOf[T float32 | float64](s []T) []byte {
	if len(s) == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(s))), len(s)*int(unsafe.Sizeof(s[0])))
}

// alignedBytes allocates n bytes aligned for float64.
func alignedBytes(n int) []byte {
	return bytesOf(make([]float64, (n+7)/8))[:n]
}

// reduceBytes sets dst = dst ⊕ src elementwise.
func reduceBytes(dt wire.DType, op reduce.Op, dst, src []byte) {
	if dt == wire.Float64 {
		reduce.Float64(op, asF64(dst), asF64(src))
	} else {
		reduce.Float32(op, asF32(dst), asF32(src))
	}
}

// watchJob asks the watcher to bound one operation.
type watchJob struct {
	ctx     context.Context
	o       *opState
	timeout time.Duration // Config.Timeout when ctx has no deadline; else 0
}

// watch is the communicator's watcher goroutine: for each operation it waits
// for the operation's end, its context, or its default timeout, and on
// expiry fails the operation and interrupts its links. A long-lived
// goroutine and one reused timer keep the data path free of allocations
// (context.AfterFunc and context.WithTimeout allocate on every call).
func (c *Communicator) watch() {
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for j := range c.watchJobs {
		var expire <-chan time.Time
		if j.timeout > 0 {
			timer.Reset(j.timeout)
			expire = timer.C
		}
		select {
		case <-j.ctx.Done():
			c.expire(j.o, context.Cause(j.ctx))
			<-c.opEnd
		case <-expire:
			c.expire(j.o, fmt.Errorf("%w: the operation ran past Config.Timeout (%v)", context.DeadlineExceeded, j.timeout))
			<-c.opEnd
		case <-c.opEnd:
		}
		timer.Stop()
		c.watchDone <- struct{}{}
	}
}

// expire fails o, unless both its halves have already finished.
func (c *Communicator) expire(o *opState, err error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if !o.done {
		o.failLocked(err)
		o.next.Interrupt()
		o.prev.Interrupt()
	}
}

// run executes o: the local copies, then the sends on the worker goroutine
// and the receives on this one. It returns the first failure.
func (c *Communicator) run(ctx context.Context, o *opState, timeout time.Duration) error {
	o.prepare()
	o.runLocal()
	if len(o.sched.Sends) == 0 && len(o.sched.Recvs) == 0 {
		return nil
	}
	c.watchJobs <- watchJob{ctx: ctx, o: o, timeout: timeout}
	c.jobs <- o
	rerr := c.runRecvs(o)
	if rerr != nil {
		c.failOp(o, rerr)
	}
	serr := <-c.sendErr
	if serr != nil {
		c.failOp(o, serr)
	}
	o.mu.Lock()
	o.done = true
	interrupted := o.failed.Load()
	o.mu.Unlock()
	c.opEnd <- struct{}{}
	<-c.watchDone
	if rerr == nil && serr == nil {
		if interrupted { // the context expired just as the last frame moved
			o.next.Resume()
			o.prev.Resume()
		}
		return nil
	}
	return o.firstErr()
}

func (c *Communicator) failOp(o *opState, err error) {
	if errors.Is(err, errStopped) {
		return
	}
	o.fail(err)
	o.next.Interrupt()
	o.prev.Interrupt()
}
