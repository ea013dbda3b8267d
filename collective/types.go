package collective

import (
	"errors"
	"fmt"

	"github.com/ringo-ml/ringo/internal/reduce"
	"github.com/ringo-ml/ringo/internal/wire"
)

// Op is a reduction operator.
type Op uint8

// Reduction operators. Avg is Sum followed by division by the world size.
const (
	Sum Op = iota + 1
	Prod
	Min
	Max
	Avg
)

func (o Op) String() string {
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
	return fmt.Sprintf("Op(%d)", uint8(o))
}

func (o Op) valid() bool { return o >= Sum && o <= Avg }

// kernel is the elementwise operator that combines partial results.
func (o Op) kernel() reduce.Op {
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

func (o Op) wire() wire.ReduceOp {
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

// Algorithm selects how a collective moves data.
type Algorithm uint8

const (
	// Auto lets the communicator choose.
	Auto Algorithm = iota
	// Ring runs the pipelined ring schedules of package ring.
	Ring
	// Tree runs tree schedules (not available yet: calls fail with ErrInvalid).
	Tree
)

func (a Algorithm) String() string {
	switch a {
	case Auto:
		return "auto"
	case Ring:
		return "ring"
	case Tree:
		return "tree"
	}
	return fmt.Sprintf("Algorithm(%d)", uint8(a))
}

// Errors that callers branch on with errors.Is. Every error returned by an
// operation is an *OpError wrapping one of them (or a context error).
var (
	// ErrMismatch: ranks called different collectives (or the same one with
	// different types, counts, operators or roots) at the same point in
	// their sequences. The message names both calls.
	ErrMismatch = errors.New("mismatched collective calls")
	// ErrPeerLost: a peer died, closed its communicator, or its connection
	// failed. The message names the peer.
	ErrPeerLost = errors.New("peer lost")
	// ErrAborted: a peer aborted the operation for a reason of its own
	// (its context expired, it was cancelled, or it hit a protocol error).
	ErrAborted = errors.New("aborted by a peer")
	// ErrClosed: this rank's communicator was closed.
	ErrClosed = errors.New("communicator closed")
	// ErrPoisoned: an earlier operation failed, so the communicator can no
	// longer be used; the error also wraps that first failure.
	ErrPoisoned = errors.New("communicator unusable after an earlier failure")
	// ErrInvalid: bad arguments (nil or mismatched buffers, root out of
	// range, unknown operator); nothing was sent.
	ErrInvalid = errors.New("invalid argument")
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

// describe formats a call the way error messages name it.
func describe(h *wire.Header) string {
	var args string
	switch h.Op {
	case wire.OpBarrier:
	case wire.OpBroadcast:
		args = fmt.Sprintf("%s[%d], root %d", h.DType, h.Count, h.Root)
	case wire.OpGather:
		args = fmt.Sprintf("%s[%d], root %d", h.DType, h.Count, h.Root)
	case wire.OpReduce:
		args = fmt.Sprintf("%s[%d], %s, root %d", h.DType, h.Count, h.Reduce, h.Root)
	case wire.OpAllReduce, wire.OpReduceScatter:
		args = fmt.Sprintf("%s[%d], %s", h.DType, h.Count, h.Reduce)
	default:
		args = fmt.Sprintf("%s[%d]", h.DType, h.Count)
	}
	return fmt.Sprintf("%s(%s) #%d", h.Op, args, h.Seq)
}
