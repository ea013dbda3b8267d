package stream

import (
	"fmt"

	"github.com/ringo-ml/ringo/internal/engine"
	"github.com/ringo-ml/ringo/internal/wire"
	"github.com/ringo-ml/ringo/ring"
	"github.com/ringo-ml/ringo/tree"
)

// Layout maps a schedule's segment references onto byte ranges of the
// caller's buffers. A buffer of n elements cut into parts segments has
// segment k = ring.Split(n, parts, k).
type Layout struct {
	DstParts, SrcParts, TmpParts int
	StageTotal, StageParts       int // the element layout that Stage segments follow
}

// xsend and xrecv are a schedule's transfers in executable form: the
// schedule's own, numbered within their link (step), with the opening
// frames added.
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

// Lane is the ordered transfers of one operation in one direction of one
// link; a worker of that link runs it.
type Lane struct {
	Peer  int
	Send  bool
	items []int // indices into sends or recvs
}

// plan is an executable schedule: transfers, and their lanes.
type plan struct {
	local []ring.Local
	sends []xsend
	recvs []xrecv
	lanes []Lane
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
			p.lanes = append(p.lanes, Lane{Peer: peer, Send: send})
		}
		p.lanes[k].items = append(p.lanes[k].items, item)
		return len(p.lanes[k].items) - 1
	}
	recvPeers := map[int]bool{}
	for _, j := range openingFirst(len(p.sends), openSend) {
		s := &p.sends[j]
		s.step = add(s.peer, true, j)
		p.stage = p.stage || s.from.Buf == ring.Stage
	}
	for _, i := range openingFirst(len(p.recvs), openRecv) {
		r := &p.recvs[i]
		r.step = add(r.peer, false, i)
		recvPeers[r.peer] = true
	}
	if p.stage && len(recvPeers) > 1 {
		panic("stream: a schedule with staging slots must receive from one peer")
	}
	return p
}

// openingFirst lists 0..n-1 with, when open, the last (the opening frame)
// first.
func openingFirst(n int, open bool) []int {
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

// planOf takes a schedule (ring's format, which tree schedules share)
// into executable form.
func planOf(s ring.Schedule) *plan {
	p := &plan{local: s.Local}
	for _, x := range s.Sends {
		p.sends = append(p.sends, xsend{peer: x.Peer, from: x.From, after: x.After})
	}
	for _, x := range s.Recvs {
		p.recvs = append(p.recvs, xrecv{peer: x.Peer, kind: x.Kind, to: x.To, with: x.With, after: x.After, afterSend: x.AfterSend})
	}
	return p
}

// planKey names a cached plan.
type planKey struct {
	op    wire.Op
	sched engine.Schedule
	root  int
}

// Has reports whether the engine has schedule s for op.
func Has(op wire.Op, s engine.Schedule) bool {
	switch s {
	case engine.Ring:
		return true
	case engine.RecursiveDoubling:
		return op == wire.OpAllReduce || op == wire.OpBarrier
	case engine.DoubleBinaryTree:
		return op == wire.OpAllReduce
	case engine.BinomialTree:
		return op == wire.OpBroadcast || op == wire.OpReduce || op == wire.OpGather
	}
	return false
}

// schedule builds rank's part of op under schedule s.
func schedule(op wire.Op, s engine.Schedule, world, rank, root int) *plan {
	switch {
	case s == engine.Ring:
		return planOf(ringSchedule(op, world, rank, root))
	case s == engine.RecursiveDoubling && (op == wire.OpAllReduce || op == wire.OpBarrier):
		return planOf(tree.RecursiveDoubling(world, rank))
	case s == engine.DoubleBinaryTree && op == wire.OpAllReduce:
		return planOf(tree.DoubleBinaryTree(world, rank))
	case s == engine.BinomialTree && op == wire.OpBroadcast:
		return planOf(tree.BinomialBroadcast(world, rank, root))
	case s == engine.BinomialTree && op == wire.OpReduce:
		return planOf(tree.BinomialReduce(world, rank, root))
	case s == engine.BinomialTree && op == wire.OpGather:
		return planOf(tree.BinomialGather(world, rank, root))
	}
	panic(fmt.Sprintf("stream: no %s schedule for %s", s, op))
}

func ringSchedule(op wire.Op, world, rank, root int) ring.Schedule {
	switch op {
	case wire.OpAllReduce:
		return ring.AllReduce(world, rank)
	case wire.OpBroadcast:
		return ring.Broadcast(world, rank, root)
	case wire.OpReduce:
		return ring.Reduce(world, rank, root)
	case wire.OpGather:
		return ring.Gather(world, rank, root)
	case wire.OpAllGather:
		return ring.AllGather(world, rank)
	case wire.OpReduceScatter:
		return ring.ReduceScatter(world, rank)
	case wire.OpBarrier:
		return ring.Barrier(world, rank)
	case wire.OpSendRecv:
		return ring.SendRecv(world, rank)
	}
	panic("stream: no ring schedule for " + op.String())
}

// plan returns the cached plan of op under schedule s.
func (e *Engine) plan(op wire.Op, s engine.Schedule, root int) *plan {
	if s != engine.BinomialTree && s != engine.Ring {
		root = -1 // the schedules of every root are the same
	}
	k := planKey{op, s, root}
	if p, ok := e.plans[k]; ok {
		return p
	}
	p := newPlan(e.world, e.rank, func(rank int) *plan { return schedule(op, s, e.world, rank, root) })
	e.plans[k] = p
	return p
}

// Peers is every rank that a schedule of rank (ring, tree) talks to, for
// any root: the links a communicator makes up front. (A link is dialled by
// the lower rank of the pair when either side first needs it; were links
// made only on demand, a rank whose call does not match its peers' could
// wait for a link the others never ask for, instead of failing with
// ErrMismatch.)
func Peers(world, rank int, trees bool) []int {
	seen := make([]bool, world)
	seen[(rank+1)%world], seen[(rank+world-1)%world] = true, true
	add := func(s tree.Schedule) {
		for _, x := range s.Sends {
			seen[x.Peer] = true
		}
		for _, x := range s.Recvs {
			seen[x.Peer] = true
		}
	}
	if trees {
		add(tree.RecursiveDoubling(world, rank))
		add(tree.DoubleBinaryTree(world, rank))
		for root := range world {
			add(tree.BinomialBroadcast(world, rank, root))
			add(tree.BinomialReduce(world, rank, root))
			add(tree.BinomialGather(world, rank, root))
		}
	}
	var peers []int
	for p, ok := range seen {
		if ok && p != rank {
			peers = append(peers, p)
		}
	}
	return peers
}
