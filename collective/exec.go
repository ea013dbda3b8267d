package collective

import (
	"context"
	"errors"
	"fmt"
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

// layout maps a schedule's segment references onto byte ranges of the
// caller's buffers. A buffer of n elements cut into parts segments has
// segment k = ring.Split(n, parts, k).
type layout struct {
	dstParts, srcParts, tmpParts int
	stageTotal, stageParts       int // the element layout that Stage segments follow
}

// xsend and xrecv are a schedule's transfers in executable form; ring and
// tree schedules both convert to them.
type xsend struct {
	peer  int
	from  ring.Ref
	after int  // recv whose chunk c (whole, for an ack) must be complete first
	step  int  // index among the sends to this peer: the frame's Step
	open  bool // the operation's empty opening frame (see plan.finish)
}

type xrecv struct {
	peer      int
	kind      ring.RecvKind
	to, with  ring.Ref
	after     int  // recv whose chunk c must be complete before this one writes
	afterSend int  // send whose chunk c must have gone before this one writes
	step      int  // index among the recvs from this peer
	open      bool // the operation's empty opening frame
}

// lane is the ordered transfers of one operation in one direction of one
// link; a worker goroutine of that link runs it.
type lane struct {
	peer  int
	send  bool
	items []int // indices into sends or recvs
}

// plan is an executable schedule: transfers, and their lanes.
type plan struct {
	local []ring.Local
	sends []xsend
	recvs []xrecv
	lanes []lane
	stage bool // uses staging slots (then all recvs come from one peer)
}

// finish adds the opening frames, numbers each transfer within its link
// and groups the transfers in lanes. predOpens is what opens(rank) gives
// for the plan of this rank's ring predecessor.
//
// Every operation opens with a frame from each rank to its ring successor,
// sent at once and read at once, the first frame of that link for the
// operation: every frame carries the call's fingerprint, so a rank whose
// predecessor called something else finds out at once. Without it, ranks
// that called different collectives could all wait to receive before
// sending (a Broadcast whose ranks disagree on the root; a tree AllReduce
// beside a ring Broadcast) and nothing would cross the link where the calls
// differ. Where the schedule's own first transfer to the successor waits
// for nothing (every ring step 0, recursive doubling's first exchange
// between Gray-code neighbours), that transfer is the opening frame;
// otherwise an empty frame goes ahead of it. Any two calls that differ
// differ in their fingerprints, so a receiver that expects the other kind
// of opening still reads a mismatched fingerprint first.
func (p *plan) finish(world, rank int, predOpens bool) *plan {
	openSend := world > 1 && p.opens((rank+1)%world)
	openRecv := world > 1 && predOpens
	if openSend {
		p.sends = append(p.sends, xsend{peer: (rank + 1) % world, after: -1, open: true})
	}
	if openRecv {
		p.recvs = append(p.recvs, xrecv{peer: (rank + world - 1) % world, kind: ring.RecvAck, after: -1, afterSend: -1, open: true})
	}
	laneOf := map[[2]int]int{} // (peer, 1 for sends) -> index in p.lanes
	add := func(peer int, send bool, item int) (step int) {
		key := [2]int{peer, 0}
		if send {
			key[1] = 1
		}
		k, ok := laneOf[key]
		if !ok {
			k = len(p.lanes)
			laneOf[key] = k
			p.lanes = append(p.lanes, lane{peer: peer, send: send})
		}
		p.lanes[k].items = append(p.lanes[k].items, item)
		return len(p.lanes[k].items) - 1
	}
	order := func(n int, open bool) []int { // the opening frame first
		idx := make([]int, 0, n)
		if open {
			idx = append(idx, n-1)
		}
		for i := range n {
			if !open || i != n-1 {
				idx = append(idx, i)
			}
		}
		return idx
	}
	recvPeers := map[int]bool{}
	for _, j := range order(len(p.sends), openSend) {
		s := &p.sends[j]
		s.step = add(s.peer, true, j)
		p.stage = p.stage || s.from.Buf == ring.Stage
	}
	for _, i := range order(len(p.recvs), openRecv) {
		r := &p.recvs[i]
		r.step = add(r.peer, false, i)
		recvPeers[r.peer] = true
	}
	if p.stage && len(recvPeers) > 1 {
		panic("collective: a schedule with staging slots must receive from one peer")
	}
	return p
}

// newPlan builds and finishes this rank's plan with build, which converts
// the schedule of any rank: the opening frame it expects depends on its
// ring predecessor's plan.
func newPlan(world, rank int, build func(rank int) *plan) *plan {
	pred := (rank + world - 1) % world
	return build(rank).finish(world, rank, build(pred).opens(rank))
}

// opens reports whether a rank whose plan (before finish) is p opens the
// operation with an empty frame to its ring successor succ: unless its
// first transfer to succ waits for nothing.
func (p *plan) opens(succ int) bool {
	for _, s := range p.sends {
		if s.peer == succ {
			return s.after >= 0
		}
	}
	return true
}

// planRing converts a ring schedule: sends go to Next, recvs come from
// Prev, each lane in list order.
func planRing(s ring.Schedule) *plan {
	p := &plan{local: s.Local}
	for _, x := range s.Sends {
		p.sends = append(p.sends, xsend{peer: s.Next, from: x.From, after: x.After})
	}
	for _, x := range s.Recvs {
		i := len(p.recvs)
		rv := xrecv{peer: s.Prev, kind: x.Kind, to: x.To, with: x.With, after: -1, afterSend: -1}
		// A recv that overwrites a segment this rank sent earlier in the
		// operation (AllReduce's gather phase overwrites segments the
		// reduce phase sent) follows the last such send chunk by chunk.
		// The data it receives already depends on that send through the
		// ring, but only through the network; this makes the order local
		// and explicit (and visible to the race detector). Only sends
		// that depend on an earlier recv (or none) count: a later send of
		// the segment forwards what this recv or a later one writes.
		if x.To.Buf == ring.Dst || x.To.Buf == ring.Tmp {
			for j, sd := range s.Sends {
				if sd.From == x.To && sd.After < i {
					rv.afterSend = j
				}
			}
		}
		p.recvs = append(p.recvs, rv)
	}
	return p
}

// worker runs the lanes of one direction of one link, one operation at a
// time. Workers live as long as their communicator, so operations start no
// goroutines.
type worker struct {
	link   *transport.Link
	stream transport.Stream // the link's data stream or its lanes
	send   bool
	jobs   chan *opState
	lane   *lane // the lane of the current job
	note   chan struct{}

	enc     *wire.Encoder // sender
	wbuf    []byte        // sender: a header and a small payload, written at once
	in      *linkReader   // receiver: the data stream, buffered
	rbuf    []byte        // receiver
	frame   wire.Frame
	scratch []byte

	item, chunk atomic.Int64 // progress, for hang reports: index in lane.items, chunk
}

func (w *worker) run(c *Communicator) {
	for o := range w.jobs {
		var err error
		if w.send {
			err = c.runSends(o, w)
		} else {
			err = c.runRecvs(o, w)
		}
		if err != nil {
			c.failOp(o, err)
		}
		o.laneDone <- err
	}
}

// opState is the one operation in flight. The communicator owns it and
// reuses it from call to call, so the data path allocates nothing.
type opState struct {
	engine.Call // Hdr is the call's fingerprint (Step, Chunk, PayloadLen vary per frame)
	plan        *plan
	lay         layout
	tmp         []byte
	cb          int // chunk bytes, a multiple of ES

	workers    []*worker // one per lane, in plan.lanes order
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
	err    error // the first failure
	done   bool  // every lane finished; a late expiry no longer counts
}

func wake(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// wakeAll wakes every worker of the operation to re-check what it waits for.
func (o *opState) wakeAll() {
	for _, w := range o.workers {
		wake(w.note)
	}
}

// interrupt makes every blocked transfer of the operation fail at once.
func (o *opState) interrupt() {
	for _, w := range o.workers {
		w.link.Interrupt()
	}
}

// fail records the first failure and wakes every worker; the caller
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
	o.wakeAll()
}

func (o *opState) firstErr() error {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.err
}

// errStopped ends a lane whose operation failed elsewhere.
var errStopped = errors.New("stopped")

// waitCount waits until a progress counter reaches n; every change of a
// counter wakes the operation's workers.
func (o *opState) waitCount(w *worker, done *atomic.Int64, n int) error {
	for done.Load() < int64(n) {
		if o.failed.Load() {
			return errStopped
		}
		<-w.note
	}
	return nil
}

// waitRecv waits until recv i has completed n chunks.
func (o *opState) waitRecv(w *worker, i, n int) error { return o.waitCount(w, &o.recvDone[i], n) }

// waitSend waits until send j has sent n chunks.
func (o *opState) waitSend(w *worker, j, n int) error { return o.waitCount(w, &o.sendDone[j], n) }

// waitOrder waits until chunk ch of rv may be written: the recv and the
// send it follows have done that chunk.
func (o *opState) waitOrder(w *worker, rv *xrecv, ch int) error {
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
func (o *opState) waitStageSlot(w *worker) error {
	for o.stageIn-o.stageOut.Load() >= stageSlots {
		if o.failed.Load() {
			return errStopped
		}
		<-w.note
	}
	return nil
}

// seg returns the bytes of a Dst, Src or Tmp segment.
func (o *opState) seg(r ring.Ref) []byte {
	var buf []byte
	var parts int
	switch r.Buf {
	case ring.Dst:
		buf, parts = o.Dst, o.lay.dstParts
	case ring.Src:
		buf, parts = o.Src, o.lay.srcParts
	case ring.Tmp:
		buf, parts = o.tmp, o.lay.tmpParts
	default:
		panic(fmt.Sprintf("collective: no bytes for %v", r))
	}
	off, n := ring.Split(len(buf)/o.ES, parts, r.Seg)
	return buf[off*o.ES : (off+n)*o.ES]
}

// segLen is the byte length of any segment, Stage included.
func (o *opState) segLen(r ring.Ref) int {
	if r.Buf == ring.Stage {
		_, n := ring.Split(o.lay.stageTotal, o.lay.stageParts, r.Seg)
		return n * o.ES
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

// prepare resets the per-operation state for o.plan.
func (o *opState) prepare() {
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

// runSends executes a send lane in order.
func (c *Communicator) runSends(o *opState, w *worker) error {
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
				return &frameError{peer: s.peer, send: true, step: s.step, err: err}
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
				p = c.stage[o.stageOut.Load()%stageSlots][:hi-lo]
			} else {
				p = seg[lo:hi]
			}
			h.Chunk, h.PayloadLen = uint32(ch), uint32(hi-lo)
			if err := w.writeFrame(w.enc.EncodeData(&h), p); err != nil {
				return &frameError{peer: s.peer, send: true, step: s.step, chunk: ch, err: err}
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
func (c *Communicator) runRecvs(o *opState, w *worker) error {
	in := w.in
	for k, i := range w.lane.items {
		rv := &o.plan.recvs[i]
		w.item.Store(int64(k))
		w.chunk.Store(0)
		if rv.kind == ring.RecvAck {
			if err := c.readHeader(o, w, rv, 0, 0); err != nil {
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
			if err := c.readHeader(o, w, rv, ch, hi-lo); err != nil {
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
				p = c.stage[o.stageIn%stageSlots][:hi-lo]
			}
			if len(p) > 0 {
				if _, err := readFull(in, p); err != nil {
					return &frameError{peer: rv.peer, step: rv.step, chunk: ch, err: err}
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
func (c *Communicator) readHeader(o *opState, w *worker, rv *xrecv, chunk, plen int) error {
	f := &w.frame
	if err := wire.ReadFrame(w.in, w.rbuf, c.lim, f); err != nil {
		return &frameError{peer: rv.peer, step: rv.step, chunk: chunk, err: err}
	}
	if f.Kind != wire.KindData {
		return &frameError{peer: rv.peer, step: rv.step, chunk: chunk,
			err: fmt.Errorf("%w: a %s frame on the data stream", ErrProtocol, f.Kind)}
	}
	got, want := &f.Data, &o.Hdr
	if got.Epoch != want.Epoch || got.Seq != want.Seq || got.Op != want.Op || got.DType != want.DType ||
		got.Count != want.Count || got.Reduce != want.Reduce || got.Root != want.Root {
		return &engine.Mismatch{Msg: fmt.Sprintf("rank %d called %s, rank %d called %s",
			c.rank, engine.Describe(want), rv.peer, engine.Describe(got))}
	}
	if got.Algo != want.Algo {
		return &engine.Mismatch{Msg: fmt.Sprintf("rank %d runs %s with the %s algorithm, rank %d with %s (do all ranks use the same Algorithm setting?)",
			c.rank, engine.Describe(want), want.Algo, rv.peer, got.Algo)}
	}
	if got.Step != uint32(rv.step) || got.Chunk != uint32(chunk) || got.PayloadLen != uint32(plen) {
		return &engine.Mismatch{Msg: fmt.Sprintf("in %s rank %d expected step %d chunk %d of %d bytes from rank %d, which sent step %d chunk %d of %d bytes (do the ranks use the same chunk size?)",
			engine.Describe(want), c.rank, rv.step, chunk, plen, rv.peer, got.Step, got.Chunk, got.PayloadLen)}
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
func (w *worker) writeFrame(hdr, p []byte) error {
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
func (o *opState) runLocal() {
	for _, l := range o.plan.local {
		copy(o.seg(l.To), o.seg(l.From))
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
		o.interrupt()
	}
}

// run executes o: the local copies, then its lanes on the link workers.
// It returns the first failure.
func (c *Communicator) run(ctx context.Context, o *opState, timeout time.Duration) error {
	o.prepare()
	c.board.run(o) // Status may read the prepared state from now on
	o.runLocal()
	if len(o.plan.lanes) == 0 {
		return nil
	}
	c.watchJobs <- watchJob{ctx: ctx, o: o, timeout: timeout}
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
	c.opEnd <- struct{}{}
	<-c.watchDone
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

func (c *Communicator) failOp(o *opState, err error) {
	if errors.Is(err, errStopped) {
		return
	}
	o.fail(err)
	o.interrupt()
}
