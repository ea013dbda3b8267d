package collective

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	goruntime "runtime"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/ringo-ml/ringo/internal/reduce"
	"github.com/ringo-ml/ringo/internal/shm"
	"github.com/ringo-ml/ringo/internal/wire"
	"github.com/ringo-ml/ringo/ring"
)

// The shared-memory engine.
//
// When every rank is on one host, each rank creates a segment (package
// shm) and maps every peer's; the QUIC links stay up for set-up, aborts and
// liveness, but no tensor byte crosses them. A segment holds a header —
// a phase counter (a futex word), an abort word and the fingerprints of
// the last two calls — and two slots, each with an input and an output
// area of shmWindow bytes.
//
// Every operation walks its tensor in windows of at most shmWindow bytes,
// alternating slots, one wait per window:
//
//	publish  copy this rank's input for the window into its input area;
//	         bump the counter; wait until every rank has bumped it
//	combine  read the peers' input areas: reduce this rank's part of the
//	         window (1/n of it) from every input in rank order, into the
//	         output area, or copy what the operation needs
//	collect  copy the peers' reduced parts of the previous window out of
//	         their output areas (they wrote them before publishing this
//	         window); after the last window, one more wait, then collect
//
// so an AllReduce reads and writes each byte a fixed small number of times
// — no byte stream, no frames — and every element is reduced once, by its
// owner, in rank order: the bits are identical on every rank and depend
// only on the world size and the inputs. Slot reuse needs no further
// synchronisation: a rank writes a slot's input area two windows later,
// after every rank published the window in between (so finished combining
// from it), and its output area after every rank published the window
// that reuses it (so finished collecting from it).
//
// Waiting spins briefly, then yields the processor (ranks often outnumber
// cores), then sleeps on the peer's counter word with a futex. A waiter
// also watches the peer's abort word and, every shmProbe, whether the peer
// still holds its segment's lock, so a rank killed in the middle of an
// operation is reported as lost at once rather than at the deadline.
//
// Mismatched calls: each rank stores its call's fingerprint (slot
// seq%2) before its first bump, and compares every peer's after the first
// wait; ranks that called different things fail with ErrMismatch.
const (
	shmHeader   = 4096
	shmSleep    = 2 * time.Millisecond  // longest futex sleep between checks
	shmProbe    = 50 * time.Millisecond // liveness probe interval while sleeping
	shmLocalNap = 20 * time.Microsecond // sleep between polls of a peer in this process
	shmRecWords = 4                     // float64 words of a segment's announcement

	offCtr     = 64
	offWaiters = 68
	offAbort   = 128
	offFP      = 192 // two slots of 3 words: seq, packed call, count
)

// Tuning of the shared-memory engine; docs/tuning.md gives the measured
// reasons. The environment can override each (RINGO_SHM_WINDOW must then
// be the same on every rank: the segment sizes are checked, and ranks
// that differ fall back to QUIC, or fail with TransportShm).
var (
	// shmWindow is the bytes of one slot's input (and output) area.
	shmWindow = envInt("RINGO_SHM_WINDOW", 256<<10, 4<<10, 64<<20) &^ 63
	// shmSmall: windows up to this size are reduced whole by every rank.
	shmSmall = envInt("RINGO_SHM_SMALL", 32<<10, 0, 64<<20)
	// shmSpin is how many times a waiter polls before it yields.
	shmSpin = envInt("RINGO_SHM_SPIN", 64, 0, 1<<20)
	// shmYield is how many times it yields before it sleeps.
	shmYield = envInt("RINGO_SHM_YIELD", 64, 0, 1<<20)
)

// envInt reads an integer setting from the environment, keeping def when
// it is unset or outside [lo, hi] (with a warning).
func envInt(name string, def, lo, hi int) int {
	s, ok := os.LookupEnv(name)
	if !ok {
		return def
	}
	v, err := strconv.Atoi(s)
	if err != nil || v < lo || v > hi {
		slog.Warn("collective: ignoring a setting outside its range", "name", name, "value", s, "min", lo, "max", hi)
		return def
	}
	return v
}

type shmGroup struct {
	segs    []*shm.Segment
	ctr     []*uint32
	waiters []*uint32
	abort   []*uint32
	fp      [][2][3]*uint64
	in, out [2][][]byte // [slot][rank]
	win     int
	slot    uint64      // windows run so far: a window uses slot%2
	v32     [][]float32 // views of the input areas for the n-ary kernels
	v64     [][]float64

	stop atomic.Bool // the communicator failed or closed

	// Registered buffers (register.go).
	reg     registry
	reg5    [][2][5]*uint64 // per rank and call slot: dst region id, dst offset, mapped, src region id, src offset
	zbufs   [][]byte        // the zero-copy path's view of every rank's buffer
	scratch []byte          // one tile of the zero-copy path's reduction
	ranks   []int           // 0..n-1
	// zeroCopies counts the operations that took the zero-copy path.
	zeroCopies atomic.Int64

	// Progress of the operation in flight, for hang reports.
	waitRank atomic.Int32
	window   atomic.Int64
	windows  atomic.Int64
	phase    atomic.Int32
}

func shmSegSize() int { return shmHeader + 4*shmWindow }

// setupShm tries to move the data path to shared memory: every rank
// creates a segment and announces it (over the QUIC links, which
// authenticate the peers), maps everyone else's, and the ranks agree
// (AllReduce of a flag) whether all of them succeeded.
func (c *Communicator) setupShm(ctx context.Context) error {
	if c.transport != TransportAuto && c.transport != TransportShm || c.world == 1 || c.noShm {
		return nil
	}
	size := shmSegSize()
	var reason error
	var mine *shm.Segment
	if !shm.Supported {
		reason = shm.ErrUnsupported
	} else {
		shm.Sweep(time.Minute)
		var err error
		if mine, err = shm.Create(size); err != nil {
			reason = err
		}
	}
	rec := make([]float64, shmRecWords)
	if mine != nil {
		var b [8 * shmRecWords]byte
		raw, _ := hex.DecodeString(mine.Name[len(shm.Prefix):])
		b[0] = 1
		copy(b[1:13], raw)
		copy(b[13:13+shm.TokenLen], mine.Token[:])
		for i := range rec {
			rec[i] = math.Float64frombits(binary.LittleEndian.Uint64(b[8*i:]))
		}
	}
	all := make([]float64, shmRecWords*c.world)
	if err := c.AllGather(ctx, all, rec, Using(Ring)); err != nil {
		if mine != nil {
			_ = mine.Close()
		}
		return fmt.Errorf("collective: announcing shared-memory segments: %w", err)
	}
	segs := make([]*shm.Segment, c.world)
	segs[c.rank] = mine
	ok := reason == nil
	for j := 0; j < c.world && ok; j++ {
		if j == c.rank {
			continue
		}
		var b [8 * shmRecWords]byte
		for i := range shmRecWords {
			binary.LittleEndian.PutUint64(b[8*i:], math.Float64bits(all[j*shmRecWords+i]))
		}
		if b[0] != 1 {
			ok, reason = false, fmt.Errorf("rank %d has no segment", j)
			break
		}
		name := shm.Prefix + hex.EncodeToString(b[1:13])
		seg, err := shm.Open(name, [shm.TokenLen]byte(b[13:13+shm.TokenLen]), size)
		if err != nil {
			ok, reason = false, fmt.Errorf("rank %d's segment: %w", j, err)
			break
		}
		segs[j] = seg
	}
	flag := []float64{0}
	if ok {
		flag[0] = 1
	}
	err := c.AllReduce(ctx, flag, Min, Using(Ring))
	if err == nil && flag[0] == 1 {
		// Everyone has mapped every segment: the files can go.
		_ = mine.Unlink()
		g := newShmGroup(segs, c.rank)
		c.mu.Lock()
		c.shm = g
		c.mu.Unlock()
		c.log.Debug("collective: data path on shared memory", "segment", mine.Name)
		return nil
	}
	for _, s := range segs {
		if s != nil {
			_ = s.Close()
		}
	}
	if err != nil {
		return fmt.Errorf("collective: agreeing on shared memory: %w", err)
	}
	if reason == nil {
		reason = errors.New("another rank could not map every segment")
	}
	if c.transport == TransportShm {
		return fmt.Errorf("collective: %w: Transport is shm but the ranks cannot share memory: %v", ErrInvalid, reason)
	}
	c.log.Debug("collective: data path on QUIC", "why not shared memory", reason)
	return nil
}

func newShmGroup(segs []*shm.Segment, rank int) *shmGroup {
	n := len(segs)
	g := &shmGroup{segs: segs, win: shmWindow,
		ctr: make([]*uint32, n), waiters: make([]*uint32, n), abort: make([]*uint32, n),
		fp: make([][2][3]*uint64, n), v32: make([][]float32, n), v64: make([][]float64, n),
		reg5: make([][2][5]*uint64, n), zbufs: make([][]byte, n), scratch: alignedBytes(regTile)}
	g.ranks = make([]int, n)
	for j := range g.ranks {
		g.ranks[j] = j
	}
	for s := range 2 {
		g.in[s], g.out[s] = make([][]byte, n), make([][]byte, n)
	}
	for j, seg := range segs {
		m := seg.Mem
		g.ctr[j] = shm.Word(m, offCtr)
		g.waiters[j] = shm.Word(m, offWaiters)
		g.abort[j] = shm.Word(m, offAbort)
		for s := range 2 {
			for k := range 3 {
				g.fp[j][s][k] = shm.Word64(m, offFP+8*(3*s+k))
			}
			for k := range 5 {
				g.reg5[j][s][k] = shm.Word64(m, offReg+8*(5*s+k))
			}
			base := shmHeader + s*2*shmWindow
			g.in[s][j] = m[base : base+shmWindow : base+shmWindow]
			g.out[s][j] = m[base+shmWindow : base+2*shmWindow : base+2*shmWindow]
		}
	}
	return g
}

// close unmaps every segment. No operation may be running.
func (g *shmGroup) close() {
	for _, s := range g.segs {
		_ = s.Close()
	}
}

// halt makes every wait of this rank's operation stop, and tells the peers
// (who watch this rank's abort word) with code.
func (g *shmGroup) halt(rank int, code wire.Code) {
	g.stop.Store(true)
	atomic.CompareAndSwapUint32(g.abort[rank], 0, uint32(code))
	for _, w := range g.ctr {
		shm.Wake(w)
	}
}

// packCall packs a call's fingerprint (all but count and seq) in a word.
func packCall(h *wire.Header) uint64 {
	return uint64(h.Op) | uint64(h.DType)<<8 | uint64(h.Reduce)<<16 | uint64(uint32(h.Root))<<32
}

func unpackCall(w, count, seq uint64) wire.Header {
	return wire.Header{Op: wire.Op(w), DType: wire.DType(w >> 8), Reduce: wire.ReduceOp(w >> 16),
		Root: int32(uint32(w >> 32)), Count: count, Seq: seq}
}

// shmRun is one operation on the shared-memory engine.
type shmRun struct {
	c        *Communicator
	g        *shmGroup
	o        *opState
	ctx      context.Context
	timeout  time.Duration // Config.Timeout when ctx has no deadline; else 0
	deadline time.Time     // when timeout runs out
	base     uint32        // this rank's counter when the operation began
	ph       uint32        // bumps so far
}

// runShm executes o on shared memory, bounded like any operation by its
// context and Config.Timeout through the watcher.
func (c *Communicator) runShm(ctx context.Context, o *opState, timeout time.Duration) error {
	o.failed.Store(false)
	o.err = nil
	o.done = false
	o.prepared = false
	o.onShm = true
	g := c.shm
	g.windows.Store(0)
	g.window.Store(0)
	g.phase.Store(0)
	g.waitRank.Store(-1)
	if err := ctx.Err(); err != nil {
		// Already over: fail before publishing anything, as the network
		// path does.
		return context.Cause(ctx)
	}
	// No watcher goroutine: the waits check the context and the deadline
	// themselves, which spares every operation two goroutine hand-offs
	// (a tenth of a small AllReduce's time when ranks outnumber cores).
	r := shmRun{c: c, g: g, o: o, ctx: ctx, timeout: timeout, base: atomic.LoadUint32(g.ctr[c.rank])}
	if timeout > 0 {
		r.deadline = time.Now().Add(timeout)
	}
	err := r.exec()
	o.mu.Lock()
	o.done = true
	o.mu.Unlock()
	return err
}

// expired reports the operation's context ending or its Config.Timeout
// passing.
func (r *shmRun) expired() error {
	if err := r.ctx.Err(); err != nil {
		return context.Cause(r.ctx)
	}
	if !r.deadline.IsZero() && time.Now().After(r.deadline) {
		return fmt.Errorf("%w: the operation ran past Config.Timeout (%v)", context.DeadlineExceeded, r.timeout)
	}
	return nil
}

// bump advances this rank's counter and wakes peers sleeping on it.
func (r *shmRun) bump() {
	r.ph++
	me := r.c.rank
	atomic.StoreUint32(r.g.ctr[me], r.base+r.ph)
	if atomic.LoadUint32(r.g.waiters[me]) != 0 {
		shm.Wake(r.g.ctr[me])
	}
}

// sync bumps the counter and waits until every peer has bumped it as far.
func (r *shmRun) sync() error {
	r.bump()
	target := r.base + r.ph
	for j := range r.g.ctr {
		if j != r.c.rank {
			if err := r.wait(j, target); err != nil {
				return err
			}
		}
	}
	return nil
}

func reached(v, target uint32) bool { return int32(v-target) >= 0 }

// wait waits until peer j's counter reaches target.
func (r *shmRun) wait(j int, target uint32) error {
	g := r.g
	ctr := g.ctr[j]
	if reached(atomic.LoadUint32(ctr), target) {
		return nil
	}
	g.waitRank.Store(int32(j))
	var lastProbe time.Time
	for spins := 0; ; spins++ {
		v := atomic.LoadUint32(ctr)
		if reached(v, target) {
			return nil
		}
		if err := r.stopped(j); err != nil {
			return err
		}
		if spins&63 == 63 || spins >= shmSpin {
			if err := r.expired(); err != nil {
				return err
			}
		}
		switch {
		case spins < shmSpin:
		case spins < shmSpin+shmYield:
			// Let this process's other goroutines run (ranks of one
			// process), then other processes (ranks outnumbering cores).
			goruntime.Gosched()
			shm.Yield()
		case g.segs[j].Local:
			// The peer is a goroutine of this process: sleeping in the
			// kernel would hold this thread's processor from it until the
			// runtime noticed; a short Go sleep hands it over at once.
			goruntime.Gosched()
			time.Sleep(shmLocalNap)
		default:
			now := time.Now()
			if lastProbe.IsZero() {
				lastProbe = now
			} else if now.Sub(lastProbe) >= shmProbe {
				lastProbe = now
				if !g.segs[j].Alive() && !reached(atomic.LoadUint32(ctr), target) {
					return fmt.Errorf("%w: rank %d died (it no longer holds its shared-memory segment)", ErrPeerLost, j)
				}
			}
			atomic.AddUint32(g.waiters[j], 1)
			if v = atomic.LoadUint32(ctr); !reached(v, target) {
				shm.Wait(ctr, v, shmSleep)
			}
			atomic.AddUint32(g.waiters[j], ^uint32(0))
		}
	}
}

// stopped reports why the operation must end, if it must: it failed (its
// context expired), the communicator was poisoned or closed, or peer j
// aborted.
func (r *shmRun) stopped(j int) error {
	if r.o.failed.Load() {
		return r.o.firstErr()
	}
	if r.g.stop.Load() {
		return r.c.stopCause()
	}
	if code := atomic.LoadUint32(r.g.abort[j]); code != 0 {
		// The abort frame on the control stream says why (a rank that
		// closed, or one that failed for a reason of its own or passes on
		// another's); give it a moment.
		deadline := time.Now().Add(200 * time.Millisecond)
		for time.Now().Before(deadline) {
			if err := r.c.stopCause(); err != nil {
				return err
			}
			time.Sleep(time.Millisecond)
		}
		if wire.Code(code) == wire.CodeClosed {
			return fmt.Errorf("%w: rank %d closed its communicator", ErrPeerLost, j)
		}
		return fmt.Errorf("%w: rank %d aborted the operation (%s)", ErrAborted, j, wire.Code(code))
	}
	return nil
}

// stopCause is the communicator's failure, once it has one.
func (c *Communicator) stopCause() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cause != nil {
		return c.cause
	}
	if c.closed {
		return fmt.Errorf("%w: rank %d closed its communicator", ErrClosed, c.rank)
	}
	return nil
}

// checkCalls compares every peer's fingerprint with this rank's, once
// every peer has published it (after the first sync).
func (r *shmRun) checkCalls() error {
	h := &r.o.hdr
	slot := h.Seq % 2
	want := [3]uint64{h.Seq, packCall(h), h.Count}
	for j := range r.g.fp {
		if j == r.c.rank {
			continue
		}
		var got [3]uint64
		for k := range 3 {
			got[k] = atomic.LoadUint64(r.g.fp[j][slot][k])
		}
		if got != want {
			theirs := unpackCall(got[1], got[2], got[0])
			return &mismatchError{msg: fmt.Sprintf("rank %d called %s but rank %d called %s",
				r.c.rank, describe(h), j, describe(&theirs))}
		}
	}
	return nil
}

// exec runs the operation's windows.
func (r *shmRun) exec() error {
	c, g, o := r.c, r.g, r.o
	h := &o.hdr
	me, n, es := c.rank, c.world, o.es
	slot := h.Seq % 2
	atomic.StoreUint64(g.fp[me][slot][0], h.Seq)
	atomic.StoreUint64(g.fp[me][slot][1], packCall(h))
	atomic.StoreUint64(g.fp[me][slot][2], h.Count)
	r.nameBuffers() // registered buffers, for the zero-copy path (register.go)

	count := int(h.Count)
	per := g.win / es // elements of one window
	if h.Op == wire.OpReduceScatter {
		per = g.win / es / n // elements of each rank's block in a window
	}
	windows := 0
	if h.Op != wire.OpBarrier && count > 0 {
		windows = (count + per - 1) / per
	}
	g.windows.Store(int64(windows))
	if windows == 0 {
		g.phase.Store(1)
		if err := r.sync(); err != nil {
			return err
		}
		return r.checkCalls()
	}
	root := int(h.Root)
	// A window reduced a part per rank leaves the other parts to collect
	// from the peers' output areas once they have written them: that is
	// known at the next window's wait (each rank publishes window k+1
	// only after combining window k), so collecting costs no wait of its
	// own except after the last window.
	pending := false
	var plo, pm int // the pending window: its first element and length
	var pout [][]byte
	collect := func() {
		if h.Op == wire.OpReduce && me != root {
			return
		}
		for j := range n {
			if j != me || h.Op == wire.OpReduce {
				a, b := part(pm, n, j)
				copy(o.dst[(plo+a)*es:(plo+b)*es], pout[j][a*es:b*es])
			}
		}
	}
	for k := range windows {
		g.window.Store(int64(k))
		b := int(g.slot % 2)
		g.slot++
		lo := k * per
		hi := min(count, lo+per)
		m := hi - lo
		in, out := g.in[b], g.out[b]
		// Publish.
		switch h.Op {
		case wire.OpAllReduce:
			copy(in[me], o.dst[lo*es:hi*es])
		case wire.OpBroadcast:
			if me == root {
				copy(in[me], o.dst[lo*es:hi*es])
			}
		case wire.OpReduce, wire.OpGather, wire.OpAllGather, wire.OpSendRecv:
			copy(in[me], o.src[lo*es:hi*es])
		case wire.OpReduceScatter:
			for j := range n {
				copy(in[me][j*m*es:], o.src[(j*count+lo)*es:(j*count+hi)*es])
			}
		}
		g.phase.Store(1)
		if err := r.sync(); err != nil {
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
		// Combine. A small window is reduced whole by every rank that
		// needs it (the same inputs in the same order give the same bits
		// everywhere), which saves collecting it; a large one is reduced
		// a part per rank.
		split := (h.Op == wire.OpAllReduce || h.Op == wire.OpReduce) && m*es > shmSmall
		switch h.Op {
		case wire.OpAllReduce, wire.OpReduce:
			if !split {
				if h.Op == wire.OpAllReduce || me == root {
					r.reduceInto(o.dst[lo*es:hi*es], in, 0, m*es)
				}
				break
			}
			a, b := part(m, n, me)
			mine := out[me][a*es : b*es]
			if h.Op == wire.OpAllReduce {
				r.reduceInto2(mine, o.dst[(lo+a)*es:(lo+b)*es], in, a*es, b*es)
			} else {
				r.reduceInto(mine, in, a*es, b*es)
			}
		case wire.OpReduceScatter:
			r.reduceInto(o.dst[lo*es:hi*es], in, me*m*es, (me+1)*m*es)
		case wire.OpBroadcast:
			if me != root {
				copy(o.dst[lo*es:hi*es], in[root][:m*es])
			}
		case wire.OpGather:
			if me == root {
				for j := range n {
					copy(o.dst[(j*count+lo)*es:(j*count+hi)*es], in[j][:m*es])
				}
			}
		case wire.OpAllGather:
			for j := range n {
				copy(o.dst[(j*count+lo)*es:(j*count+hi)*es], in[j][:m*es])
			}
		case wire.OpSendRecv:
			copy(o.dst[lo*es:hi*es], in[(me+n-1)%n][:m*es])
		}
		// Collect the previous window: every rank has combined it, since
		// every rank has published this one.
		if pending {
			collect()
		}
		pending, plo, pm, pout = split, lo, m, out
	}
	if pending {
		g.phase.Store(2)
		if err := r.sync(); err != nil {
			return err
		}
		collect()
	}
	return nil
}

// part is the element range [lo, hi) of rank j's share of m elements.
func part(m, n, j int) (lo, hi int) {
	off, k := ring.Split(m, n, j)
	return off, off + k
}

// reduceInto sets dst to the reduction, in rank order, of bytes [lo, hi)
// of every rank's input area, in one pass over memory (the same bits as
// copying the first input and reducing each further one into it).
func (r *shmRun) reduceInto(dst []byte, in [][]byte, lo, hi int) {
	r.reduceInto2(dst, nil, in, lo, hi)
}

// reduceInto2 is reduceInto that also leaves the result in dst2 (nil, or
// as long as dst), stored from registers rather than copied afterwards.
func (r *shmRun) reduceInto2(dst, dst2 []byte, in [][]byte, lo, hi int) {
	if hi <= lo {
		return
	}
	g := r.g
	if r.o.hdr.DType == wire.Float64 {
		for j := range in {
			g.v64[j] = asF64(in[j][lo:hi])
		}
		d := asF64(dst)
		if dst2 == nil {
			reduce.Reduce64(r.o.kernel, d, g.v64)
		} else {
			reduce.Reduce64To2(r.o.kernel, d, asF64(dst2), g.v64)
		}
		return
	}
	for j := range in {
		g.v32[j] = asF32(in[j][lo:hi])
	}
	d := asF32(dst)
	if dst2 == nil {
		reduce.Reduce32(r.o.kernel, d, g.v32)
	} else {
		reduce.Reduce32To2(r.o.kernel, d, asF32(dst2), g.v32)
	}
}

// shmReport says where a shared-memory operation was when it ran out of
// time.
func (c *Communicator) shmReport() string {
	g := c.shm
	if g == nil {
		return ""
	}
	j := g.waitRank.Load()
	phase := "publishing"
	switch g.phase.Load() {
	case 2:
		phase = "combining"
	case 3:
		if j < 0 {
			return "reducing its share of registered buffers in place (shared memory)"
		}
		return fmt.Sprintf("while waiting for rank %d to finish its share of registered buffers (shared memory)", j)
	}
	if j < 0 {
		return fmt.Sprintf("in window %d of %d (shared memory)", g.window.Load(), g.windows.Load())
	}
	return fmt.Sprintf("while waiting for rank %d to finish %s window %d of %d (shared memory)",
		j, phase, g.window.Load(), g.windows.Load())
}
