package ring

import (
	"fmt"
	"strings"

	"github.com/ringo-ml/ringo/internal/schedtest"
)

// This file holds a naive model of the executor: all ranks of a world run in
// one goroutine on symbolic values, with per-link FIFO queues, per-rank
// FIFO stage queues and per-rank Tmp buffers (Src's layout, initially
// poisoned: reading a segment no recv has written fails), in an interleaving
// chosen by a scheduler that honours only the schedule's own dependencies.

// exprs holds symbolic values. A value is an int: a leaf (some rank's
// initial buffer content, per segment and chunk) is encoded arithmetically
// as a negative id; a reduction a ⊕ b (operand order preserved) is an index
// into nodes. Every value has a 64-bit structural hash, so equal expressions
// built independently compare equal (see same) without an intern table,
// which keeps the simulator cheap under the race detector.
type exprs struct {
	nodes []exprNode
}

type exprNode struct {
	a, b int
	h    uint64
}

// Leaf encoding limits: ranks and segments < 64, chunks < 8.
const (
	maxSeg   = 64
	maxChunk = 8
)

func newExprs() *exprs { return &exprs{nodes: make([]exprNode, 0, 1024)} }

// leaf returns the value of chunk c of segment seg of rank's initial buffer:
// kind 'x' is an input (Src, or Dst of in-place ops), 'd' the initial Dst of
// out-of-place ops, 't' the poison an unwritten Tmp segment holds.
func (e *exprs) leaf(kind byte, rank, seg, c int) int {
	k := 0
	switch kind {
	case 'd':
		k = 1
	case 't':
		k = 2
	}
	return -1 - (((k*maxWorld+rank)*maxSeg+seg)*maxChunk + c)
}

// leafOf decodes a leaf id.
func leafOf(id int) (kind byte, rank, seg, c int) {
	v := -1 - id
	c, v = v%maxChunk, v/maxChunk
	seg, v = v%maxSeg, v/maxSeg
	rank, v = v%maxWorld, v/maxWorld
	return "xdt"[v], rank, seg, c
}

func (e *exprs) hash(id int) uint64 {
	if id < 0 {
		return schedtest.Mix(uint64(-id))
	}
	return e.nodes[id].h
}

func (e *exprs) plus(a, b int) int {
	h := schedtest.Pair(e.hash(a), e.hash(b))
	e.nodes = append(e.nodes, exprNode{a: a, b: b, h: h})
	return len(e.nodes) - 1
}

// same reports whether a and b are the same expression.
func (e *exprs) same(a, b int) bool { return e.hash(a) == e.hash(b) }

func (e *exprs) String(id int) string {
	var b strings.Builder
	e.write(&b, id)
	return b.String()
}

func (e *exprs) write(b *strings.Builder, id int) {
	if id >= 0 {
		n := e.nodes[id]
		b.WriteByte('(')
		e.write(b, n.a)
		b.WriteString(" ⊕ ")
		e.write(b, n.b)
		b.WriteByte(')')
		return
	}
	kind, rank, seg, c := leafOf(id)
	fmt.Fprintf(b, "%c%d.%d.%d", kind, rank, seg, c)
}

// know is what an event causally depends on: bit q of started means some
// event of rank q precedes it; bit q of finished means rank q's last recv
// precedes it.
type know struct{ started, finished uint64 }

func (k know) or(o know) know { return know{k.started | o.started, k.finished | o.finished} }

func all(world int) uint64 {
	if world == 64 {
		return ^uint64(0)
	}
	return 1<<world - 1
}

type frame struct {
	send, chunk int
	ack         bool
	val         int
	know        know
}

// rankState is one rank's buffers and progress. Buffers are flat:
// element seg*chunks+c is chunk c of segment seg.
type rankState struct {
	sch      Schedule
	dst, src []int // symbolic values
	dstW     []int // index of the recv that last wrote the Dst chunk (-1: initial or Local)
	tmp      []int // Tmp buffer, Src's layout (op.tmpSegs segments), initially poison
	tmpW     []int // index of the recv that last wrote the Tmp chunk (-1: unwritten)
	nDst     int   // number of Dst / Src / Tmp segments
	nSrc     int
	nTmp     int
	stage    []int // recv*chunks+c: value of the slot filled by recv
	stageQ   []int // recv indices of filled slots, oldest at stageQ[stageH]
	stageH   int
	sendI    int
	sendC    int
	recvI    int
	recvC    int
	sendCum  know
	recvCum  know
	recvKnow []know // recv*chunks+c: knowledge after that chunk (acks: c = 0)
	in       []frame
	inHead   int
}

// simMode selects how the scheduler picks the next action.
type simMode int

const (
	modeRandom    simMode = iota
	modeEagerSend         // run a send whenever one can run
	modeEagerRecv         // run a recv whenever one can run
)

func (m simMode) String() string {
	return [...]string{"random", "eager-send", "eager-recv"}[m]
}

type simConfig struct {
	mode   simMode
	seed   uint64
	chunks int // chunks per data segment
}

func (c simConfig) String() string {
	return fmt.Sprintf("%v/seed=%d/chunks=%d", c.mode, c.seed, c.chunks)
}

type sim struct {
	op     *opSpec
	world  int
	root   int
	chunks int
	cfg    simConfig
	e      *exprs
	ranks  []*rankState
	errs   []string
}

func (s *sim) fail(format string, args ...any) {
	if len(s.errs) < 10 {
		s.errs = append(s.errs, fmt.Sprintf(format, args...))
	}
}

func (s *sim) nchunks(ack bool) int {
	if ack {
		return 1
	}
	return s.chunks
}

// newSim builds the initial state of every rank of a world.
func newSim(op *opSpec, world, root int, cfg simConfig) *sim {
	C := cfg.chunks
	s := &sim{op: op, world: world, root: root, chunks: C, cfg: cfg, e: newExprs()}
	dstKind := byte('d')
	if op.inPlace {
		dstKind = 'x'
	}
	for r := range world {
		st := &rankState{sch: op.build(world, r, root)}
		st.nSrc = op.srcSegs(world, r, root)
		st.src = make([]int, st.nSrc*C)
		for i := range st.src {
			st.src[i] = s.e.leaf('x', r, i/C, i%C)
		}
		st.nDst = op.dstSegs(world, r, root)
		st.dst = make([]int, st.nDst*C)
		st.dstW = make([]int, st.nDst*C)
		for i := range st.dst {
			st.dst[i] = s.e.leaf(dstKind, r, i/C, i%C)
			st.dstW[i] = -1
		}
		st.nTmp = op.tmpSegs(world)
		st.tmp = make([]int, st.nTmp*C)
		st.tmpW = make([]int, st.nTmp*C)
		for i := range st.tmp {
			st.tmp[i] = s.e.leaf('t', r, i/C, i%C)
			st.tmpW[i] = -1
		}
		st.recvKnow = make([]know, len(st.sch.Recvs)*C)
		st.stage = make([]int, len(st.sch.Recvs)*C)
		st.sendCum = know{started: 1 << r}
		st.recvCum = know{started: 1 << r}
		s.ranks = append(s.ranks, st)
	}
	for _, st := range s.ranks {
		prev := s.ranks[(st.sch.Rank-1+s.world)%s.world].sch
		st.in = make([]frame, 0, len(prev.Sends)*C)
	}
	return s
}

// at returns the index of chunk c of ref in st's Dst, Src or Tmp, or -1
// after reporting a bad reference.
func (s *sim) at(r int, st *rankState, ref Ref, c int) int {
	var segs int
	switch ref.Buf {
	case Dst:
		segs = st.nDst
	case Src:
		segs = st.nSrc
	case Tmp:
		segs = st.nTmp
	default:
		s.fail("rank %d: bad buffer reference %v", r, ref)
		return -1
	}
	if ref.Seg < 0 || ref.Seg >= segs {
		s.fail("rank %d: %v outside the %v layout (%d segments)", r, ref, ref.Buf, segs)
		return -1
	}
	return ref.Seg*s.chunks + c
}

func (s *sim) read(r int, st *rankState, ref Ref, c int) int {
	i := s.at(r, st, ref, c)
	switch {
	case i < 0:
		return 0
	case ref.Buf == Src:
		return st.src[i]
	case ref.Buf == Tmp:
		if st.tmpW[i] < 0 {
			s.fail("rank %d reads unwritten Tmp %v chunk %d", r, ref, c)
		}
		return st.tmp[i]
	}
	return st.dst[i]
}

func (s *sim) runLocal() {
	for r, st := range s.ranks {
		for _, l := range st.sch.Local {
			if l.To.Buf != Dst {
				s.fail("rank %d: Local writes %v", r, l.To)
				continue
			}
			for c := range s.chunks {
				if i := s.at(r, st, l.To, c); i >= 0 {
					st.dst[i] = s.read(r, st, l.From, c)
				}
			}
		}
	}
}

// chunkDone reports whether chunk c of recv j of st has completed.
func chunkDone(st *rankState, j, c int) bool {
	return j < st.recvI || (j == st.recvI && c < st.recvC)
}

func (s *sim) canSend(r int) bool {
	st := s.ranks[r]
	if st.sendI >= len(st.sch.Sends) {
		return false
	}
	sd := st.sch.Sends[st.sendI]
	if sd.After < 0 {
		return true
	}
	if sd.After >= len(st.sch.Recvs) {
		return false // reported by the static checks; blocks forever here
	}
	if sd.From.Buf != None && st.sch.Recvs[sd.After].Kind != RecvAck {
		return chunkDone(st, sd.After, st.sendC)
	}
	return sd.After < st.recvI
}

func (s *sim) canRecv(r int) bool {
	st := s.ranks[r]
	return st.recvI < len(st.sch.Recvs) && st.inHead < len(st.in)
}

// lastWriter returns the highest recv index <= upto that writes ref (a Dst
// or Tmp segment), or -1.
func lastWriter(sch Schedule, ref Ref, upto int) int {
	for j := min(upto, len(sch.Recvs)-1); j >= 0; j-- {
		if sch.Recvs[j].To == ref {
			return j
		}
	}
	return -1
}

func (s *sim) doSend(r int) {
	st := s.ranks[r]
	sd := st.sch.Sends[st.sendI]
	c := st.sendC
	f := frame{send: st.sendI, chunk: c, ack: sd.From.Buf == None}
	switch sd.From.Buf {
	case None:
	case Dst, Src, Tmp:
		if i := s.at(r, st, sd.From, c); i >= 0 {
			f.val = s.read(r, st, sd.From, c)
			if sd.From.Buf == Src {
				break
			}
			w := st.dstW
			if sd.From.Buf == Tmp {
				w = st.tmpW
			}
			// The value read must be the one the dependencies promise,
			// whatever the interleaving: catches reads before the write and
			// overwrites before the read.
			if want := lastWriter(st.sch, sd.From, sd.After); w[i] != want {
				s.fail("rank %d send %d (%v) chunk %d read the value written by recv %d, its dependencies say recv %d", r, st.sendI, sd, c, w[i], want)
			}
		}
	case Stage:
		if st.stageH == len(st.stageQ) {
			s.fail("rank %d send %d (%v): stage queue empty", r, st.sendI, sd)
			break
		}
		slot := st.stageQ[st.stageH]
		if slot != sd.After {
			s.fail("rank %d send %d (%v): oldest staged slot was filled by recv %d, After is %d", r, st.sendI, sd, slot, sd.After)
		}
		if seg := st.sch.Recvs[slot].To.Seg; seg != sd.From.Seg {
			s.fail("rank %d send %d (%v): oldest staged slot holds segment %d", r, st.sendI, sd, seg)
		}
		f.val = st.stage[slot*s.chunks+c]
		if c == s.chunks-1 {
			st.stageH++
		}
	default:
		s.fail("rank %d send %d: bad buffer %v", r, st.sendI, sd.From)
	}
	k := st.sendCum
	if a := sd.After; a >= 0 {
		if !f.ack && st.sch.Recvs[a].Kind != RecvAck {
			k = k.or(st.recvKnow[a*s.chunks+c])
		} else {
			k = k.or(st.recvKnow[a*s.chunks+s.nchunks(st.sch.Recvs[a].Kind == RecvAck)-1])
		}
	}
	st.sendCum = k
	f.know = k
	next := s.ranks[(st.sch.Rank+1)%s.world]
	next.in = append(next.in, f)
	st.sendC++
	if st.sendC == s.nchunks(f.ack) {
		st.sendI++
		st.sendC = 0
	}
}

func (s *sim) doRecv(r int) {
	st := s.ranks[r]
	f := st.in[st.inHead]
	st.inHead++
	j, c := st.recvI, st.recvC
	rv := st.sch.Recvs[j]
	if f.send != j || f.chunk != c || f.ack != (rv.Kind == RecvAck) {
		s.fail("rank %d recv %d chunk %d (%v) got send %d chunk %d (ack=%v) of rank %d", r, j, c, rv, f.send, f.chunk, f.ack, rv.Peer)
		return
	}
	var v int
	switch rv.Kind {
	case RecvCopy, RecvStage:
		v = f.val
	case RecvReduce:
		v = s.e.plus(s.read(r, st, rv.To, c), f.val)
	case RecvStageReduce, RecvCopyReduce:
		if rv.With.Buf != Src {
			s.fail("rank %d recv %d (%v): With must name a Src segment", r, j, rv)
		}
		v = s.e.plus(f.val, s.read(r, st, rv.With, c))
	case RecvAck:
	default:
		s.fail("rank %d recv %d: bad kind %v", r, j, rv.Kind)
	}
	switch rv.Kind {
	case RecvCopy, RecvReduce, RecvCopyReduce:
		if rv.To.Buf != Dst && (rv.Kind != RecvCopyReduce || rv.To.Buf != Tmp) {
			s.fail("rank %d recv %d (%v) must write Dst (or Tmp, for CopyReduce)", r, j, rv)
		} else if i := s.at(r, st, rv.To, c); i >= 0 && rv.To.Buf == Tmp {
			st.tmp[i] = v
			st.tmpW[i] = j
		} else if i >= 0 {
			st.dst[i] = v
			st.dstW[i] = j
		}
	case RecvStage, RecvStageReduce:
		if rv.To.Buf != Stage {
			s.fail("rank %d recv %d (%v) must write Stage", r, j, rv)
		}
		if c == 0 {
			st.stageQ = append(st.stageQ, j)
		}
		st.stage[j*s.chunks+c] = v
	}
	st.recvCum = st.recvCum.or(f.know)
	st.recvC++
	if st.recvC == s.nchunks(rv.Kind == RecvAck) {
		st.recvI++
		st.recvC = 0
		if st.recvI == len(st.sch.Recvs) {
			st.recvCum.finished |= 1 << r
		}
	}
	st.recvKnow[j*s.chunks+c] = st.recvCum
}

// run executes the whole world until nothing can progress and reports a
// deadlock if work remains.
func (s *sim) run() {
	s.runLocal()
	rng := schedtest.NewRand(s.cfg.seed<<32 ^ uint64(s.world)<<16 ^ uint64(s.root))
	// The worklists hold the ranks whose next send / recv can run. An
	// action that can run stays runnable until it runs (dependencies and
	// queued frames only grow), so only the ranks an action affects need a
	// new look.
	sends := schedtest.NewWorklist(s.world)
	recvs := schedtest.NewWorklist(s.world)
	lookSend := func(r int) {
		if s.canSend(r) {
			sends.Add(r)
		}
	}
	lookRecv := func(r int) {
		if s.canRecv(r) {
			recvs.Add(r)
		}
	}
	for r := range s.world {
		lookSend(r)
	}
	for len(s.errs) == 0 && sends.Len()+recvs.Len() > 0 {
		var useSend bool
		switch {
		case sends.Len() == 0:
			useSend = false
		case recvs.Len() == 0:
			useSend = true
		case s.cfg.mode == modeEagerSend:
			useSend = true
		case s.cfg.mode == modeEagerRecv:
			useSend = false
		default:
			useSend = rng.IntN(sends.Len()+recvs.Len()) < sends.Len()
		}
		if useSend {
			r := sends.Take(rng)
			s.doSend(r)
			lookSend(r)
			lookRecv((r + 1) % s.world)
		} else {
			r := recvs.Take(rng)
			s.doRecv(r)
			lookRecv(r)
			lookSend(r)
		}
	}
	if len(s.errs) > 0 {
		return
	}
	for r, st := range s.ranks {
		if st.sendI < len(st.sch.Sends) || st.recvI < len(st.sch.Recvs) {
			s.fail("deadlock: rank %d stuck at send %d/%d, recv %d/%d (%d frames queued)",
				r, st.sendI, len(st.sch.Sends), st.recvI, len(st.sch.Recvs), len(st.in)-st.inHead)
		} else if st.inHead < len(st.in) {
			s.fail("rank %d: %d frames never received", r, len(st.in)-st.inHead)
		}
		if st.stageH < len(st.stageQ) {
			s.fail("rank %d: %d staged slots never sent", r, len(st.stageQ)-st.stageH)
		}
	}
}

// wantFold returns the left fold ((x_{ranks[0]} ⊕ x_{ranks[1]}) ⊕ ...) of Src/
// input leaves for segment seg, chunk c.
func (s *sim) wantFold(ranks []int, seg, c int) int {
	v := s.e.leaf('x', ranks[0], seg, c)
	for _, q := range ranks[1:] {
		v = s.e.plus(v, s.e.leaf('x', q, seg, c))
	}
	return v
}

// checkOnce verifies that v reduces leaf seg/c of every rank exactly once.
func (s *sim) checkOnce(what string, v, seg, c int) {
	seen := uint64(0)
	ok := true
	var walk func(id int)
	walk = func(id int) {
		if id >= 0 {
			walk(s.e.nodes[id].a)
			walk(s.e.nodes[id].b)
			return
		}
		kind, rank, sg, ch := leafOf(id)
		if kind != 'x' || sg != seg || ch != c || seen&(1<<rank) != 0 {
			ok = false
		}
		seen |= 1 << rank
	}
	walk(v)
	if !ok || seen != all(s.world) {
		s.fail("%s = %s: not a reduction of segment %d chunk %d over all ranks exactly once", what, s.e.String(v), seg, c)
	}
}

func (s *sim) dst(r, seg, c int) int { return s.ranks[r].dst[seg*s.chunks+c] }
