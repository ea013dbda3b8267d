package tree

import (
	"fmt"
	"strings"

	"github.com/ringo-ml/ringo/internal/schedtest"
	"github.com/ringo-ml/ringo/ring"
)

// This file holds a naive model of the executor: all ranks of a world run in
// one goroutine on symbolic values, with one FIFO queue per ordered pair of
// ranks, per-peer send and recv cursors (lanes), per-rank Tmp buffers
// (initially unwritten: reading one fails), in an interleaving chosen by a
// scheduler that honours only the schedule's own dependencies: per-peer list
// order, After and AfterSend, chunk by chunk, and the availability of
// frames. It also runs a second, static model (staticCheck) that reasons
// about every interleaving at once.

// exprs holds symbolic values. A value is an int: a leaf (some rank's
// initial buffer content, per segment and chunk) is a negative id; a
// reduction a ⊕ b (operand order preserved) is an index into nodes. Every
// value carries two 64-bit structural hashes: h identifies the exact
// expression, hc its canonical form up to commutativity (a ⊕ b and b ⊕ a
// hash alike, (a ⊕ b) ⊕ c and a ⊕ (b ⊕ c) do not). It also carries whether
// it is a reduction of distinct input leaves of one segment and chunk, and
// which ranks' inputs it covers, so that "exactly once" is O(1).
type exprs struct {
	nodes []exprNode
}

type exprNode struct {
	a, b   int
	h, hc  uint64
	ranks  uint64 // ranks whose input leaf occurs
	seg, c int32
	once   bool // only input leaves of one segment and chunk, each rank at most once
}

// Leaf encoding limits: ranks and segments < 64, chunks < 4.
const (
	maxWorld = 64
	maxSeg   = 64
	maxChunk = 4
)

// Leaf kinds.
const (
	leafInput = iota // Src, or Dst of an in-place op
	leafDst          // the initial Dst of an out-of-place op
	leafTmp          // the initial (unwritten) Tmp
)

func newExprs() *exprs { return &exprs{nodes: make([]exprNode, 0, 256)} }

func (e *exprs) leaf(kind, rank, seg, c int) int {
	return -1 - (((kind*maxWorld+rank)*maxSeg+seg)*maxChunk + c)
}

func leafOf(id int) (kind, rank, seg, c int) {
	v := -1 - id
	c, v = v%maxChunk, v/maxChunk
	seg, v = v%maxSeg, v/maxSeg
	rank, kind = v%maxWorld, v/maxWorld
	return kind, rank, seg, c
}

func (e *exprs) node(id int) exprNode {
	if id >= 0 {
		return e.nodes[id]
	}
	kind, rank, seg, c := leafOf(id)
	h := schedtest.Mix(uint64(-id))
	return exprNode{h: h, hc: h, ranks: 1 << rank, seg: int32(seg), c: int32(c), once: kind == leafInput}
}

func (e *exprs) plus(a, b int) int {
	x, y := e.node(a), e.node(b)
	lo, hi := min(x.hc, y.hc), max(x.hc, y.hc)
	e.nodes = append(e.nodes, exprNode{
		a: a, b: b,
		h:     schedtest.Pair(x.h, y.h),
		hc:    schedtest.Pair(lo, hi) ^ 0xc3a5c85c97cb3127,
		ranks: x.ranks | y.ranks,
		seg:   x.seg, c: x.c,
		once: x.once && y.once && x.ranks&y.ranks == 0 && x.seg == y.seg && x.c == y.c,
	})
	return len(e.nodes) - 1
}

// same reports whether a and b are the same expression.
func (e *exprs) same(a, b int) bool { return e.node(a).h == e.node(b).h }

// equiv reports whether a and b are the same expression up to the operand
// order of each ⊕.
func (e *exprs) equiv(a, b int) bool { return e.node(a).hc == e.node(b).hc }

// allOnce reports whether v reduces segment seg, chunk c of every one of
// world ranks' inputs exactly once.
func (e *exprs) allOnce(v, world, seg, c int) bool {
	n := e.node(v)
	return n.once && n.ranks == all(world) && int(n.seg) == seg && int(n.c) == c
}

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
	fmt.Fprintf(b, "%c%d.%d.%d", "xdt"[kind], rank, seg, c)
}

func all(world int) uint64 {
	if world == 64 {
		return ^uint64(0)
	}
	return 1<<world - 1
}

// know is what an event causally depends on, through the schedule's
// declared dependencies only: bit q of started means some event of rank q
// precedes it; bit q of finished means every data recv of rank q precedes
// it; bit j of local (meaningful on the event's own rank only) means recv j
// of that rank is complete.
type know struct{ started, finished, local uint64 }

func (k know) or(o know) know {
	return know{k.started | o.started, k.finished | o.finished, k.local | o.local}
}

// Writers of a buffer chunk, besides recv indices.
const (
	wUnwritten = -2 // never written: an out-of-place Dst or Tmp
	wInitial   = -1 // the input, or a Local copy
)

func writerName(w int) string {
	switch w {
	case wUnwritten:
		return "nothing (unwritten)"
	case wInitial:
		return "the initial/Local value"
	}
	return fmt.Sprintf("R%d", w)
}

type frame struct {
	send, chunk int
	ack         bool
	val         int
	know        know
	time        int
}

// lane is one direction of one link at one rank: the transfers with one
// peer, in list order.
type lane struct {
	rank, peer int
	send       bool
	items      []int // indices into Sends or Recvs
	pos, chunk int   // next transfer (items[pos]) and chunk
	in         []frame
	head       int  // recv lanes: frames from peer, next at head
	last       know // the previous action on this lane
	lastTime   int
}

// rankState is one rank's buffers and progress. Buffers are flat: element
// seg*chunks+c is chunk c of segment seg.
type rankState struct {
	sch              Schedule
	dst, src, tmp    []int // symbolic values
	dstW, tmpW       []int // writers (wUnwritten, wInitial or a recv index)
	nDst, nSrc, nTmp int   // segments
	sent, got        []int // chunks sent per send, received per recv
	sendKnow         []know
	recvKnow         []know // per chunk: transfer*chunks+c (acks: c = 0)
	sendTime         []int
	recvTime         []int
	sendDest         []int // per send: the lane of the peer that receives it; -1 none
	lanes            []int // this rank's lanes
	incoming         []int // the send lanes of the ranks that send to this one
	dataMask         uint64
	dataFrom         map[int]uint64 // peer -> its data recvs
}

// simMode selects how the scheduler picks the next action.
type simMode int

const (
	modeRandom    simMode = iota
	modeEagerSend         // run a send whenever one can run
	modeEagerRecv         // run a recv whenever one can run
	// modeRendezvous models a transport that buffers nothing: a chunk is
	// sent only as its receiver takes it (after the recv's own dependencies),
	// in random order. A schedule that completes so completes with any
	// buffering, since every rendezvous run is also a buffered run.
	modeRendezvous
)

func (m simMode) String() string {
	return [...]string{"random", "eager-send", "eager-recv", "rendezvous"}[m]
}

type simConfig struct {
	mode   simMode
	seed   uint64
	chunks int // chunks per data segment
	// scratch (modeRendezvous): the receiver reads a RecvReduce chunk aside
	// into a one-chunk scratch buffer before it waits for the recv's
	// dependencies, as the contract allows (they order only the write).
	scratch bool
}

func (c simConfig) String() string {
	str := fmt.Sprintf("%v/seed=%d/chunks=%d", c.mode, c.seed, c.chunks)
	if c.scratch {
		str += "/scratch"
	}
	return str
}

type sim struct {
	op     *opSpec
	world  int
	root   int
	chunks int
	cfg    simConfig
	e      *exprs
	ranks  []*rankState
	lanes  []*lane
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

// newSim builds the initial state of every rank of a world from schs.
func newSim(op *opSpec, schs []Schedule, root int, cfg simConfig) *sim {
	C := cfg.chunks
	world := len(schs)
	s := &sim{op: op, world: world, root: root, chunks: C, cfg: cfg, e: newExprs()}
	dstParts, srcParts, tmpParts := Parts(op.op, world)
	recvLane := map[[2]int]int{} // (rank, peer) -> lane
	for r, sch := range schs {
		st := &rankState{sch: sch, nSrc: srcParts, nTmp: tmpParts, dataFrom: map[int]uint64{}}
		if op.hasDst(world, r, root) {
			st.nDst = dstParts
		}
		st.src = make([]int, st.nSrc*C)
		for i := range st.src {
			st.src[i] = s.e.leaf(leafInput, r, i/C, i%C)
		}
		st.dst = make([]int, st.nDst*C)
		st.dstW = make([]int, st.nDst*C)
		for i := range st.dst {
			if op.inPlace {
				st.dst[i], st.dstW[i] = s.e.leaf(leafInput, r, i/C, i%C), wInitial
			} else {
				st.dst[i], st.dstW[i] = s.e.leaf(leafDst, r, i/C, i%C), wUnwritten
			}
		}
		st.tmp = make([]int, st.nTmp*C)
		st.tmpW = make([]int, st.nTmp*C)
		for i := range st.tmp {
			st.tmp[i], st.tmpW[i] = s.e.leaf(leafTmp, r, i/C, i%C), wUnwritten
		}
		st.sent = make([]int, len(sch.Sends))
		st.got = make([]int, len(sch.Recvs))
		st.sendKnow = make([]know, len(sch.Sends)*C)
		st.sendTime = make([]int, len(sch.Sends)*C)
		st.recvKnow = make([]know, len(sch.Recvs)*C)
		st.recvTime = make([]int, len(sch.Recvs)*C)
		if len(sch.Recvs) > 64 {
			s.fail("rank %d: %d recvs, more than the simulator tracks", r, len(sch.Recvs))
		}
		byPeer := map[int]int{}
		for i, sd := range sch.Sends {
			k, ok := byPeer[sd.Peer]
			if !ok {
				k = len(s.lanes)
				byPeer[sd.Peer] = k
				s.lanes = append(s.lanes, &lane{rank: r, peer: sd.Peer, send: true})
				st.lanes = append(st.lanes, k)
			}
			s.lanes[k].items = append(s.lanes[k].items, i)
		}
		clear(byPeer)
		for j, rv := range sch.Recvs {
			k, ok := byPeer[rv.Peer]
			if !ok {
				k = len(s.lanes)
				byPeer[rv.Peer] = k
				s.lanes = append(s.lanes, &lane{rank: r, peer: rv.Peer})
				st.lanes = append(st.lanes, k)
				recvLane[[2]int{r, rv.Peer}] = k
			}
			s.lanes[k].items = append(s.lanes[k].items, j)
			if rv.Kind != ring.RecvAck && j < 64 {
				st.dataMask |= 1 << j
				st.dataFrom[rv.Peer] |= 1 << j
			}
		}
		s.ranks = append(s.ranks, st)
	}
	for k, l := range s.lanes {
		if l.send && l.peer >= 0 && l.peer < world {
			s.ranks[l.peer].incoming = append(s.ranks[l.peer].incoming, k)
		}
	}
	for r, st := range s.ranks {
		st.sendDest = make([]int, len(st.sch.Sends))
		for i, sd := range st.sch.Sends {
			if k, ok := recvLane[[2]int{sd.Peer, r}]; ok {
				st.sendDest[i] = k
			} else {
				st.sendDest[i] = -1
			}
		}
	}
	return s
}

// at returns the index of chunk c of ref in st's Dst, Src or Tmp, or -1
// after reporting a bad reference.
func (s *sim) at(r int, st *rankState, ref ring.Ref, c int) int {
	var segs int
	switch ref.Buf {
	case ring.Dst:
		segs = st.nDst
	case ring.Src:
		segs = st.nSrc
	case ring.Tmp:
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

// read returns chunk c of ref and its writer (wInitial for Src).
func (s *sim) read(r int, st *rankState, ref ring.Ref, c int) (val, writer int) {
	i := s.at(r, st, ref, c)
	switch {
	case i < 0:
		return 0, wInitial
	case ref.Buf == ring.Src:
		return st.src[i], wInitial
	case ref.Buf == ring.Tmp:
		return st.tmp[i], st.tmpW[i]
	}
	return st.dst[i], st.dstW[i]
}

func (s *sim) write(r int, st *rankState, ref ring.Ref, c, val, writer int) {
	if ref.Buf != ring.Dst && ref.Buf != ring.Tmp {
		s.fail("rank %d writes %v (only Dst and Tmp may be written)", r, ref)
		return
	}
	i := s.at(r, st, ref, c)
	switch {
	case i < 0:
	case ref.Buf == ring.Tmp:
		st.tmp[i], st.tmpW[i] = val, writer
	default:
		st.dst[i], st.dstW[i] = val, writer
	}
}

func (s *sim) runLocal() {
	for r, st := range s.ranks {
		for _, l := range st.sch.Local {
			for c := range s.chunks {
				v, w := s.read(r, st, l.From, c)
				if w == wUnwritten {
					s.fail("rank %d: Local %v -> %v reads an unwritten buffer", r, l.From, l.To)
				}
				s.write(r, st, l.To, c, v, wInitial)
			}
		}
	}
}

// promised returns the writer that a transfer reading ref after recv after
// may see: that recv if it writes ref, else the initial value.
func promised(sch Schedule, ref ring.Ref, after int) int {
	if after >= 0 && after < len(sch.Recvs) && sch.Recvs[after].Kind != ring.RecvAck && sch.Recvs[after].To == ref {
		return after
	}
	return wInitial
}

// recvDone reports whether recv j of st has chunk c complete (for whole,
// every chunk).
func (s *sim) recvDone(st *rankState, j, c int, whole bool) bool {
	if whole {
		return st.got[j] == s.nchunks(st.sch.Recvs[j].Kind == ring.RecvAck)
	}
	return st.got[j] > c
}

func (s *sim) sendDone(st *rankState, i, c int, whole bool) bool {
	if whole {
		return st.sent[i] == s.nchunks(st.sch.Sends[i].From.Buf == ring.None)
	}
	return st.sent[i] > c
}

// depChunk returns the chunk of a dependency that chunk c of a transfer
// waits for: the same chunk between data transfers, else the whole
// dependency (its last chunk).
func (s *sim) depChunk(data, depData bool, c int) (int, bool) {
	if data && depData {
		return c, false
	}
	return s.nchunks(!depData) - 1, true
}

func (s *sim) canRun(l *lane) bool {
	if l.pos >= len(l.items) {
		return false
	}
	st := s.ranks[l.rank]
	if l.send {
		sd := st.sch.Sends[l.items[l.pos]]
		if a := sd.After; a >= 0 {
			if a >= len(st.sch.Recvs) {
				return false // reported by the static checks; blocks forever here
			}
			c, whole := s.depChunk(sd.From.Buf != ring.None, st.sch.Recvs[a].Kind != ring.RecvAck, l.chunk)
			if !s.recvDone(st, a, c, whole) {
				return false
			}
		}
		if s.cfg.mode == modeRendezvous {
			d := st.sendDest[l.items[l.pos]]
			if d < 0 {
				return false
			}
			to := s.lanes[d]
			switch {
			case to.head < len(to.in): // the scratch chunk is still there
				return false
			case s.recvReady(to):
				return true
			}
			return s.cfg.scratch && s.ranks[to.rank].sch.Recvs[to.items[to.pos]].Kind == ring.RecvReduce
		}
		return true
	}
	return l.head < len(l.in) && s.recvReady(l)
}

// recvReady reports whether the dependencies of the next chunk of recv lane
// l are satisfied (a frame aside).
func (s *sim) recvReady(l *lane) bool {
	if l.pos >= len(l.items) {
		return false
	}
	st := s.ranks[l.rank]
	rv := st.sch.Recvs[l.items[l.pos]]
	data := rv.Kind != ring.RecvAck
	if a := rv.After; a >= 0 {
		if a >= len(st.sch.Recvs) {
			return false
		}
		c, whole := s.depChunk(data, st.sch.Recvs[a].Kind != ring.RecvAck, l.chunk)
		if !s.recvDone(st, a, c, whole) {
			return false
		}
	}
	if a := rv.AfterSend; a >= 0 {
		if a >= len(st.sch.Sends) {
			return false
		}
		c, whole := s.depChunk(data, st.sch.Sends[a].From.Buf != ring.None, l.chunk)
		if !s.sendDone(st, a, c, whole) {
			return false
		}
	}
	return true
}

// finish adds rank r to k.finished once k covers every data recv of r.
func finish(k know, r int, st *rankState) know {
	if k.local&st.dataMask == st.dataMask {
		k.finished |= 1 << r
	}
	return k
}

func (s *sim) doSend(l *lane) {
	r, st := l.rank, s.ranks[l.rank]
	i, c := l.items[l.pos], l.chunk
	sd := st.sch.Sends[i]
	f := frame{send: i, chunk: c, ack: sd.From.Buf == ring.None}
	k := l.last.or(know{started: 1 << r})
	t := l.lastTime
	if a := sd.After; a >= 0 {
		dc, _ := s.depChunk(!f.ack, st.sch.Recvs[a].Kind != ring.RecvAck, c)
		k = k.or(st.recvKnow[a*s.chunks+dc])
		t = max(t, st.recvTime[a*s.chunks+dc])
	}
	k = finish(k, r, st)
	if f.ack {
		if need := st.dataFrom[sd.Peer]; k.local&need != need {
			s.fail("rank %d S%d (%v): acks before it has received all of rank %d's data", r, i, sd, sd.Peer)
		}
	} else {
		var w int
		f.val, w = s.read(r, st, sd.From, c)
		// The value read must be the one the dependencies promise, whatever
		// the interleaving: catches reads before the write and overwrites
		// before the read.
		if want := promised(st.sch, sd.From, sd.After); w != want {
			s.fail("rank %d S%d (%v) chunk %d read the value written by %s; its dependencies promise %s", r, i, sd, c, writerName(w), writerName(want))
		}
	}
	t++
	f.know, f.time = k, t
	st.sendKnow[i*s.chunks+c], st.sendTime[i*s.chunks+c] = k, t
	l.last, l.lastTime = k, t
	if d := st.sendDest[i]; d >= 0 {
		s.lanes[d].in = append(s.lanes[d].in, f)
	} else {
		s.fail("rank %d S%d (%v): rank %d never receives from rank %d", r, i, sd, sd.Peer, r)
	}
	st.sent[i]++
	if l.chunk++; l.chunk == s.nchunks(f.ack) {
		l.pos++
		l.chunk = 0
	}
}

func (s *sim) doRecv(l *lane) {
	r, st := l.rank, s.ranks[l.rank]
	f := l.in[l.head]
	l.head++
	j, c := l.items[l.pos], l.chunk
	rv := st.sch.Recvs[j]
	data := rv.Kind != ring.RecvAck
	if f.ack == data || f.chunk != c {
		s.fail("rank %d R%d chunk %d (%v) got S%d chunk %d (ack=%v) of rank %d", r, j, c, rv, f.send, f.chunk, f.ack, l.peer)
		return
	}
	k := l.last.or(know{started: 1 << r}).or(know{started: f.know.started, finished: f.know.finished})
	t := max(l.lastTime, f.time)
	if a := rv.After; a >= 0 {
		dc, _ := s.depChunk(data, st.sch.Recvs[a].Kind != ring.RecvAck, c)
		k = k.or(st.recvKnow[a*s.chunks+dc])
		t = max(t, st.recvTime[a*s.chunks+dc])
	}
	if a := rv.AfterSend; a >= 0 {
		dc, _ := s.depChunk(data, st.sch.Sends[a].From.Buf != ring.None, c)
		k = k.or(st.sendKnow[a*s.chunks+dc])
		t = max(t, st.sendTime[a*s.chunks+dc])
	}
	if data {
		cur, w := s.read(r, st, rv.To, c)
		if want := promised(st.sch, rv.To, rv.After); w != want && (want != wInitial || w != wUnwritten) {
			s.fail("rank %d R%d (%v) chunk %d overwrites the value written by %s; its dependencies promise %s", r, j, rv, c, writerName(w), writerName(want))
		}
		var v int
		switch rv.Kind {
		case ring.RecvCopy:
			v = f.val
		case ring.RecvReduce:
			if w == wUnwritten {
				s.fail("rank %d R%d (%v) chunk %d reduces into an unwritten buffer", r, j, rv, c)
			}
			v = s.e.plus(cur, f.val)
		case ring.RecvCopyReduce:
			with, ww := s.read(r, st, rv.With, c)
			if ww == wUnwritten {
				s.fail("rank %d R%d (%v) chunk %d reads an unwritten With", r, j, rv, c)
			}
			v = s.e.plus(f.val, with)
		default:
			s.fail("rank %d R%d: kind %v is not used by tree schedules", r, j, rv.Kind)
		}
		s.write(r, st, rv.To, c, v, j)
	}
	if c == s.nchunks(!data)-1 && j < 64 {
		k.local |= 1 << j
	}
	k = finish(k, r, st)
	st.recvKnow[j*s.chunks+c], st.recvTime[j*s.chunks+c] = k, t
	l.last, l.lastTime = k, t
	st.got[j]++
	if l.chunk++; l.chunk == s.nchunks(!data) {
		l.pos++
		l.chunk = 0
	}
}

// run executes the whole world until nothing can progress and reports a
// deadlock if work remains.
func (s *sim) run() {
	s.runLocal()
	if len(s.errs) > 0 {
		return
	}
	rng := schedtest.NewRand(s.cfg.seed<<32 ^ uint64(s.world)<<16 ^ uint64(s.root))
	// The worklists hold the lanes whose next transfer can run. A transfer
	// that can run stays runnable until it runs (dependencies and queued
	// frames only grow), so only the lanes an action affects need a new
	// look: the actor's rank's lanes, and the receiving lane of a frame.
	sends := schedtest.NewWorklist(len(s.lanes))
	recvs := schedtest.NewWorklist(len(s.lanes))
	look := func(k int) {
		if l := s.lanes[k]; s.canRun(l) {
			if l.send {
				sends.Add(k)
			} else {
				recvs.Add(k)
			}
		}
	}
	// lookRank looks at a rank's lanes and, without buffering, at the send
	// lanes that wait for it.
	lookRank := func(r int) {
		for _, k := range s.ranks[r].lanes {
			look(k)
		}
		if s.cfg.mode == modeRendezvous {
			for _, k := range s.ranks[r].incoming {
				look(k)
			}
		}
	}
	for k := range s.lanes {
		look(k)
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
		var l *lane
		if useSend {
			l = s.lanes[sends.Take(rng)]
			d := s.ranks[l.rank].sendDest[l.items[l.pos]]
			s.doSend(l)
			if d >= 0 && s.cfg.mode == modeRendezvous {
				// The receiver takes the chunk at once, or into its
				// scratch buffer to use later.
				if to := s.lanes[d]; s.recvReady(to) && len(s.errs) == 0 {
					s.doRecv(to)
				}
				lookRank(s.lanes[d].rank)
			} else if d >= 0 {
				look(d)
			}
		} else {
			l = s.lanes[recvs.Take(rng)]
			s.doRecv(l)
		}
		lookRank(l.rank)
	}
	if len(s.errs) > 0 {
		return
	}
	for _, l := range s.lanes {
		switch {
		case l.pos < len(l.items) && l.send:
			s.fail("deadlock: rank %d stuck sending S%d (%v), chunk %d", l.rank, l.items[l.pos], s.ranks[l.rank].sch.Sends[l.items[l.pos]], l.chunk)
		case l.pos < len(l.items):
			s.fail("deadlock: rank %d stuck receiving R%d (%v), chunk %d (%d frames queued)", l.rank, l.items[l.pos], s.ranks[l.rank].sch.Recvs[l.items[l.pos]], l.chunk, len(l.in)-l.head)
		case l.head < len(l.in):
			s.fail("rank %d: %d frames from rank %d never received", l.rank, len(l.in)-l.head, l.peer)
		}
	}
}

// final returns what rank r knows once all its recvs are complete.
func (s *sim) final(r int) know {
	st := s.ranks[r]
	k := know{started: 1 << r}
	for j, rv := range st.sch.Recvs {
		k = k.or(st.recvKnow[j*s.chunks+s.nchunks(rv.Kind == ring.RecvAck)-1])
	}
	return finish(k, r, st)
}

// steps returns the completion time of the run in frame steps (see the
// package documentation), meaningful for chunks == 1.
func (s *sim) steps() int {
	t := 0
	for _, st := range s.ranks {
		for _, x := range st.sendTime {
			t = max(t, x)
		}
		for _, x := range st.recvTime {
			t = max(t, x)
		}
	}
	return t
}

func (s *sim) dst(r, seg, c int) int { return s.ranks[r].dst[seg*s.chunks+c] }

// treeReduce returns the expression a tree reduction computes at v for
// segment seg, chunk c: ((x_v ⊕ R(kids[0])) ⊕ R(kids[1])) ⊕ ..., the
// children in the order given by kids.
func (s *sim) treeReduce(kids func(v int) []int, v, seg, c int) int {
	x := s.e.leaf(leafInput, v, seg, c)
	for _, k := range kids(v) {
		x = s.e.plus(x, s.treeReduce(kids, k, seg, c))
	}
	return x
}

// staticCheck verifies one world's schedules without running them: fields,
// references, the dependency discipline that makes every interleaving read
// the promised values (see the package documentation), and frame pairing
// and segment lengths. It reasons about every interleaving at once, through
// the happens-before order of each rank's transfers.
func staticCheck(op *opSpec, world, root int, schs []Schedule) []string {
	var errs []string
	fail := func(format string, args ...any) {
		if len(errs) < 10 {
			errs = append(errs, fmt.Sprintf(format, args...))
		}
	}
	dstParts, srcParts, tmpParts := Parts(op.op, world)
	inRange := func(r int, ref ring.Ref) bool {
		var segs int
		switch ref.Buf {
		case ring.Dst:
			if op.hasDst(world, r, root) {
				segs = dstParts
			}
		case ring.Src:
			segs = srcParts
		case ring.Tmp:
			segs = tmpParts
		}
		return ref.Seg >= 0 && ref.Seg < segs
	}
	if len(schs) != world {
		return []string{fmt.Sprintf("%d schedules for world %d", len(schs), world)}
	}
	for r, s := range schs {
		if s.World != world || s.Rank != r {
			fail("rank %d: header World=%d Rank=%d", r, s.World, s.Rank)
		}
		if world == 1 && len(s.Sends)+len(s.Recvs) > 0 {
			fail("world 1 must not transfer")
		}
		if world > 1 && len(s.Recvs) == 0 {
			fail("rank %d receives nothing: it would not see a failure", r)
		}
		for _, l := range s.Local {
			if (l.To.Buf != ring.Dst && l.To.Buf != ring.Tmp) || !inRange(r, l.To) || (l.From.Buf != ring.Src && l.From.Buf != ring.Dst) || !inRange(r, l.From) {
				fail("rank %d: bad Local %v -> %v", r, l.From, l.To)
			}
		}
		peerOK := func(p int) bool { return p >= 0 && p < world && p != r }
		for i, sd := range s.Sends {
			switch {
			case !peerOK(sd.Peer):
				fail("rank %d S%d (%v): bad peer", r, i, sd)
			case sd.From != ring.Ref{} && (sd.From.Buf == ring.None || sd.From.Buf == ring.Stage || !inRange(r, sd.From)):
				fail("rank %d S%d (%v): bad From", r, i, sd)
			case sd.After < -1 || sd.After >= len(s.Recvs):
				fail("rank %d S%d (%v): After out of range", r, i, sd)
			case sd.From.Buf != ring.None && sd.After >= 0 && (s.Recvs[sd.After].Kind == ring.RecvAck || s.Recvs[sd.After].To != sd.From):
				fail("rank %d S%d (%v) depends on R%d (%v), which does not write its segment", r, i, sd, sd.After, s.Recvs[sd.After])
			}
		}
		for j, rv := range s.Recvs {
			ok := true
			data := rv.Kind != ring.RecvAck
			switch rv.Kind {
			case ring.RecvCopy, ring.RecvReduce:
				ok = (rv.To.Buf == ring.Dst || rv.To.Buf == ring.Tmp) && inRange(r, rv.To) && rv.With == ring.Ref{}
			case ring.RecvCopyReduce:
				ok = (rv.To.Buf == ring.Dst || rv.To.Buf == ring.Tmp) && inRange(r, rv.To) && rv.With.Buf == ring.Src && inRange(r, rv.With)
			case ring.RecvAck:
				ok = rv.To == ring.Ref{} && rv.With == ring.Ref{} && rv.AfterSend == -1
			default:
				ok = false
			}
			switch {
			case !ok || !peerOK(rv.Peer):
				fail("rank %d R%d: malformed %v", r, j, rv)
			case rv.After < -1 || rv.After >= len(s.Recvs) || rv.After == j || rv.AfterSend < -1 || rv.AfterSend >= len(s.Sends):
				fail("rank %d R%d (%v): After or AfterSend out of range", r, j, rv)
			case data && rv.After >= 0 && s.Recvs[rv.After].To != rv.To:
				fail("rank %d R%d (%v) depends on R%d (%v) of another segment", r, j, rv, rv.After, s.Recvs[rv.After])
			case data && rv.AfterSend >= 0 && s.Sends[rv.AfterSend].From != rv.To:
				fail("rank %d R%d (%v) depends on S%d (%v) of another segment", r, j, rv, rv.AfterSend, s.Sends[rv.AfterSend])
			}
		}
	}
	if len(errs) > 0 {
		return errs
	}
	for r, s := range schs {
		for _, e := range orderCheck(s) {
			fail("rank %d: %s", r, e)
		}
	}
	if len(errs) > 0 {
		return errs
	}
	// Frame pairing: the k-th send from a to b is the k-th recv at b from a.
	bufLen := func(buf ring.Buf, count int) (n, parts int) {
		switch buf {
		case ring.Dst:
			if op.op == OpBinomialGather {
				return world * count, dstParts
			}
			return count, dstParts
		case ring.Src:
			return count, srcParts
		}
		return TmpLen(op.op, world, count), tmpParts
	}
	segLen := func(ref ring.Ref, count int) int {
		n, parts := bufLen(ref.Buf, count)
		_, m := ring.Split(n, parts, ref.Seg)
		return m
	}
	counts := []int{0, 1, world - 1, world, 3*world + 1, 1000}
	from := make([]map[int][]int, world) // from[b][a]: b's recvs from a
	for b, s := range schs {
		from[b] = map[int][]int{}
		for j, rv := range s.Recvs {
			from[b][rv.Peer] = append(from[b][rv.Peer], j)
		}
	}
	for a, s := range schs {
		to := map[int][]int{}
		for i, sd := range s.Sends {
			to[sd.Peer] = append(to[sd.Peer], i)
		}
		for b := range world {
			sends, recvs := to[b], from[b][a]
			if len(sends) != len(recvs) {
				fail("rank %d sends %d frames to rank %d, which receives %d from it", a, len(sends), b, len(recvs))
				continue
			}
			for k, i := range sends {
				sd, rv := s.Sends[i], schs[b].Recvs[recvs[k]]
				if (sd.From.Buf == ring.None) != (rv.Kind == ring.RecvAck) {
					fail("rank %d S%d (%v) vs rank %d R%d (%v): ack/data mismatch", a, i, sd, b, recvs[k], rv)
					continue
				}
				if rv.Kind == ring.RecvAck || (sd.From == rv.To && rv.Kind != ring.RecvCopyReduce) {
					// Every rank has the same layout, so equal references
					// have equal lengths.
					continue
				}
				for _, count := range counts {
					n, m := segLen(sd.From, count), segLen(rv.To, count)
					w := m
					if rv.Kind == ring.RecvCopyReduce {
						w = segLen(rv.With, count)
					}
					if n != m || n != w {
						fail("count %d: rank %d S%d (%v, %d elements) vs rank %d R%d (%v, %d/%d elements)", count, a, i, sd, n, b, recvs[k], rv, m, w)
						break
					}
				}
			}
		}
		for _, l := range s.Local {
			for _, count := range counts {
				if segLen(l.From, count) != segLen(l.To, count) {
					fail("count %d: rank %d Local %v -> %v length mismatch", count, a, l.From, l.To)
					break
				}
			}
		}
	}
	return errs
}

// orderCheck checks one rank's dependency discipline through the
// happens-before order of its transfers: After, AfterSend and per-peer list
// order, closed transitively (chunk c of a transfer follows chunk c of each
// transfer before it). It reports a cycle, two writes of a segment that are
// not ordered, a write whose After is not the write before it, a data send
// whose segment may be overwritten before it is read, and a read of a
// segment nothing has written.
func orderCheck(s Schedule) []string {
	var errs []string
	nS, nR := len(s.Sends), len(s.Recvs)
	n := nS + nR // nodes: sends 0..nS-1, then recvs
	words := (n + 63) / 64
	preds := make([][]int, n)
	lastTo, lastFrom := map[int]int{}, map[int]int{}
	for i, sd := range s.Sends {
		if sd.After >= 0 {
			preds[i] = append(preds[i], nS+sd.After)
		}
		if p, ok := lastTo[sd.Peer]; ok {
			preds[i] = append(preds[i], p)
		}
		lastTo[sd.Peer] = i
	}
	for j, rv := range s.Recvs {
		x := nS + j
		if rv.After >= 0 {
			preds[x] = append(preds[x], nS+rv.After)
		}
		if rv.AfterSend >= 0 {
			preds[x] = append(preds[x], rv.AfterSend)
		}
		if p, ok := lastFrom[rv.Peer]; ok {
			preds[x] = append(preds[x], nS+p)
		}
		lastFrom[rv.Peer] = j
	}
	reach := make([]uint64, n*words) // reach[x]: the nodes before x
	state := make([]int8, n)         // 0 new, 1 visiting, 2 done
	cyclic := false
	var visit func(x int)
	visit = func(x int) {
		if state[x] == 2 || cyclic {
			return
		}
		if state[x] == 1 {
			cyclic = true
			return
		}
		state[x] = 1
		for _, p := range preds[x] {
			visit(p)
			reach[x*words+p/64] |= 1 << (p % 64)
			for w := range words {
				reach[x*words+w] |= reach[p*words+w]
			}
		}
		state[x] = 2
	}
	for x := range n {
		visit(x)
	}
	if cyclic {
		return []string{"the dependencies of its transfers form a cycle"}
	}
	before := func(x, y int) bool { return reach[y*words+x/64]&(1<<(x%64)) != 0 }
	name := func(x int) string {
		if x < nS {
			return fmt.Sprintf("S%d (%v)", x, s.Sends[x])
		}
		return fmt.Sprintf("R%d (%v)", x-nS, s.Recvs[x-nS])
	}
	writers := map[ring.Ref][]int{}
	for j, rv := range s.Recvs {
		if rv.Kind != ring.RecvAck {
			writers[rv.To] = append(writers[rv.To], j)
		}
	}
	local := map[ring.Ref]bool{}
	for _, l := range s.Local {
		local[l.To] = true
	}
	for ref, ws := range writers {
		for a, j := range ws {
			for _, k := range ws[a+1:] {
				if !before(nS+j, nS+k) && !before(nS+k, nS+j) {
					errs = append(errs, fmt.Sprintf("%s and %s write %v in no fixed order", name(nS+j), name(nS+k), ref))
				}
			}
		}
	}
	if len(errs) > 0 {
		return errs
	}
	// check reports a writer of ref, other than w (the write that x's
	// dependencies promise), that is neither before w nor after x.
	check := func(x int, ref ring.Ref, w int) {
		for _, j := range writers[ref] {
			if j == w || nS+j == x || (w >= 0 && before(nS+j, nS+w)) || before(x, nS+j) {
				continue
			}
			errs = append(errs, fmt.Sprintf("%s may see the write of %s, which its dependencies do not promise", name(x), name(nS+j)))
		}
	}
	for i, sd := range s.Sends {
		if sd.From.Buf == ring.Dst || sd.From.Buf == ring.Tmp {
			w := promised(s, sd.From, sd.After)
			check(i, sd.From, w)
			if w < 0 && !local[sd.From] && (sd.From.Buf == ring.Tmp) {
				errs = append(errs, fmt.Sprintf("%s reads Tmp that nothing wrote", name(i)))
			}
		}
	}
	for j, rv := range s.Recvs {
		if rv.Kind != ring.RecvAck {
			w := promised(s, rv.To, rv.After)
			check(nS+j, rv.To, w)
			if rv.Kind == ring.RecvReduce && w < 0 && !local[rv.To] && rv.To.Buf == ring.Tmp {
				errs = append(errs, fmt.Sprintf("%s reduces into Tmp that nothing wrote", name(nS+j)))
			}
		}
	}
	return errs
}
