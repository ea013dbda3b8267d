package collective

import (
	"fmt"
	"strings"

	"github.com/ringo-ml/ringo/internal/engine"

	"github.com/ringo-ml/ringo/internal/reduce"
	"github.com/ringo-ml/ringo/internal/wire"
)

// ReduceOp is a reduction operator.
type ReduceOp uint8

// Reduction operators. Avg is Sum followed by division by the world size.
const (
	Sum ReduceOp = iota + 1
	Prod
	Min
	Max
	Avg
)

func (o ReduceOp) String() string {
	switch o {
	case Sum:
		return "sum"
	case Prod:
		return "prod"
	case Min:
		return "min"
	case Max:
		return "max"
	case Avg:
		return "avg"
	}
	return fmt.Sprintf("ReduceOp(%d)", uint8(o))
}

func (o ReduceOp) valid() bool { return o >= Sum && o <= Avg }

// kernel is the elementwise operator that combines partial results.
func (o ReduceOp) kernel() reduce.Operator {
	switch o {
	case Prod:
		return reduce.Prod
	case Min:
		return reduce.Min
	case Max:
		return reduce.Max
	}
	return reduce.Sum // Sum and Avg
}

func (o ReduceOp) wire() wire.ReduceOp {
	switch o {
	case Sum:
		return wire.RedSum
	case Prod:
		return wire.RedProd
	case Min:
		return wire.RedMin
	case Max:
		return wire.RedMax
	case Avg:
		return wire.RedAvg
	}
	return wire.RedNone
}

// Operation names a collective operation, for Explain.
type Operation uint8

// Operations.
const (
	OpAllReduce     = Operation(wire.OpAllReduce)
	OpBroadcast     = Operation(wire.OpBroadcast)
	OpReduce        = Operation(wire.OpReduce)
	OpGather        = Operation(wire.OpGather)
	OpAllGather     = Operation(wire.OpAllGather)
	OpReduceScatter = Operation(wire.OpReduceScatter)
	OpBarrier       = Operation(wire.OpBarrier)
	OpSendRecv      = Operation(wire.OpSendRecv)
)

// String is the operation's method name, e.g. "AllReduce".
func (o Operation) String() string { return wire.Op(o).String() }

// ParseOperation reads an operation's name in any case: allreduce,
// broadcast, reduce, gather, allgather, reducescatter, barrier,
// sendrecv.
func ParseOperation(s string) (Operation, error) {
	for o := OpAllReduce; o <= OpSendRecv; o++ {
		if strings.EqualFold(o.String(), s) {
			return o, nil
		}
	}
	return 0, fmt.Errorf("%w: unknown operation %q", ErrInvalid, s)
}

// Algorithm selects how a collective moves data.
type Algorithm = engine.Algorithm

// Algorithms.
const (
	// Auto lets the communicator choose.
	Auto = engine.AlgoAuto
	// Ring runs the pipelined ring schedules of package ring.
	Ring = engine.AlgoRing
	// Tree runs the tree schedules of package tree (recursive doubling,
	// double binary tree, binomial trees), where a call has one.
	Tree = engine.AlgoTree
)

// Schedule is one schedule of an Algorithm: what Choice, Explain and
// Status name.
type Schedule = engine.Schedule

// Schedules.
const (
	ScheduleRing              = engine.Ring              // the pipelined ring (package ring)
	ScheduleRecursiveDoubling = engine.RecursiveDoubling // a tree schedule for AllReduce and Barrier
	ScheduleDoubleBinaryTree  = engine.DoubleBinaryTree  // a tree schedule for AllReduce
	ScheduleBinomialTree      = engine.BinomialTree      // a tree schedule for Broadcast, Reduce, Gather
	ScheduleSharedMemory      = engine.SharedMemory      // the shared-memory engine's windows
)

// Errors that callers branch on with errors.Is. Every error returned by an
// operation is an *OpError wrapping one of them (or a context error).
var (
	// ErrMismatch: ranks called different collectives (or the same one with
	// different types, counts, operators or roots) at the same point in
	// their sequences. The message names both calls.
	ErrMismatch = engine.ErrMismatch
	// ErrPeerLost: a peer died, closed its communicator, or its connection
	// failed. The message names the peer.
	ErrPeerLost = engine.ErrPeerLost
	// ErrAborted: a peer aborted the operation for a reason of its own
	// (its context expired, it was cancelled, or it hit a protocol error).
	ErrAborted = engine.ErrAborted
	// ErrClosed: this rank's communicator was closed.
	ErrClosed = engine.ErrClosed
	// ErrPoisoned: an earlier operation failed, so the communicator can no
	// longer be used; the error also wraps that first failure.
	ErrPoisoned = engine.ErrPoisoned
	// ErrInvalid: bad arguments (nil or mismatched buffers, root out of
	// range, unknown operator); nothing was sent.
	ErrInvalid = engine.ErrInvalid
	// ErrProtocol: a peer sent a frame that breaks the protocol (malformed,
	// or of the wrong kind), or bytes on a lane were altered on the way.
	ErrProtocol = engine.ErrProtocol
)

// OpError describes a failed operation.
type OpError struct {
	Rank int    // the rank that returned the error
	Call string // the call, e.g. "AllReduce(float32[1024], sum) #17"
	Err  error  // what went wrong; wraps one of the Err* values or a context error
}

func (e *OpError) Error() string {
	return fmt.Sprintf("collective: rank %d: %s: %v", e.Rank, e.Call, e.Err)
}

func (e *OpError) Unwrap() error { return e.Err }
