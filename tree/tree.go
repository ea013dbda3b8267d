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
	"github.com/ringo-ml/ringo/ring"
)

// Schedule, Send and Recv are package ring's: the one schedule format the
// executor runs. Tree schedules name each transfer's peer, and use
// Recv.After and Recv.AfterSend for the orders a ring schedule gets from
// its single pair of links.
type (
	Schedule = ring.Schedule
	Send     = ring.Send
	Recv     = ring.Recv
)
