// Package ring builds the pure ring schedules that the collective executor
// runs. It performs no I/O and depends only on the standard library: every
// function here returns plain data describing WHAT moves between ranks, never
// how bytes are transported.
//
// # Topology
//
// The world's ranks 0..World-1 form a ring. Every rank has exactly two links:
// it sends frames only to Next = (Rank+1) % World and receives frames only
// from Prev = (Rank-1+World) % World. With World == 2 both links reach the
// same peer, but the two directions are independent FIFO byte streams.
//
// The Schedule format is not the ring's alone: each Send and Recv names
// its Peer, and a Recv may wait for another Recv (After) or Send
// (AfterSend), so that package tree builds its schedules in it too and the
// executor runs one format. A ring schedule's sends all go to Next, its
// recvs all come from Prev in list order (After is -1), and AfterSend
// orders a recv after the send of the segment it overwrites (see linked).
//
// # Schedules and the matching rule
//
// A Schedule is one rank's part of a collective. The executor first performs
// the Local copies, then runs Sends in order in one goroutine and Recvs in
// order in another. Send i of rank r is matched with Recv i of rank Next(r):
// the same index i, because frames are FIFO per link. A matched pair agrees
// on its kind (a data segment or an empty ack/token frame) and, for data, on
// the segment length.
//
// A Send with After >= 0 may not start before Recvs[After] has made progress:
// the executor cuts every segment into equal-size chunks (the last one
// shorter) and chunk c of a data Send waits only for chunk c of
// Recvs[After]; an ack Send waits for Recvs[After] wholly. In every schedule
// of this package a data Send that depends on a data Recv reads exactly the
// segment that Recv wrote (Send.From == Recv.To), and that Recv is the last
// one to write the segment, so the chunk-by-chunk pipelining is safe. A Send
// that reads a segment written by a Recv always depends (After) on that
// Recv.
//
// Stage is a per-rank FIFO of transient slots: every RecvStage or
// RecvStageReduce fills a new slot, and each slot is consumed by exactly one
// later Send whose From.Buf is Stage, in FIFO order. Such a Send's After is
// the index of the Recv that filled the slot it consumes, and From.Seg names
// the segment the slot holds.
//
// Tmp is a per-rank scratch buffer that the executor owns, laid out like Src
// (same segments). Unlike Stage it is a whole buffer, not a bounded pool of
// slots, so a Recv into Tmp never waits for space. Only ReduceScatter uses
// it: there every rank sends and receives at every step, and with bounded
// staging slots a rank blocked sending its (unstaged) step-0 segment to a
// Next that waits for a free slot could close a cycle around the ring under
// a flow-controlled transport. Each Tmp segment is written by exactly one
// RecvCopyReduce and then read by the one Send that depends on it. Stage is
// used only by the chains of Reduce and Gather, which end at the root, and
// the root always drains.
//
// # Segment layout per op
//
// Ref.Seg indexes the op's segment layout:
//
//   - AllReduce: in place on Dst; Dst segment k is part k of
//     Split(len(dst), World, k).
//   - ReduceScatter: Src holds World blocks of len(dst) elements each (Src
//     segment k = block k); Dst segment 0 is the whole dst. Tmp has Src's
//     layout: Tmp segment k holds a partial reduction of block k. It is the
//     only op that uses Tmp, and it uses no Stage.
//   - AllGather: Src segment 0 is the whole src; Dst segment k is block k of
//     len(src) elements.
//   - Broadcast: in place; Dst segment 0 is the whole buffer.
//   - Reduce: Src segment 0 is the whole src (every rank); Dst segment 0 is
//     the whole dst, which only the root uses. Stage segment 0 holds a
//     partial reduction.
//   - Gather: Src segment 0 is the whole src; Dst segment k is block k of
//     len(src) elements at the root only. Stage segment k holds block k.
//   - SendRecv: Src segment 0 and Dst segment 0 are the whole buffers.
//   - Barrier: no data, only ack frames.
//
// With World == 1 a schedule has no Sends or Recvs: AllReduce, Broadcast and
// Barrier do nothing, and ReduceScatter, AllGather, Reduce, Gather and
// SendRecv have the single Local copy Src[0] -> Dst[0].
//
// # Reduction order and determinism
//
// ⊕ denotes the user's element-wise reduction op. It is assumed commutative
// but, for floating point, not associative, so the order of application
// matters. The operand order of each step is fixed by the RecvKind: for
// RecvReduce the existing segment is the left operand (To = To ⊕ payload);
// for RecvStageReduce and RecvCopyReduce the received payload is the left
// operand (payload ⊕ With), whether To is Dst, Tmp or a staging slot. Writing x_r for rank r's contribution and taking
// rank arithmetic mod World:
//
//   - AllReduce, segment k: reduced along the chain k -> k+1 -> ... -> k-1,
//     giving x_{k-1} ⊕ (x_{k-2} ⊕ (... ⊕ (x_{k+1} ⊕ x_k))) at rank k-1,
//     which is then only copied around the ring.
//   - ReduceScatter, block k: reduced along the chain k+1 -> k+2 -> ... -> k,
//     giving ((x_{k+1} ⊕ x_{k+2}) ⊕ ...) ⊕ x_k at rank k.
//   - Reduce: as ReduceScatter with k = root:
//     ((x_{root+1} ⊕ x_{root+2}) ⊕ ...) ⊕ x_root at the root.
//
// Each reduced segment is computed exactly once, by a single chain, and is
// afterwards only copied, so every rank that ends up holding it holds
// bitwise-identical data. The order depends only on World (and root), never
// on timing or chunk size, so results are also reproducible run to run.
//
// All constructors panic on a world size below 1 or a rank or root outside
// [0, world): these are programmer errors, and callers validate user input
// before building a schedule.
package ring

import (
	"fmt"
	"strings"
)

// Buf names one of the buffers a schedule refers to.
type Buf uint8

const (
	None  Buf = iota // no buffer (an empty "ack"/token frame)
	Dst              // the caller's output buffer (in-place ops: also the input)
	Src              // the caller's input buffer of out-of-place ops; never written
	Stage            // a transient staging slot: data received only to be forwarded (FIFO per rank)
	Tmp              // a scratch buffer owned by the executor, laid out like Src (same segments); holds partial reductions to be forwarded
)

// String returns the buffer's name.
func (b Buf) String() string {
	switch b {
	case None:
		return "None"
	case Dst:
		return "Dst"
	case Src:
		return "Src"
	case Stage:
		return "Stage"
	case Tmp:
		return "Tmp"
	}
	return fmt.Sprintf("Buf(%d)", uint8(b))
}

// Ref names a segment of a buffer. Seg indexes the op's segment layout (see
// the package documentation).
type Ref struct {
	Buf Buf
	Seg int
}

// String formats the reference as "Buf[Seg]", or "None".
func (r Ref) String() string {
	if r.Buf == None && r.Seg == 0 {
		return "None"
	}
	return fmt.Sprintf("%v[%d]", r.Buf, r.Seg)
}

// RecvKind says what a Recv does with the received payload.
type RecvKind uint8

const (
	RecvCopy        RecvKind = iota + 1 // To(Dst seg) = payload
	RecvReduce                          // To(Dst seg) = To ⊕ payload
	RecvStage                           // a new staging slot = payload (To = Ref{Stage, seg})
	RecvStageReduce                     // a new staging slot = payload ⊕ With(Src seg)   (To = Ref{Stage, seg})
	RecvCopyReduce                      // To(Dst or Tmp seg) = payload ⊕ With(Src seg)
	RecvAck                             // an empty frame (completion token), To/With zero
)

// String returns the kind's name.
func (k RecvKind) String() string {
	switch k {
	case RecvCopy:
		return "Copy"
	case RecvReduce:
		return "Reduce"
	case RecvStage:
		return "Stage"
	case RecvStageReduce:
		return "StageReduce"
	case RecvCopyReduce:
		return "CopyReduce"
	case RecvAck:
		return "Ack"
	}
	return fmt.Sprintf("RecvKind(%d)", uint8(k))
}

// Send is one transfer to Peer. Sends to the same peer go in list order;
// sends to different peers may run concurrently. In a ring schedule every
// Send goes to Next.
type Send struct {
	Peer  int
	From  Ref // Dst/Src/Tmp: that segment; Stage: the OLDEST staged slot (FIFO), Seg names the segment it holds; None: an empty ack/token frame
	After int // index into Recvs: chunk c of this send waits for chunk c of Recvs[After] (an ack send waits for the whole recv); -1 none
}

// String formats the send, e.g. "send Dst[3] to 1 after R2".
func (s Send) String() string {
	what := "ack"
	if s.From.Buf != None {
		what = s.From.String()
	}
	str := fmt.Sprintf("send %s to %d", what, s.Peer)
	if s.After >= 0 {
		str += fmt.Sprintf(" after R%d", s.After)
	}
	return str
}

// Recv is one transfer from Peer. Recvs from the same peer arrive in list
// order; recvs from different peers may run concurrently. In a ring
// schedule every Recv comes from Prev.
type Recv struct {
	Peer      int
	Kind      RecvKind
	To        Ref
	With      Ref // Src segment for RecvStageReduce / RecvCopyReduce; zero otherwise
	After     int // index into Recvs: chunk c of this recv is written only after chunk c of Recvs[After] is complete (for an ack, the whole recv); -1 none
	AfterSend int // index into Sends: chunk c of this recv is written only after chunk c of Sends[AfterSend] has been sent; -1 none
}

// String formats the recv, e.g. "recv CopyReduce Dst[0] with Src[2] from
// 3 after S1".
func (r Recv) String() string {
	var str string
	switch r.Kind {
	case RecvAck:
		str = fmt.Sprintf("recv Ack from %d", r.Peer)
	case RecvStageReduce, RecvCopyReduce:
		str = fmt.Sprintf("recv %v %v with %v from %d", r.Kind, r.To, r.With, r.Peer)
	default:
		str = fmt.Sprintf("recv %v %v from %d", r.Kind, r.To, r.Peer)
	}
	if r.After >= 0 {
		str += fmt.Sprintf(" after R%d", r.After)
	}
	if r.AfterSend >= 0 {
		str += fmt.Sprintf(" after S%d", r.AfterSend)
	}
	return str
}

// Local is a copy a rank does by itself before any transfer (e.g. its own
// block into Dst).
type Local struct{ From, To Ref }

// Schedule is one rank's part of a collective: Local copies done first,
// then Sends and Recvs. It is the one format the executor runs: package
// tree builds its schedules in it too, with transfers to and from other
// peers than the ring neighbours.
type Schedule struct {
	World, Rank int
	Local       []Local
	Sends       []Send
	Recvs       []Recv
}

// String renders the schedule on several lines, for debugging.
func (s Schedule) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "rank %d/%d\n", s.Rank, s.World)
	for _, l := range s.Local {
		fmt.Fprintf(&b, "  local %v -> %v\n", l.From, l.To)
	}
	for i, x := range s.Sends {
		fmt.Fprintf(&b, "  S%d: %v\n", i, x)
	}
	for i, x := range s.Recvs {
		fmt.Fprintf(&b, "  R%d: %v\n", i, x)
	}
	return b.String()
}

// Split returns the offset and length of part i when count elements are cut
// into parts balanced parts (the first count%parts parts get one extra
// element). Parts may be empty. It panics if count < 0, parts < 1 or i is
// outside [0, parts).
func Split(count, parts, i int) (off, n int) {
	if count < 0 || parts < 1 || i < 0 || i >= parts {
		panic(fmt.Sprintf("ring: Split(count=%d, parts=%d, i=%d): need count >= 0, parts >= 1, 0 <= i < parts", count, parts, i))
	}
	q, rem := count/parts, count%parts
	if i < rem {
		return i * (q + 1), q + 1
	}
	return rem*(q+1) + (i-rem)*q, q
}

// mod returns a mod n in [0, n).
func mod(a, n int) int {
	a %= n
	if a < 0 {
		a += n
	}
	return a
}

func check(op string, world, rank int) {
	if world < 1 {
		panic(fmt.Sprintf("ring: %s: world size %d < 1", op, world))
	}
	if rank < 0 || rank >= world {
		panic(fmt.Sprintf("ring: %s: rank %d out of range [0, %d)", op, rank, world))
	}
}

func checkRoot(op string, world, rank, root int) {
	check(op, world, rank)
	if root < 0 || root >= world {
		panic(fmt.Sprintf("ring: %s: root %d out of range [0, %d)", op, root, world))
	}
}

// linked finishes a ring schedule: every send goes to Next and every
// recv comes from Prev, in list order (no Recv.After), and a recv that
// overwrites a segment this rank sent earlier in the operation
// (AllReduce's gather phase overwrites segments the reduce phase sent)
// follows the last such send chunk by chunk (AfterSend). The data it
// receives already depends on that send through the ring, but only
// through the network; this makes the order local and explicit (and
// visible to a race detector). Only sends that depend on an earlier recv
// (or none) count: a later send of the segment forwards what this recv or
// a later one writes.
func linked(s Schedule) Schedule {
	next, prev := (s.Rank+1)%s.World, (s.Rank-1+s.World)%s.World
	for i := range s.Sends {
		s.Sends[i].Peer = next
	}
	for i := range s.Recvs {
		rv := &s.Recvs[i]
		rv.Peer, rv.After, rv.AfterSend = prev, -1, -1
		if rv.To.Buf != Dst && rv.To.Buf != Tmp {
			continue
		}
		for j, sd := range s.Sends {
			if sd.From == rv.To && sd.After < i {
				rv.AfterSend = j
			}
		}
	}
	return s
}

func newSchedule(world, rank int) Schedule {
	return Schedule{World: world, Rank: rank}
}

func dst(seg int) Ref   { return Ref{Dst, seg} }
func src(seg int) Ref   { return Ref{Src, seg} }
func stage(seg int) Ref { return Ref{Stage, seg} }
func tmp(seg int) Ref   { return Ref{Tmp, seg} }

// AllReduce reduces Dst in place over all ranks: afterwards every rank's Dst
// holds the element-wise reduction of every rank's Dst. Dst segment k is
// part k of Split(len(dst), world, k).
//
// It is a reduce-scatter (steps s = 0..world-2: send segment (r-s) mod world,
// RecvReduce segment (r-s-1) mod world) followed by an all-gather (send the
// segment completed by the previous recv, RecvCopy the next one): 2(world-1)
// sends and recvs. Segment k is reduced along k -> k+1 -> ... -> k-1.
func AllReduce(world, rank int) Schedule {
	check("AllReduce", world, rank)
	s := newSchedule(world, rank)
	if world == 1 {
		return linked(s)
	}
	n := world
	s.Sends = make([]Send, 0, 2*(n-1))
	s.Recvs = make([]Recv, 0, 2*(n-1))
	// Reduce-scatter: after step n-2 segment rank+1 is complete here.
	for st := 0; st < n-1; st++ {
		s.Sends = append(s.Sends, Send{From: dst(mod(rank-st, n)), After: st - 1})
		s.Recvs = append(s.Recvs, Recv{Kind: RecvReduce, To: dst(mod(rank-st-1, n))})
	}
	// All-gather: forward the segment completed (or copied) by the previous recv.
	for st := 0; st < n-1; st++ {
		s.Sends = append(s.Sends, Send{From: dst(mod(rank+1-st, n)), After: n - 2 + st})
		s.Recvs = append(s.Recvs, Recv{Kind: RecvCopy, To: dst(mod(rank-st, n))})
	}
	return linked(s)
}

// ReduceScatter reduces world blocks out of place: Src holds world blocks of
// len(dst) elements (Src segment k = block k) and rank r ends with block r,
// reduced over all ranks, in Dst segment 0. Src is never written.
//
// Block k travels k+1 -> k+2 -> ... -> k: rank k+1 sends its Src block k,
// every middle hop RecvCopyReduce's it with its own Src block k into its Tmp
// segment k and forwards that segment, and rank k RecvCopyReduce's it into
// Dst. At step s rank r sends block r-1-s (Src at step 0, Tmp afterwards,
// after the recv of step s-1 that wrote it) and receives block r-2-s (into
// Tmp, or into Dst at the last step s = world-2, where the block is r).
// world-1 sends and recvs. It uses no Stage: see Tmp in the package
// documentation for why.
func ReduceScatter(world, rank int) Schedule {
	check("ReduceScatter", world, rank)
	s := newSchedule(world, rank)
	if world == 1 {
		s.Local = []Local{{From: src(0), To: dst(0)}}
		return linked(s)
	}
	n := world
	s.Sends = make([]Send, 0, n-1)
	s.Recvs = make([]Recv, 0, n-1)
	for st := 0; st < n-1; st++ {
		// At step st this rank sends block rank-1-st and receives block rank-2-st.
		if st == 0 {
			s.Sends = append(s.Sends, Send{From: src(mod(rank-1, n)), After: -1})
		} else {
			s.Sends = append(s.Sends, Send{From: tmp(mod(rank-1-st, n)), After: st - 1})
		}
		b := mod(rank-2-st, n)
		if st == n-2 { // b == rank: the last hop of this rank's own block
			s.Recvs = append(s.Recvs, Recv{Kind: RecvCopyReduce, To: dst(0), With: src(b)})
		} else {
			s.Recvs = append(s.Recvs, Recv{Kind: RecvCopyReduce, To: tmp(b), With: src(b)})
		}
	}
	return linked(s)
}

// AllGather concatenates every rank's Src: afterwards Dst segment k (len(src)
// elements) holds rank k's Src on every rank. The rank's own block is copied
// locally; then at step s = 0..world-2 it sends block (r-s) mod world (its
// Src at step 0) and RecvCopy's block (r-s-1) mod world. world-1 sends and
// recvs.
func AllGather(world, rank int) Schedule {
	check("AllGather", world, rank)
	s := newSchedule(world, rank)
	s.Local = []Local{{From: src(0), To: dst(rank)}}
	if world == 1 {
		return linked(s)
	}
	n := world
	s.Sends = make([]Send, 0, n-1)
	s.Recvs = make([]Recv, 0, n-1)
	for st := 0; st < n-1; st++ {
		if st == 0 {
			s.Sends = append(s.Sends, Send{From: src(0), After: -1})
		} else {
			s.Sends = append(s.Sends, Send{From: dst(mod(rank-st, n)), After: st - 1})
		}
		s.Recvs = append(s.Recvs, Recv{Kind: RecvCopy, To: dst(mod(rank-st-1, n))})
	}
	return linked(s)
}

// Broadcast copies the root's Dst (in place, segment 0 = the whole buffer)
// to every rank along the pipelined chain root -> root+1 -> ... -> root-1.
// Rank root-1 then sends an ack to the root, so that the root learns of
// completion (or failure).
func Broadcast(world, rank, root int) Schedule {
	checkRoot("Broadcast", world, rank, root)
	s := newSchedule(world, rank)
	if world == 1 {
		return linked(s)
	}
	switch mod(rank-root, world) {
	case 0:
		s.Sends = []Send{{From: dst(0), After: -1}}
		s.Recvs = []Recv{{Kind: RecvAck}}
	case world - 1:
		s.Sends = []Send{{From: Ref{}, After: 0}}
		s.Recvs = []Recv{{Kind: RecvCopy, To: dst(0)}}
	default:
		s.Sends = []Send{{From: dst(0), After: 0}}
		s.Recvs = []Recv{{Kind: RecvCopy, To: dst(0)}}
	}
	return linked(s)
}

// Reduce reduces every rank's Src (segment 0 = the whole src) into the
// root's Dst (segment 0 = the whole dst; non-roots' Dst is not used) along
// the chain root+1 -> root+2 -> ... -> root: rank root+1 sends its Src,
// middle ranks RecvStageReduce with their Src and forward the staged slot,
// and the root RecvCopyReduce's into Dst. The root then sends an ack to
// root+1 (its Next).
func Reduce(world, rank, root int) Schedule {
	checkRoot("Reduce", world, rank, root)
	s := newSchedule(world, rank)
	if world == 1 {
		s.Local = []Local{{From: src(0), To: dst(0)}}
		return linked(s)
	}
	switch mod(rank-root, world) {
	case 1: // chain start
		s.Sends = []Send{{From: src(0), After: -1}}
		s.Recvs = []Recv{{Kind: RecvAck}}
	case 0: // root
		s.Sends = []Send{{From: Ref{}, After: 0}}
		s.Recvs = []Recv{{Kind: RecvCopyReduce, To: dst(0), With: src(0)}}
	default:
		s.Sends = []Send{{From: stage(0), After: 0}}
		s.Recvs = []Recv{{Kind: RecvStageReduce, To: stage(0), With: src(0)}}
	}
	return linked(s)
}

// Gather collects every rank's Src (segment 0 = the whole src) into the
// root's Dst, block k (len(src) elements) = rank k's Src; non-roots' Dst is
// not used. Data flows along the ring towards the root: each non-root sends
// its own Src first, then forwards (RecvStage, Send From Stage) what it
// received, in the order received. The root copies its own Src into Dst
// block root (Local) and RecvCopy's blocks root-1, root-2, ..., root+1; it
// then sends an ack to root+1.
func Gather(world, rank, root int) Schedule {
	checkRoot("Gather", world, rank, root)
	s := newSchedule(world, rank)
	n := world
	if rank == root {
		s.Local = []Local{{From: src(0), To: dst(root)}}
		if n == 1 {
			return linked(s)
		}
		s.Recvs = make([]Recv, 0, n-1)
		for i := 0; i < n-1; i++ {
			s.Recvs = append(s.Recvs, Recv{Kind: RecvCopy, To: dst(mod(root-1-i, n))})
		}
		s.Sends = []Send{{From: Ref{}, After: n - 2}}
		return linked(s)
	}
	// d = distance to the root; this rank receives the blocks of the
	// n-1-d ranks further away, nearest first.
	d := mod(root-rank, n)
	m := n - 1 - d
	s.Sends = make([]Send, 0, m+1)
	s.Recvs = make([]Recv, 0, m+1)
	s.Sends = append(s.Sends, Send{From: src(0), After: -1})
	for i := 0; i < m; i++ {
		b := mod(rank-1-i, n)
		s.Recvs = append(s.Recvs, Recv{Kind: RecvStage, To: stage(b)})
		s.Sends = append(s.Sends, Send{From: stage(b), After: i})
	}
	if d == n-1 { // rank root+1: the root's Next receives its ack
		s.Recvs = append(s.Recvs, Recv{Kind: RecvAck})
	}
	return linked(s)
}

// Barrier returns world-1 token steps: step s sends an ack (after the ack of
// step s-1 has arrived) and receives an ack. After step s a rank has
// transitively heard from the s+1 ranks before it, so when the last recv
// completes every rank has entered the barrier.
func Barrier(world, rank int) Schedule {
	check("Barrier", world, rank)
	s := newSchedule(world, rank)
	if world == 1 {
		return linked(s)
	}
	s.Sends = make([]Send, world-1)
	s.Recvs = make([]Recv, world-1)
	for st := range world - 1 {
		s.Sends[st] = Send{From: Ref{}, After: st - 1}
		s.Recvs[st] = Recv{Kind: RecvAck}
	}
	return linked(s)
}

// SendRecv is a benchmark pattern: every rank sends its Src segment 0 to
// Next and RecvCopy's Prev's into its Dst segment 0. With world == 1 the rank
// is its own Prev, so it is a Local copy of Src into Dst.
func SendRecv(world, rank int) Schedule {
	check("SendRecv", world, rank)
	s := newSchedule(world, rank)
	if world == 1 {
		s.Local = []Local{{From: src(0), To: dst(0)}}
		return linked(s)
	}
	s.Sends = []Send{{From: src(0), After: -1}}
	s.Recvs = []Recv{{Kind: RecvCopy, To: dst(0)}}
	return linked(s)
}
