// Package engine is the contract between package collective and the
// engines that move a call's bytes: the shared-memory engine
// (engine/shmem) and the frame engine over links (engine/stream).
//
// collective checks a call's arguments, numbers it, chooses an engine and
// hands the engine a Call; the engine runs it and returns nil or an error
// that wraps one of the errors below, which collective exports under the
// same names. Nothing here waits or allocates.
package engine

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"unsafe"

	"github.com/ringo-ml/ringo/internal/reduce"
	"github.com/ringo-ml/ringo/internal/wire"
	"github.com/ringo-ml/ringo/ring"
)

// Errors that callers branch on; collective exports each under its name.
var (
	// ErrMismatch: ranks called different collectives (or the same one
	// with different types, counts, operators or roots) at the same point
	// in their sequences. The message names both calls.
	ErrMismatch = errors.New("mismatched collective calls")
	// ErrPeerLost: a peer died, closed its communicator, or its
	// connection failed. The message names the peer.
	ErrPeerLost = errors.New("peer lost")
	// ErrAborted: a peer aborted the operation for a reason of its own.
	ErrAborted = errors.New("aborted by a peer")
	// ErrClosed: this rank's communicator was closed.
	ErrClosed = errors.New("communicator closed")
	// ErrPoisoned: an earlier operation failed.
	ErrPoisoned = errors.New("communicator unusable after an earlier failure")
	// ErrInvalid: bad arguments; nothing was sent.
	ErrInvalid = errors.New("invalid argument")
	// ErrProtocol: a peer sent a frame that breaks the protocol.
	ErrProtocol = errors.New("protocol violation")
)

// Mismatch is the error of a call whose fingerprint differs from a
// peer's; collective turns it into ErrMismatch with Msg, and sends Msg to
// the peers.
type Mismatch struct{ Msg string }

func (e *Mismatch) Error() string { return e.Msg }

// Call is one operation as an engine sees it: the header every rank
// compares (Seq numbers it), the caller's buffers as bytes, and how to
// combine elements.
type Call struct {
	Hdr    wire.Header
	Dst    []byte
	Src    []byte
	ES     int             // bytes per element
	Kernel reduce.Operator // combines two partial results
}

// Describe formats a call the way error messages name it, e.g.
// "AllReduce(float32[1024], sum) #17".
func Describe(h *wire.Header) string {
	var args string
	switch h.Op {
	case wire.OpBarrier:
	case wire.OpBroadcast, wire.OpGather:
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

// Part is the element range [lo, hi) of rank j's share when m elements
// are cut into n parts as ring.Split cuts them.
func Part(m, n, j int) (lo, hi int) {
	off, k := ring.Split(m, n, j)
	return off, off + k
}

// F32 and F64 view byte ranges of float buffers as floats again. The
// bytes always come from []float32 or []float64 slices or from memory
// aligned for float64 (AlignedBytes, segments), so alignment holds.
func F32(b []byte) []float32 {
	if len(b) == 0 {
		return nil
	}
	return unsafe.Slice((*float32)(unsafe.Pointer(unsafe.SliceData(b))), len(b)/4)
}

// F64 is F32 for float64.
func F64(b []byte) []float64 {
	if len(b) == 0 {
		return nil
	}
	return unsafe.Slice((*float64)(unsafe.Pointer(unsafe.SliceData(b))), len(b)/8)
}

// Bytes views a float slice as its bytes.
func Bytes[T float32 | float64](s []T) []byte {
	if len(s) == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(s))), len(s)*int(unsafe.Sizeof(s[0])))
}

// AlignedBytes allocates n bytes aligned for float64.
func AlignedBytes(n int) []byte {
	return Bytes(make([]float64, (n+7)/8))[:n]
}

// As views bytes as elements of T (aligned: see F32).
func As[T any](b []byte) []T {
	var z T
	n := int(unsafe.Sizeof(z))
	if len(b) < n {
		return nil
	}
	return unsafe.Slice((*T)(unsafe.Pointer(unsafe.SliceData(b))), len(b)/n)
}

// ReduceInto sets dst = dst ⊕ src elementwise, for dt's element type.
// The engines reduce float32, float64 and the integers; collective moves
// 16-bit floats' reductions to float32 before they get here.
func ReduceInto(dt wire.DType, k reduce.Operator, dst, src []byte) {
	if len(dst) == 0 {
		return
	}
	switch dt {
	case wire.Float64:
		reduce.Float64(k, F64(dst), F64(src))
	case wire.Float32:
		reduce.Float32(k, F32(dst), F32(src))
	case wire.Int32:
		reduce.Ints(k, As[int32](dst), As[int32](src))
	case wire.Int64:
		reduce.Ints(k, As[int64](dst), As[int64](src))
	case wire.Uint8:
		reduce.Ints(k, dst, src)
	default:
		panic("engine: no reduction for " + dt.String())
	}
}

// Schedule names a schedule a call can run: collective exports it, and
// the stream engine builds its plans from it.
type Schedule uint8

// Schedules.
const (
	Ring              Schedule = iota + 1 // the pipelined ring (package ring)
	RecursiveDoubling                     // AllReduce and Barrier (package tree)
	DoubleBinaryTree                      // AllReduce (package tree)
	BinomialTree                          // Broadcast, Reduce, Gather (package tree)
	SharedMemory                          // the shared-memory engine's windows
)

var scheduleNames = [...]string{"", "ring", "recursive doubling", "double binary tree", "binomial tree", "shared memory"}

func (s Schedule) String() string {
	if int(s) < len(scheduleNames) && s != 0 {
		return scheduleNames[s]
	}
	return fmt.Sprintf("Schedule(%d)", uint8(s))
}

// Tree reports whether s is one of package tree's schedules, which the
// frames mark as wire.AlgoTree.
func (s Schedule) Tree() bool { return s >= RecursiveDoubling && s <= BinomialTree }

// Identity is the first 8 bytes, big-endian, of a SHA-256 over fields,
// each written as its length (little-endian, 64 bits) and its bytes: a
// view's identity (collective.View.ID).
func Identity(fields ...[]byte) uint64 {
	h := sha256.New()
	var n [8]byte
	for _, f := range fields {
		binary.LittleEndian.PutUint64(n[:], uint64(len(f)))
		h.Write(n[:])
		h.Write(f)
	}
	return binary.BigEndian.Uint64(h.Sum(nil))
}
