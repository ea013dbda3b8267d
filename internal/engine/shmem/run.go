package shmem

import (
	"context"
	"fmt"
	goruntime "runtime"
	"sync/atomic"
	"time"

	"github.com/ringo-ml/ringo/internal/engine"
	"github.com/ringo-ml/ringo/internal/reduce"
	"github.com/ringo-ml/ringo/internal/shm"
	"github.com/ringo-ml/ringo/internal/wire"
)

// run is one operation on the engine.
type run struct {
	g        *Group
	call     *engine.Call
	n        int             // ranks
	ctx      context.Context // the operation's, checked by its waits
	timeout  time.Duration   // the communicator's default bound when ctx has none; else 0
	deadline time.Time       // when timeout runs out
	base     uint32          // this rank's counter when the operation began
	ph       uint32          // bumps so far
}

// Run executes call, bounded by ctx and, when timeout > 0, by timeout.
// The waits check both themselves: no watcher goroutine, which spares
// every operation two goroutine hand-offs (a tenth of a small
// AllReduce's time when ranks outnumber cores).
func (g *Group) Run(ctx context.Context, call *engine.Call, timeout time.Duration) error {
	g.windows.Store(0)
	g.window.Store(0)
	g.phase.Store(0)
	g.waitRank.Store(-1)
	if err := ctx.Err(); err != nil {
		// Already over: fail before publishing anything, as the network
		// path does.
		return context.Cause(ctx)
	}
	r := run{g: g, call: call, n: len(g.segs), ctx: ctx, timeout: timeout, base: atomic.LoadUint32(g.ctr[g.rank])}
	if timeout > 0 {
		r.deadline = time.Now().Add(timeout)
	}
	return r.exec()
}

// expired reports the operation's context ending or its timeout passing.
func (r *run) expired() error {
	if err := r.ctx.Err(); err != nil {
		return context.Cause(r.ctx)
	}
	if !r.deadline.IsZero() && time.Now().After(r.deadline) {
		return fmt.Errorf("%w: the operation ran past Config.Timeout (%v)", context.DeadlineExceeded, r.timeout)
	}
	return nil
}

// bump advances this rank's counter and wakes peers sleeping on it.
func (r *run) bump() {
	r.ph++
	me := r.g.rank
	atomic.StoreUint32(r.g.ctr[me], r.base+r.ph)
	if atomic.LoadUint32(r.g.waiters[me]) != 0 {
		shm.Wake(r.g.ctr[me])
	}
}

// sync bumps the counter and waits until every peer has bumped it as far.
func (r *run) sync(p Phase) error {
	r.g.phase.Store(int32(p))
	r.bump()
	target := r.base + r.ph
	for j := range r.g.ctr {
		if j != r.g.rank {
			if err := r.wait(j, target); err != nil {
				return err
			}
		}
	}
	return nil
}

func reached(v, target uint32) bool { return int32(v-target) >= 0 }

// wait waits until peer j's counter reaches target: it polls, then
// yields, then sleeps.
func (r *run) wait(j int, target uint32) error {
	g := r.g
	ctr := g.ctr[j]
	if reached(atomic.LoadUint32(ctr), target) {
		return nil
	}
	g.waitRank.Store(int32(j))
	spin, yield := g.t.Spin, g.t.Yield
	var lastProbe time.Time
	for spins := 0; ; spins++ {
		v := atomic.LoadUint32(ctr)
		if reached(v, target) {
			return nil
		}
		if err := r.stopped(j); err != nil {
			return err
		}
		if spins&63 == 63 || spins >= spin {
			if err := r.expired(); err != nil {
				return err
			}
		}
		switch {
		case spins < spin:
		case spins < spin+yield:
			// Let this process's other goroutines run (ranks of one
			// process), then other processes (ranks outnumbering cores).
			goruntime.Gosched()
			shm.Yield()
		case g.segs[j].Local:
			// The peer is a goroutine of this process: sleeping in the
			// kernel would hold this thread's processor from it until the
			// runtime noticed; a short Go sleep hands it over at once.
			goruntime.Gosched()
			time.Sleep(localNap)
		default:
			if err := r.sleep(j, target, &lastProbe); err != nil {
				return err
			}
		}
	}
}

// sleep sleeps on peer j's counter for a while, probing every so often
// that the peer still lives.
func (r *run) sleep(j int, target uint32, lastProbe *time.Time) error {
	g := r.g
	ctr := g.ctr[j]
	now := time.Now()
	if lastProbe.IsZero() {
		*lastProbe = now
	} else if now.Sub(*lastProbe) >= probe {
		*lastProbe = now
		if !g.segs[j].Alive() && !reached(atomic.LoadUint32(ctr), target) {
			return fmt.Errorf("%w: rank %d died (it no longer holds its shared-memory segment)", engine.ErrPeerLost, j)
		}
	}
	atomic.AddUint32(g.waiters[j], 1)
	if v := atomic.LoadUint32(ctr); !reached(v, target) {
		shm.Wait(ctr, v, sleepMax)
	}
	atomic.AddUint32(g.waiters[j], ^uint32(0))
	return nil
}

// stopped reports why the operation must end, if it must: the
// communicator failed or closed, or peer j aborted.
func (r *run) stopped(j int) error {
	if r.g.stop.Load() {
		return r.g.stopped()
	}
	if code := atomic.LoadUint32(r.g.abort[j]); code != 0 {
		// The abort frame on the control stream says why (a rank that
		// closed, or one that failed for a reason of its own or passes on
		// another's); give it a moment.
		deadline := time.Now().Add(200 * time.Millisecond)
		for time.Now().Before(deadline) {
			if err := r.g.stopped(); err != nil {
				return err
			}
			time.Sleep(time.Millisecond)
		}
		if wire.Code(code) == wire.CodeClosed {
			return fmt.Errorf("%w: rank %d closed its communicator", engine.ErrPeerLost, j)
		}
		return fmt.Errorf("%w: rank %d aborted the operation (%s)", engine.ErrAborted, j, wire.Code(code))
	}
	return nil
}

// packCall packs a call's fingerprint (all but count and seq) in a word.
func packCall(h *wire.Header) uint64 {
	return uint64(h.Op) | uint64(h.DType)<<8 | uint64(h.Reduce)<<16 | uint64(uint32(h.Root))<<32
}

func unpackCall(w, count, seq uint64) wire.Header {
	return wire.Header{Op: wire.Op(w), DType: wire.DType(w >> 8), Reduce: wire.ReduceOp(w >> 16),
		Root: int32(uint32(w >> 32)), Count: count, Seq: seq}
}

// fingerprint stores this rank's call in its slot, before the first bump.
func (r *run) fingerprint() {
	h := &r.call.Hdr
	fp := &r.g.fp[r.g.rank][h.Seq%2]
	atomic.StoreUint64(fp[0], h.Seq)
	atomic.StoreUint64(fp[1], packCall(h))
	atomic.StoreUint64(fp[2], h.Count)
}

// checkCalls compares every peer's fingerprint with this rank's, once
// every peer has published it (after the first sync).
func (r *run) checkCalls() error {
	h := &r.call.Hdr
	slot := h.Seq % 2
	want := [fpWords]uint64{h.Seq, packCall(h), h.Count}
	for j := range r.g.fp {
		if j == r.g.rank {
			continue
		}
		var got [fpWords]uint64
		for k := range fpWords {
			got[k] = atomic.LoadUint64(r.g.fp[j][slot][k])
		}
		if got != want {
			theirs := unpackCall(got[1], got[2], got[0])
			return &engine.Mismatch{Msg: fmt.Sprintf("rank %d called %s but rank %d called %s",
				r.g.rank, engine.Describe(h), j, engine.Describe(&theirs))}
		}
	}
	return nil
}

// window is one window of an operation: elements [lo, lo+m) of each
// rank's block, in slot b.
type window struct {
	lo, m   int
	in, out [][]byte
	split   bool // reduced a part per rank: the other parts are collected later
}

// exec runs the operation's windows.
func (r *run) exec() error {
	g, h := r.g, &r.call.Hdr
	r.fingerprint()
	r.nameBuffers() // registered buffers, for the zero-copy path (register.go)
	count := int(h.Count)
	per := g.t.Window / r.call.ES // elements of one window
	if h.Op == wire.OpReduceScatter {
		per /= r.n // elements of each rank's block in a window
	}
	windows := 0
	if h.Op != wire.OpBarrier && count > 0 {
		windows = (count + per - 1) / per
	}
	g.windows.Store(int64(windows))
	if windows == 0 {
		if err := r.sync(Publishing); err != nil {
			return err
		}
		return r.checkCalls()
	}
	// A window reduced a part per rank leaves the other parts to collect
	// from the peers' output areas once they have written them: that is
	// known at the next window's wait (each rank publishes window k+1
	// only after combining window k), so collecting costs no wait of its
	// own except after the last window.
	var pending window
	for k := range windows {
		g.window.Store(int64(k))
		b := int(g.slot % 2)
		g.slot++
		lo := k * per
		w := window{lo: lo, m: min(count, lo+per) - lo, in: g.in[b], out: g.out[b]}
		r.publish(&w)
		if err := r.sync(Publishing); err != nil {
			return err
		}
		if k == 0 {
			if err := r.checkCalls(); err != nil {
				return err
			}
			if done, err := r.tryZeroCopy(); done {
				return err
			}
		}
		r.combine(&w)
		// Collect the previous window: every rank has combined it, since
		// every rank has published this one.
		if pending.split {
			r.collect(&pending)
		}
		pending = w
	}
	if pending.split {
		if err := r.sync(Combining); err != nil {
			return err
		}
		r.collect(&pending)
	}
	return nil
}

// publish copies this rank's input for window w into its input area.
func (r *run) publish(w *window) {
	c, me, es := r.call, r.g.rank, r.call.ES
	lo, hi := w.lo, w.lo+w.m
	in := w.in[me]
	switch c.Hdr.Op {
	case wire.OpAllReduce:
		copy(in, c.Dst[lo*es:hi*es])
	case wire.OpBroadcast:
		if me == int(c.Hdr.Root) {
			copy(in, c.Dst[lo*es:hi*es])
		}
	case wire.OpReduce, wire.OpGather, wire.OpAllGather, wire.OpSendRecv:
		copy(in, c.Src[lo*es:hi*es])
	case wire.OpReduceScatter:
		count := int(c.Hdr.Count)
		for j := range r.n {
			copy(in[j*w.m*es:], c.Src[(j*count+lo)*es:(j*count+hi)*es])
		}
	}
}

// combine reads the peers' input areas for window w. A small window is
// reduced whole by every rank that needs it (the same inputs in the same
// order give the same bits everywhere), which saves collecting it; a
// large one is reduced a part per rank.
func (r *run) combine(w *window) {
	c, me, n, es := r.call, r.g.rank, r.n, r.call.ES
	op, root, count := c.Hdr.Op, int(c.Hdr.Root), int(c.Hdr.Count)
	lo, hi, m := w.lo, w.lo+w.m, w.m
	w.split = (op == wire.OpAllReduce || op == wire.OpReduce) && m*es > r.g.t.Small
	switch op {
	case wire.OpAllReduce, wire.OpReduce:
		if !w.split {
			if op == wire.OpAllReduce || me == root {
				r.reduceInto(c.Dst[lo*es:hi*es], nil, w.in, 0, m*es)
			}
			return
		}
		a, b := engine.Part(m, n, me)
		mine := w.out[me][a*es : b*es]
		if op == wire.OpAllReduce {
			r.reduceInto(mine, c.Dst[(lo+a)*es:(lo+b)*es], w.in, a*es, b*es)
		} else {
			r.reduceInto(mine, nil, w.in, a*es, b*es)
		}
	case wire.OpReduceScatter:
		r.reduceInto(c.Dst[lo*es:hi*es], nil, w.in, me*m*es, (me+1)*m*es)
	case wire.OpBroadcast:
		if me != root {
			copy(c.Dst[lo*es:hi*es], w.in[root][:m*es])
		}
	case wire.OpGather, wire.OpAllGather:
		if op == wire.OpAllGather || me == root {
			for j := range n {
				copy(c.Dst[(j*count+lo)*es:(j*count+hi)*es], w.in[j][:m*es])
			}
		}
	case wire.OpSendRecv:
		copy(c.Dst[lo*es:hi*es], w.in[(me+n-1)%n][:m*es])
	}
}

// collect copies the peers' reduced parts of window w out of their
// output areas (and, for Reduce, the root's own).
func (r *run) collect(w *window) {
	c, me, es := r.call, r.g.rank, r.call.ES
	reduceOp := c.Hdr.Op == wire.OpReduce
	if reduceOp && me != int(c.Hdr.Root) {
		return
	}
	for j := range r.n {
		if j != me || reduceOp {
			a, b := engine.Part(w.m, r.n, j)
			copy(c.Dst[(w.lo+a)*es:(w.lo+b)*es], w.out[j][a*es:b*es])
		}
	}
}

// reduceInto sets dst to the reduction, in rank order, of bytes [lo, hi)
// of every rank's input area, in one pass over memory (the same bits as
// copying the first input and reducing each further one into it); when
// dst2 is not nil (and as long as dst) it gets the result too, stored
// from registers rather than copied afterwards.
func (r *run) reduceInto(dst, dst2 []byte, in [][]byte, lo, hi int) {
	if hi <= lo {
		return
	}
	g, k := r.g, r.call.Kernel
	switch r.call.Hdr.DType {
	case wire.Float64:
		for j := range in {
			g.v64[j] = engine.F64(in[j][lo:hi])
		}
		if dst2 == nil {
			reduce.Reduce64(k, engine.F64(dst), g.v64[:len(in)])
		} else {
			reduce.Reduce64To2(k, engine.F64(dst), engine.F64(dst2), g.v64[:len(in)])
		}
		return
	case wire.Float32:
		for j := range in {
			g.v32[j] = engine.F32(in[j][lo:hi])
		}
		if dst2 == nil {
			reduce.Reduce32(k, engine.F32(dst), g.v32[:len(in)])
		} else {
			reduce.Reduce32To2(k, engine.F32(dst), engine.F32(dst2), g.v32[:len(in)])
		}
		return
	}
	// The integers: in rank order, as the floats.
	copy(dst, in[0][lo:hi])
	for j := 1; j < len(in); j++ {
		engine.ReduceInto(r.call.Hdr.DType, k, dst, in[j][lo:hi])
	}
	if dst2 != nil {
		copy(dst2, dst)
	}
}
