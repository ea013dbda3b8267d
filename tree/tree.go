// Package tree builds the pure tree schedules that the collective executor
// runs: binomial broadcast, reduce and gather, recursive-doubling allreduce
// and the double-binary-tree allreduce. Like package ring it performs no
// I/O: every function returns plain data describing what moves between
// ranks. It reuses ring's vocabulary (ring.Ref, ring.Buf, ring.RecvKind,
// ring.Local, ring.Split) but, unlike a ring schedule, a tree schedule talks
// to several peers.
//
// # Schedules and the matching rule
//
// A Schedule is one rank's part of a collective. The executor first performs
// the Local copies, then runs the Sends and Recvs. Sends to the same peer run
// in list order, as do Recvs from the same peer; transfers with different
// peers may run concurrently. The k-th Send from rank a to peer b is matched
// with the k-th Recv at rank b whose Peer is a: the two agree on their kind
// (a data segment, or an empty ack frame) and, for data, on the segment
// length, for every count.
//
// The executor cuts every data segment into equal chunks (the last one
// shorter) and pipelines with the dependency fields, chunk by chunk:
//
//   - Send.After = j: chunk c of the send waits for chunk c of Recvs[j] (an
//     ack send waits for the whole recv).
//   - Recv.After = j: chunk c of the recv is written only after chunk c of
//     Recvs[j] is complete (an ack recv: after the whole of Recvs[j]).
//   - Recv.AfterSend = i: chunk c of the recv is written only after chunk c
//     of Sends[i] has been sent.
//
// Nothing else orders transfers. Every schedule here keeps these invariants, which
// the tests check for every world 1..64 and every root:
//
//   - A data dependency links two transfers of the same segment (Send.From ==
//     Recvs[After].To, Recv.To == Recvs[After].To, Recv.To ==
//     Sends[AfterSend].From), so chunk c of one is chunk c of the other; a
//     data send never depends on an ack.
//   - A data Send depends (After) on the recv that last wrote its segment, if
//     any; every other recv writing that segment is ordered before that recv
//     or after the send (AfterSend, possibly through After chains and
//     per-peer order). So a send reads exactly the value its dependency
//     promises, in every interleaving.
//   - Two recvs writing the same segment are ordered by After, so a
//     reduction into a shared segment has a fixed operand order.
//   - Every rank of a world above 1 has at least one Recv, so no rank
//     finishes without reading a frame from a peer (and seeing its failure).
//
// Each rank's transfers form a fixed dataflow: a transfer that may run stays
// runnable until it runs, so whether a schedule completes does not depend on
// the interleaving, and the tests' randomised and eager interleavings show
// that none deadlocks.
//
// # Buffering
//
// BinomialBroadcast, BinomialReduce, BinomialGather and DoubleBinaryTree
// complete even over links that buffer nothing (a chunk leaves only as its
// receiver takes it): each of their waits is for a transfer that causally
// precedes the frame waited on. RecursiveDoubling's in-place exchange is
// different: both partners send chunk c of step j, and each writes the
// chunk c it receives only after its own chunk c has gone (AfterSend). It
// therefore needs either links that buffer one chunk per direction, or an
// executor that reads a RecvReduce payload aside (into scratch) before it
// waits for the recv's dependencies, which order only the write. The tests
// check both claims with a rendezvous model of the transport.
//
// # Segment layout per function
//
// Ref.Seg indexes a layout: the executor maps segment k of a buffer of n
// elements cut into parts parts to ring.Split(n, parts, k). Parts returns the
// part counts and TmpLen the length of Tmp, the executor-owned scratch
// buffer:
//
//	function            Dst parts          Src parts  Tmp parts  Tmp elements
//	BinomialBroadcast   1 (in place)       0          0          0
//	BinomialReduce      1 (root only)      1          1          len(src)
//	BinomialGather      world (root only)  1          world      world*len(src)
//	RecursiveDoubling   1 (in place)       0          0          0
//	DoubleBinaryTree    2 (in place)       0          0          0
//
// BinomialReduce's Dst has len(src) elements and BinomialGather's
// world*len(src) (block k = segment k = rank k's Src). Tmp is laid out like
// Src in BinomialReduce and like the root's Dst in BinomialGather; only
// interior non-root ranks touch it.
//
// With World == 1 a schedule has no Sends or Recvs: BinomialBroadcast,
// RecursiveDoubling and DoubleBinaryTree do nothing, and BinomialReduce and
// BinomialGather have the single Local copy Src[0] -> Dst[0].
//
// # Completion acks
//
// A rank that only sends would otherwise never read a frame, and would not
// learn that a peer failed. So BinomialBroadcast ends with a convergecast of
// acks (the root learns that every rank holds the data), and in
// BinomialReduce and BinomialGather every leaf receives an ack from its
// parent once the parent has received the leaf's data. The allreduce
// schedules need none: every rank receives data.
//
// # Reduction order and determinism
//
// ⊕ denotes the user's element-wise reduction op, assumed commutative but,
// for floating point, not associative. RecvReduce computes To = To ⊕
// payload. BinomialReduce and DoubleBinaryTree compute every reduced element
// exactly once, by a fixed bracketing that depends only on World (and root),
// and afterwards only copy it, so every rank that holds it holds bitwise
// identical data. RecursiveDoubling computes the result on every rank
// separately; the ranks' expressions are identical up to the order of the
// two operands of each ⊕ (a ⊕ b versus b ⊕ a), never up to re-bracketing,
// so commutativity alone makes their bits identical. The tests compare
// expressions in a canonical form that identifies a ⊕ b with b ⊕ a but not
// (a ⊕ b) ⊕ c with a ⊕ (b ⊕ c), and check that every rank's input is reduced
// exactly once.
//
// # Latency
//
// The table gives each schedule's completion time in frame steps (root 0),
// computed by the tests' simulator: every transfer takes one step and starts
// as soon as its dependencies (After, AfterSend, per-peer order) are done,
// transfers between different pairs of ranks overlap, and segments are not
// chunked. Completion acks count. With L = floor(log2 n): BinomialBroadcast
// takes 2L (down, then the acks up), BinomialReduce max(L, 2) (a leaf's ack
// takes 2), BinomialGather max(S, 2) for S the largest subtree below the
// root (about n/2 blocks through its busiest link), RecursiveDoubling L,
// plus 2 when n is not a power of two (fold in and out), and
// DoubleBinaryTree 2L (up, then down). Ring AllReduce takes 2(n-1), each of
// its steps waiting for the previous recv. For large buffers bandwidth
// matters instead: the binomial root sends (or receives) the whole buffer
// once per child, ceil(log2 n) times, and recursive doubling moves the whole
// buffer at every step, while DoubleBinaryTree, pipelined, sends and
// receives about twice the buffer per rank, like the ring.
//
//	world   Bcast  Reduce  Gather      RD     DBT ring AR
//	    2       2       2       2       1       2       2
//	    3       2       2       2       3       2       4
//	    4       4       2       2       2       4       6
//	    5       4       2       2       4       4       8
//	    7       4       2       3       4       4      12
//	    8       6       3       4       3       6      14
//	    9       6       3       4       5       6      16
//	   16       8       4       8       4       8      30
//	   17       8       4       8       6       8      32
//	   24       8       4       8       6       8      46
//	   32      10       5      16       5      10      62
//	   33      10       5      16       7      10      64
//	   48      10       5      16       7      10      94
//	   63      10       5      31       7      10     124
//	   64      12       6      32       6      12     126
//
// All constructors panic on a world size below 1 or a rank or root outside
// [0, world): these are programmer errors, and callers validate user input
// before building a schedule.
package tree

import (
	"fmt"
	"strings"

	"github.com/ringo-ml/ringo/ring"
)

// Send is one transfer to Peer. Sends to the same peer go in list order;
// sends to different peers may run concurrently.
type Send struct {
	Peer  int
	From  ring.Ref // Dst/Src/Tmp segment; Buf None = an empty ack frame
	After int      // index into Recvs: chunk c of this send waits for chunk c of Recvs[After] (an ack send waits for the whole recv); -1 none
}

// String formats the send, e.g. "send Dst[0] to 3 after R1".
func (s Send) String() string {
	what := "ack"
	if s.From.Buf != ring.None {
		what = s.From.String()
	}
	str := fmt.Sprintf("send %s to %d", what, s.Peer)
	if s.After >= 0 {
		str += fmt.Sprintf(" after R%d", s.After)
	}
	return str
}

// Recv is one transfer from Peer. Recvs from the same peer arrive in list
// order; recvs from different peers may run concurrently.
type Recv struct {
	Peer      int
	Kind      ring.RecvKind // RecvCopy: To = payload; RecvReduce: To = To ⊕ payload; RecvCopyReduce: To = payload ⊕ With; RecvAck: empty frame
	To, With  ring.Ref
	After     int // index into Recvs: chunk c of this recv is written only after chunk c of Recvs[After] is complete (for an ack, the whole recv); -1 none
	AfterSend int // index into Sends: chunk c of this recv is written only after chunk c of Sends[AfterSend] has been sent; -1 none
}

// String formats the recv, e.g. "recv Reduce Dst[0] from 2 after R0 after S1".
func (r Recv) String() string {
	var str string
	switch r.Kind {
	case ring.RecvAck:
		str = fmt.Sprintf("recv Ack from %d", r.Peer)
	case ring.RecvCopyReduce, ring.RecvStageReduce:
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

// Schedule is one rank's part of a collective: Local copies done first,
// before any transfer, then Sends and Recvs (see the package documentation).
type Schedule struct {
	World, Rank int
	Local       []ring.Local // copies done first, before any transfer
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

// Op names a schedule constructor of this package, for Parts, TmpLen and
// Build.
type Op uint8

const (
	OpBinomialBroadcast Op = iota + 1
	OpBinomialReduce
	OpBinomialGather
	OpRecursiveDoubling
	OpDoubleBinaryTree
)

// String returns the name of the op's constructor.
func (o Op) String() string {
	switch o {
	case OpBinomialBroadcast:
		return "BinomialBroadcast"
	case OpBinomialReduce:
		return "BinomialReduce"
	case OpBinomialGather:
		return "BinomialGather"
	case OpRecursiveDoubling:
		return "RecursiveDoubling"
	case OpDoubleBinaryTree:
		return "DoubleBinaryTree"
	}
	return fmt.Sprintf("Op(%d)", uint8(o))
}

// Rooted reports whether the op's constructor takes a root.
func (o Op) Rooted() bool {
	return o == OpBinomialBroadcast || o == OpBinomialReduce || o == OpBinomialGather
}

// Parts returns how many parts the op's schedules cut Dst, Src and Tmp into
// (0: the buffer is not used): segment k of a buffer of n elements is
// ring.Split(n, parts, k). Dst of BinomialReduce and BinomialGather is used
// at the root only, Tmp at interior non-root ranks only. It panics on an
// unknown op or a world size below 1.
func Parts(op Op, world int) (dst, src, tmp int) {
	if world < 1 {
		panic(fmt.Sprintf("tree: Parts(%v): world size %d < 1", op, world))
	}
	switch op {
	case OpBinomialBroadcast, OpRecursiveDoubling:
		return 1, 0, 0
	case OpDoubleBinaryTree:
		return 2, 0, 0
	case OpBinomialReduce:
		return 1, 1, 1
	case OpBinomialGather:
		return world, 1, world
	}
	panic(fmt.Sprintf("tree: Parts: unknown op %v", op))
}

// TmpLen returns the length in elements of the Tmp buffer that the op's
// schedules use, where count is len(src) for BinomialReduce and
// BinomialGather (the only ops that use Tmp; 0 for the others). It panics on
// an unknown op, a world size below 1 or a negative count.
func TmpLen(op Op, world, count int) int {
	if count < 0 {
		panic(fmt.Sprintf("tree: TmpLen(%v): count %d < 0", op, count))
	}
	_, _, parts := Parts(op, world)
	switch op {
	case OpBinomialReduce:
		return count
	case OpBinomialGather:
		return parts * count
	}
	return 0
}

// Build returns the op's schedule for rank; the unrooted ops ignore root. It
// panics on an unknown op and as the op's constructor does.
func Build(op Op, world, rank, root int) Schedule {
	switch op {
	case OpBinomialBroadcast:
		return BinomialBroadcast(world, rank, root)
	case OpBinomialReduce:
		return BinomialReduce(world, rank, root)
	case OpBinomialGather:
		return BinomialGather(world, rank, root)
	case OpRecursiveDoubling:
		return RecursiveDoubling(world, rank)
	case OpDoubleBinaryTree:
		return DoubleBinaryTree(world, rank)
	}
	panic(fmt.Sprintf("tree: Build: unknown op %v", op))
}
