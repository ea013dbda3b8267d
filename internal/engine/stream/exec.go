// Package stream is the frame engine: it runs a call's schedule (package
// ring or tree) over the links of a transport mesh as frames, a header
// (package wire) and a chunk of the tensor each, on worker goroutines
// that live as long as their link, one per direction.
//
// A call's schedule becomes a plan: its transfers grouped in lanes, one
// per direction of each link it uses, each lane run in order by that
// link's worker. Transfers wait for one another through progress counters
// (a recv that reduces into a segment waits for the recv that filled it;
// a send that forwards a segment waits for its chunks), so a chunk moves
// as soon as what it depends on has, and the lanes of one rank pipeline.
// Every frame carries the call's fingerprint, which the receiver checks
// against its own call, and every operation opens with a frame to the
// ring successor so that mismatched calls are caught at once (see
// plan.finish).
//
// Nothing is allocated per operation: the Op, its counters, the staging
// slots and the workers' buffers are reused; a watcher goroutine bounds
// each operation by its context and timeout.
package stream

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ringo-ml/ringo/internal/engine"
	"github.com/ringo-ml/ringo/internal/transport"
	"github.com/ringo-ml/ringo/internal/wire"
	"github.com/ringo-ml/ringo/ring"
)

// stageSlots is how many received chunks a rank may hold for forwarding
// (the gather and reduce chains of the ring) before it stops reading.
const stageSlots = 4

// Engine runs one rank's operations, one at a time.
type Engine struct {
	rank, world int
	cb          int // chunk bytes
	lim         wire.Limits
	onRun       func(*Op)
	ping        func(ctx context.Context, peer int) error
	life        context.Context
	stage       [stageSlots][]byte
	tmp         []byte // partial results (ReduceScatter, tree reductions), grown on demand
	plans       map[planKey]*plan
	op          Op
	laneDone    chan error

	watchJobs chan watchJob
	opEnd     chan struct{}
	watchDone chan struct{}

	mu      sync.Mutex // guards workers
	workers []*Worker
	wg      sync.WaitGroup
}

// Config says what an engine needs of its communicator.
type Config struct {
	Rank, World int
	ChunkBytes  int // the pipelining unit, a multiple of 8
	// OnRun, when not nil, is called with each operation once its
	// progress counters are set: from then until Run returns, Progress
	// may be read from any goroutine.
	OnRun func(*Op)
	// Ping, when not nil, asks a peer whether it is alive, for the
	// liveness probe near an operation's deadline; Life bounds the pings
	// (the communicator's lifetime).
	Ping func(ctx context.Context, peer int) error
	Life context.Context
}

// New makes an engine. Stop ends it.
func New(cfg Config) *Engine {
	rank, world, chunkBytes := cfg.Rank, cfg.World, cfg.ChunkBytes
	e := &Engine{rank: rank, world: world, cb: chunkBytes, onRun: cfg.OnRun, ping: cfg.Ping, life: cfg.Life,
		lim:       wire.Limits{MaxPayload: uint32(chunkBytes), MaxWorld: int32(world)},
		plans:     make(map[planKey]*plan),
		laneDone:  make(chan error, 2*world),
		watchJobs: make(chan watchJob),
		opEnd:     make(chan struct{}),
		watchDone: make(chan struct{}),
	}
	if e.onRun == nil {
		e.onRun = func(*Op) {}
	}
	if e.life == nil {
		e.life = context.Background()
	}
	for i := range e.stage {
		e.stage[i] = engine.AlignedBytes(chunkBytes)
	}
	e.op.laneDone = e.laneDone
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		e.watch()
	}()
	return e
}

// NewWorker starts a worker for one direction of link l's stream s (its
// QUIC data stream, or its lanes). It runs until Stop.
func (e *Engine) NewWorker(l *transport.Link, s transport.Stream, send bool) *Worker {
	w := &Worker{link: l, stream: s, send: send, jobs: make(chan *Op), note: make(chan struct{}, 1)}
	if send {
		w.enc = wire.NewEncoder()
		w.wbuf = make([]byte, 0, wire.PrefixLen+wire.MaxHeader+linkBufBytes)
	} else {
		w.in = newLinkReader(s)
		w.rbuf = make([]byte, wire.PrefixLen+wire.MaxHeader)
		w.scratch = engine.AlignedBytes(e.cb)
	}
	e.mu.Lock()
	e.workers = append(e.workers, w)
	e.mu.Unlock()
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		w.run(e)
	}()
	return w
}

// Reader is a receive worker's buffered reader of its stream (nil for a
// send worker): bytes it has read ahead belong to whoever reads the
// stream next.
func (w *Worker) Reader() io.Reader {
	if w.in == nil {
		return nil
	}
	return w.in
}

// Stop ends the workers and the watcher and waits for them. No operation
// may be running.
func (e *Engine) Stop() {
	e.mu.Lock()
	for _, w := range e.workers {
		close(w.jobs)
	}
	e.workers = nil
	e.mu.Unlock()
	close(e.watchJobs)
	e.wg.Wait()
}

// Begin resets the engine's operation for call h and returns it; the
// caller sets its buffers, kernel and Layout, then Plan.
func (e *Engine) Begin(h *wire.Header) *Op {
	o := &e.op
	*o = Op{workers: o.workers[:0], recvChunks: o.recvChunks, sendChunks: o.sendChunks,
		recvDone: o.recvDone, sendDone: o.sendDone, laneDone: o.laneDone, dog: watchdog{probes: o.dog.probes}}
	o.Hdr = *h
	o.ES = h.DType.Size()
	o.cb = e.cb / o.ES * o.ES
	return o
}

// Scratch returns the engine's scratch buffer, grown to n bytes, for an
// operation's Tmp.
func (e *Engine) Scratch(n int) []byte {
	if cap(e.tmp) < n {
		e.tmp = engine.AlignedBytes(n)
	}
	return e.tmp[:n]
}

// Plan gives o its plan under schedule s (Has(op, s) must hold), with
// the layout a tree schedule needs.
func (e *Engine) Plan(o *Op, s engine.Schedule) {
	o.plan = e.plan(o.Hdr.Op, s, int(o.Hdr.Root))
	if !s.Tree() {
		return
	}
	switch o.Hdr.Op {
	case wire.OpBarrier: // recursive doubling on an empty buffer
		o.Lay.DstParts = 1
	case wire.OpAllReduce:
		o.Lay.DstParts = 1
		if s == engine.DoubleBinaryTree {
			o.Lay.DstParts = 2
		}
	case wire.OpReduce:
		o.Tmp = e.Scratch(len(o.Src))
		o.Lay.TmpParts = 1
	case wire.OpGather:
		o.Tmp = e.Scratch(e.world * len(o.Src))
		o.Lay.TmpParts = e.world
	}
}

// Lanes are o's lanes, in plan order: the caller gives each a worker of
// its link and direction with Use, in this order.
func (o *Op) Lanes() []Lane { return o.plan.lanes }

// Use gives o's next lane its worker.
func (o *Op) Use(w *Worker) { o.workers = append(o.workers, w) }

// worker runs the lanes of one direction of one link, one operation at a
// time. Workers live as long as their communicator, so operations start no
// goroutines.
type Worker struct {
	link   *transport.Link
	stream transport.Stream // the link's data stream or its lanes
	send   bool
	jobs   chan *Op
	lane   *Lane // the lane of the current job
	note   chan struct{}

	enc     *wire.Encoder // sender
	wbuf    []byte        // sender: a header and a small payload, written at once
	in      *linkReader   // receiver: the data stream, buffered
	rbuf    []byte        // receiver
	frame   wire.Frame
	scratch []byte

	item, chunk atomic.Int64 // progress, for hang reports: index in lane.items, chunk
}

func (w *Worker) run(e *Engine) {
	for o := range w.jobs {
		var err error
		if w.send {
			err = e.runSends(o, w)
		} else {
			err = e.runRecvs(o, w)
		}
		if err != nil {
			e.failOp(o, err)
		}
		o.laneDone <- err
	}
}

// Op is the one operation in flight. The engine owns it and reuses it
// from call to call, so the data path allocates nothing.
type Op struct {
	engine.Call        // Hdr is the call's fingerprint (Step, Chunk, PayloadLen vary per frame)
	Lay         Layout // where the schedule's segments lie in Dst, Src and Tmp
	Tmp         []byte // partial results, laid out like Src (Scratch)
	plan        *plan
	cb          int // chunk bytes, a multiple of ES

	workers    []*Worker // one per lane, in plan.lanes order
	recvChunks []int
	sendChunks []int
	recvDone   []atomic.Int64
	sendDone   []atomic.Int64
	stageIn    int64        // chunks staged (the one receiver only)
	stageOut   atomic.Int64 // staged chunks sent on
	laneDone   chan error

	prepared bool // prepare ran: the progress counters describe this op

	mu     sync.Mutex
	failed atomic.Bool
	err    error    // the first failure
	done   bool     // every lane finished; a late expiry no longer counts
	dog    watchdog // the liveness probe near the deadline
}

func wake(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// wakeAll wakes every worker of the operation to re-check what it waits for.
func (o *Op) wakeAll() {
	for _, w := range o.workers {
		wake(w.note)
	}
}

// interrupt makes every blocked transfer of the operation fail at once.
func (o *Op) interrupt() {
	for _, w := range o.workers {
		w.link.Interrupt()
	}
}

// fail records the first failure and wakes every worker; the caller
// interrupts the links.
func (o *Op) fail(err error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.failLocked(err)
}

func (o *Op) failLocked(err error) {
	if o.err == nil {
		o.err = err
	}
	o.failed.Store(true)
	o.wakeAll()
}

// errStopped ends a lane whose operation failed elsewhere.
var errStopped = errors.New("stopped")

// waitCount waits until a progress counter reaches n; every change of a
// counter wakes the operation's workers.
func (o *Op) waitCount(w *Worker, done *atomic.Int64, n int) error {
	for done.Load() < int64(n) {
		if o.failed.Load() {
			return errStopped
		}
		<-w.note
	}
	return nil
}

// waitRecv waits until recv i has completed n chunks.
func (o *Op) waitRecv(w *Worker, i, n int) error { return o.waitCount(w, &o.recvDone[i], n) }

// waitSend waits until send j has sent n chunks.
func (o *Op) waitSend(w *Worker, j, n int) error { return o.waitCount(w, &o.sendDone[j], n) }

// waitOrder waits until chunk ch of rv may be written: the recv and the
// send it follows have done that chunk.
func (o *Op) waitOrder(w *Worker, rv *xrecv, ch int) error {
	if rv.after >= 0 {
		if err := o.waitRecv(w, rv.after, ch+1); err != nil {
			return err
		}
	}
	if rv.afterSend >= 0 {
		if err := o.waitSend(w, rv.afterSend, ch+1); err != nil {
			return err
		}
	}
	return nil
}

// waitStageSlot waits for a free staging slot.
func (o *Op) waitStageSlot(w *Worker) error {
	for o.stageIn-o.stageOut.Load() >= stageSlots {
		if o.failed.Load() {
			return errStopped
		}
		<-w.note
	}
	return nil
}

// seg returns the bytes of a Dst, Src or Tmp segment.
func (o *Op) seg(r ring.Ref) []byte {
	var buf []byte
	var parts int
	switch r.Buf {
	case ring.Dst:
		buf, parts = o.Dst, o.Lay.DstParts
	case ring.Src:
		buf, parts = o.Src, o.Lay.SrcParts
	case ring.Tmp:
		buf, parts = o.Tmp, o.Lay.TmpParts
	default:
		panic(fmt.Sprintf("collective: no bytes for %v", r))
	}
	off, n := ring.Split(len(buf)/o.ES, parts, r.Seg)
	return buf[off*o.ES : (off+n)*o.ES]
}

// segLen is the byte length of any segment, Stage included.
func (o *Op) segLen(r ring.Ref) int {
	if r.Buf == ring.Stage {
		_, n := ring.Split(o.Lay.StageTotal, o.Lay.StageParts, r.Seg)
		return n * o.ES
	}
	return len(o.seg(r))
}

// chunks is how many frames carry n bytes: at least one, so that every
// transfer, even an empty one, is seen (and checked) by the receiver.
func (o *Op) chunks(n int) int {
	if n == 0 {
		return 1
	}
	return (n + o.cb - 1) / o.cb
}

func (o *Op) chunk(n, c int) (lo, hi int) {
	lo = c * o.cb
	hi = min(lo+o.cb, n)
	return lo, hi
}

// prepare resets the per-operation state for o.plan.
func (o *Op) prepare() {
	p := o.plan
	o.recvChunks = o.recvChunks[:0]
	for _, r := range p.recvs {
		n := 1
		if r.kind != ring.RecvAck {
			n = o.chunks(o.segLen(r.to))
		}
		o.recvChunks = append(o.recvChunks, n)
	}
	o.sendChunks = o.sendChunks[:0]
	for _, s := range p.sends {
		n := 1
		if s.from.Buf != ring.None {
			n = o.chunks(o.segLen(s.from))
		}
		o.sendChunks = append(o.sendChunks, n)
	}
	if cap(o.recvDone) < len(p.recvs) {
		o.recvDone = make([]atomic.Int64, len(p.recvs))
	}
	o.recvDone = o.recvDone[:len(p.recvs)]
	for i := range o.recvDone {
		o.recvDone[i].Store(0)
	}
	if cap(o.sendDone) < len(p.sends) {
		o.sendDone = make([]atomic.Int64, len(p.sends))
	}
	o.sendDone = o.sendDone[:len(p.sends)]
	for i := range o.sendDone {
		o.sendDone[i].Store(0)
	}
	o.stageIn = 0
	o.stageOut.Store(0)
	o.prepared = true
	o.failed.Store(false)
	o.err = nil
	o.done = false
	for _, w := range o.workers {
		w.item.Store(0)
		w.chunk.Store(0)
		select {
		case <-w.note:
		default:
		}
	}
}

// FrameError is a failure on one link, with where in the schedule it struck.
type FrameError struct {
	peer        int
	send        bool
	step, chunk int
	err         error
}

func (e *FrameError) Error() string {
	dir := "receiving step %d chunk %d from rank %d"
	if e.send {
		dir = "sending step %d chunk %d to rank %d"
	}
	return fmt.Sprintf(dir+": %v", e.step, e.chunk, e.peer, e.err)
}

func (e *FrameError) Unwrap() error { return e.err }

// runSends executes a send lane in order.
func (e *Engine) runSends(o *Op, w *Worker) error {
	out := w.stream
	h := o.Hdr
	for k, j := range w.lane.items {
		s := &o.plan.sends[j]
		w.item.Store(int64(k))
		w.chunk.Store(0)
		h.Step = uint32(s.step)
		if s.from.Buf == ring.None { // an ack
			if s.after >= 0 {
				if err := o.waitRecv(w, s.after, o.recvChunks[s.after]); err != nil {
					return err
				}
			}
			h.Chunk, h.PayloadLen = 0, 0
			if _, err := out.Write(w.enc.EncodeData(&h)); err != nil {
				return &FrameError{peer: s.peer, send: true, step: s.step, err: err}
			}
			o.sendDone[j].Store(1)
			o.wakeAll()
			continue
		}
		var seg []byte
		n := o.segLen(s.from)
		if s.from.Buf != ring.Stage { // Dst, Src or Tmp
			seg = o.seg(s.from)
		}
		for ch := range o.sendChunks[j] {
			w.chunk.Store(int64(ch))
			if s.after >= 0 {
				if err := o.waitRecv(w, s.after, ch+1); err != nil {
					return err
				}
			}
			lo, hi := o.chunk(n, ch)
			var p []byte
			if s.from.Buf == ring.Stage {
				p = e.stage[o.stageOut.Load()%stageSlots][:hi-lo]
			} else {
				p = seg[lo:hi]
			}
			h.Chunk, h.PayloadLen = uint32(ch), uint32(hi-lo)
			if err := w.writeFrame(w.enc.EncodeData(&h), p); err != nil {
				return &FrameError{peer: s.peer, send: true, step: s.step, chunk: ch, err: err}
			}
			if s.from.Buf == ring.Stage {
				o.stageOut.Add(1)
			}
			o.sendDone[j].Add(1)
			o.wakeAll()
		}
	}
	return nil
}

// runRecvs executes a receive lane in order.
func (e *Engine) runRecvs(o *Op, w *Worker) error {
	in := w.in
	for k, i := range w.lane.items {
		rv := &o.plan.recvs[i]
		w.item.Store(int64(k))
		w.chunk.Store(0)
		if rv.kind == ring.RecvAck {
			if err := e.readHeader(o, w, rv, 0, 0); err != nil {
				return err
			}
			if rv.after >= 0 {
				if err := o.waitRecv(w, rv.after, o.recvChunks[rv.after]); err != nil {
					return err
				}
			}
			o.recvDone[i].Store(1)
			o.wakeAll()
			continue
		}
		n := o.segLen(rv.to)
		var to, with []byte
		if rv.to.Buf != ring.Stage {
			to = o.seg(rv.to)
		}
		if rv.with.Buf == ring.Src {
			with = o.seg(rv.with)
		}
		for ch := range o.recvChunks[i] {
			w.chunk.Store(int64(ch))
			lo, hi := o.chunk(n, ch)
			if err := e.readHeader(o, w, rv, ch, hi-lo); err != nil {
				return err
			}
			// A reduction lands in scratch before it waits for what it must
			// follow: both partners of an exchange may be sending, and
			// neither link need buffer a whole chunk. A copy into place
			// waits first.
			if rv.kind != ring.RecvReduce {
				if err := o.waitOrder(w, rv, ch); err != nil {
					return err
				}
			}
			var p []byte // where the payload lands
			switch rv.kind {
			case ring.RecvCopy, ring.RecvCopyReduce:
				p = to[lo:hi]
			case ring.RecvReduce:
				p = w.scratch[:hi-lo]
			case ring.RecvStage, ring.RecvStageReduce:
				if err := o.waitStageSlot(w); err != nil {
					return err
				}
				p = e.stage[o.stageIn%stageSlots][:hi-lo]
			}
			if len(p) > 0 {
				if _, err := readFull(in, p); err != nil {
					return &FrameError{peer: rv.peer, step: rv.step, chunk: ch, err: err}
				}
			}
			if rv.kind == ring.RecvReduce {
				if err := o.waitOrder(w, rv, ch); err != nil {
					return err
				}
			}
			switch rv.kind {
			case ring.RecvReduce:
				engine.ReduceInto(o.Hdr.DType, o.Kernel, to[lo:hi], p)
			case ring.RecvCopyReduce, ring.RecvStageReduce:
				engine.ReduceInto(o.Hdr.DType, o.Kernel, p, with[lo:hi])
			}
			if rv.kind == ring.RecvStage || rv.kind == ring.RecvStageReduce {
				o.stageIn++
			}
			o.recvDone[i].Add(1)
			o.wakeAll()
		}
	}
	return nil
}

// readHeader reads the next frame header of a lane and checks it against
// this rank's call and its place in the schedule.
func (e *Engine) readHeader(o *Op, w *Worker, rv *xrecv, chunk, plen int) error {
	f := &w.frame
	if err := wire.ReadFrame(w.in, w.rbuf, e.lim, f); err != nil {
		return &FrameError{peer: rv.peer, step: rv.step, chunk: chunk, err: err}
	}
	if f.Kind != wire.KindData {
		return &FrameError{peer: rv.peer, step: rv.step, chunk: chunk,
			err: fmt.Errorf("%w: a %s frame on the data stream", engine.ErrProtocol, f.Kind)}
	}
	got, want := &f.Data, &o.Hdr
	if got.Epoch != want.Epoch || got.Seq != want.Seq || got.Op != want.Op || got.DType != want.DType ||
		got.Count != want.Count || got.Reduce != want.Reduce || got.Root != want.Root {
		return &engine.Mismatch{Msg: fmt.Sprintf("rank %d called %s, rank %d called %s",
			e.rank, engine.Describe(want), rv.peer, engine.Describe(got))}
	}
	if got.Algo != want.Algo {
		return &engine.Mismatch{Msg: fmt.Sprintf("rank %d runs %s with the %s algorithm, rank %d with %s (do all ranks use the same Algorithm setting?)",
			e.rank, engine.Describe(want), want.Algo, rv.peer, got.Algo)}
	}
	if got.Step != uint32(rv.step) || got.Chunk != uint32(chunk) || got.PayloadLen != uint32(plen) {
		return &engine.Mismatch{Msg: fmt.Sprintf("in %s rank %d expected step %d chunk %d of %d bytes from rank %d, which sent step %d chunk %d of %d bytes (do the ranks use the same chunk size?)",
			engine.Describe(want), e.rank, rv.step, chunk, plen, rv.peer, got.Step, got.Chunk, got.PayloadLen)}
	}
	return nil
}

// readFull is io.ReadFull without the interface conversion of its buffer.
func readFull(r *linkReader, p []byte) (int, error) {
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

// writeFrame writes a frame header and its payload: at once when the
// payload is small, else one after the other (the payload from where it
// lies).
func (w *Worker) writeFrame(hdr, p []byte) error {
	out := w.stream
	if len(p) <= linkBufBytes {
		w.wbuf = append(append(w.wbuf[:0], hdr...), p...)
		_, err := out.Write(w.wbuf)
		return err
	}
	if _, err := out.Write(hdr); err != nil {
		return err
	}
	_, err := out.Write(p)
	return err
}

// runLocal performs the schedule's local copies.
func (o *Op) runLocal() {
	for _, l := range o.plan.local {
		copy(o.seg(l.To), o.seg(l.From))
	}
}

// watchJob asks the watcher to bound one operation.
type watchJob struct {
	ctx     context.Context
	o       *Op
	timeout time.Duration // Config.Timeout when ctx has no deadline; else 0
}

// watch is the communicator's watcher goroutine: for each operation it waits
// for the operation's end, its context, or its default timeout, and on
// expiry fails the operation and interrupts its links. A long-lived
// goroutine and one reused timer keep the data path free of allocations
// (context.AfterFunc and context.WithTimeout allocate on every call).
func (e *Engine) watch() {
	expiry, probe := time.NewTimer(time.Hour), time.NewTimer(time.Hour)
	expiry.Stop()
	probe.Stop()
	for j := range e.watchJobs {
		var expire, probeAt <-chan time.Time
		if j.timeout > 0 {
			expiry.Reset(j.timeout)
			expire = expiry.C
		}
		if after := j.o.arm(j.ctx, j.timeout); after > 0 {
			probe.Reset(after)
			probeAt = probe.C
		}
		e.await(j, expire, probeAt)
		expiry.Stop()
		probe.Stop()
		j.o.disarm()
		e.watchDone <- struct{}{}
	}
}

// await waits for the end of job j's operation, failing it if its
// context or timeout (expire) ends first, and probing its peers at
// probeAt.
func (e *Engine) await(j watchJob, expire, probeAt <-chan time.Time) {
	for {
		select {
		case <-probeAt:
			e.probe(j.o)
			probeAt = nil
			continue
		case <-j.ctx.Done():
			e.expire(j.o, context.Cause(j.ctx))
			<-e.opEnd
		case <-expire:
			e.expire(j.o, fmt.Errorf("%w: the operation ran past Config.Timeout (%v)", context.DeadlineExceeded, j.timeout))
			<-e.opEnd
		case <-e.opEnd:
		}
		return
	}
}

// expire fails o, unless both its halves have already finished.
func (e *Engine) expire(o *Op, err error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if !o.done {
		o.failLocked(err)
		o.interrupt()
	}
}

// run executes o: the local copies, then its lanes on the link workers.
// It returns the first failure.
func (e *Engine) Run(ctx context.Context, o *Op, timeout time.Duration) error {
	o.prepare()
	e.onRun(o) // progress may be read from now on
	o.runLocal()
	if len(o.plan.lanes) == 0 {
		return nil
	}
	e.watchJobs <- watchJob{ctx: ctx, o: o, timeout: timeout}
	for k := range o.plan.lanes {
		w := o.workers[k]
		w.lane = &o.plan.lanes[k]
		w.jobs <- o
	}
	allOK := true
	for range o.plan.lanes {
		if err := <-o.laneDone; err != nil {
			allOK = false
		}
	}
	o.mu.Lock()
	o.done = true
	failed := o.failed.Load()
	err := o.err
	o.mu.Unlock()
	e.opEnd <- struct{}{}
	<-e.watchDone
	if allOK {
		if failed { // the context expired just as the last frame moved
			for _, w := range o.workers {
				w.link.Resume()
			}
		}
		return nil
	}
	return err
}

func (e *Engine) failOp(o *Op, err error) {
	if errors.Is(err, errStopped) {
		return
	}
	o.fail(err)
	o.interrupt()
}
