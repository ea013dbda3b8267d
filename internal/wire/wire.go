package wire

import (
	"errors"
	"fmt"
	"math"
	"unicode/utf8"
)

const (
	// Version is the protocol version a Hello carries; a receiver rejects
	// any other.
	Version = 1
	// MaxReason bounds Abort.Reason in bytes.
	MaxReason = 512
	// MaxGroup bounds Hello.Group in bytes.
	MaxGroup = 128
	// MaxHeader bounds the flatbuffer bytes of any frame (after the size
	// prefix). The Encoder's largest frame, an abort with a MaxReason-byte
	// reason, is 604 bytes of flatbuffer; a hello with a MaxGroup-byte group
	// is 212; a data frame is always 76.
	MaxHeader = 1024
	// PrefixLen is the length of the little-endian uint32 size prefix.
	PrefixLen = 4

	// DefaultMaxPayload is the payload bound used when Limits.MaxPayload is 0.
	DefaultMaxPayload = 1 << 30
	// DefaultMaxWorld is the world-size bound used when Limits.MaxWorld is 0.
	DefaultMaxWorld = 1 << 16

	// minHeader is the smallest flatbuffer that can hold a root offset, the
	// file identifier, a vtable and a table: 4 + 4 + 4 + 4 bytes.
	minHeader = 16
	// fileID is the flatbuffers file identifier of every frame.
	fileID = "RNG1"
)

// ErrMalformed is wrapped by every error that Decode and ReadFrame report
// about the bytes of a frame.
var ErrMalformed = errors.New("wire: malformed frame")

// Header is a data frame's header: the fingerprint of the call plus the
// frame's place in it.
type Header struct {
	Epoch      uint64
	Seq        uint64 // op sequence number within the communicator
	Op         Op
	DType      DType
	Count      uint64 // elements of the caller's tensor, as the op defines it
	Reduce     ReduceOp
	Root       int32 // -1 when the op has no root
	Algo       Algo
	Step       uint32 // index of the transfer within the op's schedule
	Chunk      uint32 // chunk index within the transfer
	PayloadLen uint32 // bytes of raw payload following the header
}

// Abort tells the receiver that the sender aborted an op (or the whole
// communicator); the receiver poisons its communicator.
type Abort struct {
	Epoch  uint64
	Seq    uint64 // the op that failed (0 if none)
	Rank   int32  // the rank that is aborting
	Code   Code
	Reason string // human-readable UTF-8, at most MaxReason bytes
}

// Hello is the first frame each side sends on a new link.
type Hello struct {
	Version uint32 // protocol version, Version
	Group   string // UTF-8, at most MaxGroup bytes
	Epoch   uint64
	World   int32
	Rank    int32 // the sender's rank
	// Channel is which of a link's connections this hello opens (0: the
	// first, which carries the control stream that counts).
	Channel uint16
	// Channels is how many connections the link stripes its data over:
	// the dialer's offer on channel 0, the number agreed in the acceptor's
	// answer and on every later channel. 0 is read as 1 (an older peer).
	Channels uint16
	// View is the identity of the sender's view: the first 8 bytes of a
	// SHA-256 over its group, epoch and members (names and certificate
	// fingerprints, in rank order). Two views with one epoch
	// and different members (the sides of a partition) differ here, so
	// their ranks never link.
	View uint64
}

// MaxChannels bounds Hello.Channels.
const MaxChannels = 64

// Frame is one decoded frame. Decode sets Kind, fills the member it names and
// zeroes the other two.
type Frame struct {
	Kind  Kind
	Data  Header
	Abort Abort
	Hello Hello
}

// Limits are the receiver's bounds on untrusted values.
type Limits struct {
	MaxPayload uint32 // data frames with PayloadLen > MaxPayload are rejected (0 = DefaultMaxPayload)
	MaxWorld   int32  // ranks and roots must be < MaxWorld, world <= MaxWorld (<= 0: DefaultMaxWorld)
}

func (l Limits) maxPayload() uint32 {
	if l.MaxPayload == 0 {
		return DefaultMaxPayload
	}
	return l.MaxPayload
}

func (l Limits) maxWorld() int32 {
	if l.MaxWorld <= 0 {
		return DefaultMaxWorld
	}
	return l.MaxWorld
}

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrMalformed}, args...)...)
}

// Validate checks every field of a data header against the rules of the
// protocol and lim; the error wraps ErrMalformed. The rules:
//   - Op, DType and Algo are valid; Reduce is valid, not RedNone for ops that
//     reduce (Op.Reduces) and RedNone for all others;
//   - Root >= -1 and Root < MaxWorld; Root >= 0 for rooted ops (Op.Rooted),
//     Root == -1 for AllReduce, AllGather, ReduceScatter and Barrier;
//   - Count*DType.Size() fits in an int64;
//   - PayloadLen <= MaxPayload, PayloadLen is a multiple of DType.Size(), and
//     PayloadLen == 0 when Count == 0.
//
// Epoch, Seq, Step and Chunk are free; the receiver compares them against
// its own expectation.
func (h *Header) Validate(lim Limits) error {
	if !h.Op.Valid() {
		return malformed("op %d out of range", uint8(h.Op))
	}
	if !h.DType.Valid() {
		return malformed("dtype %d out of range", uint8(h.DType))
	}
	if !h.Reduce.Valid() {
		return malformed("reduce op %d out of range", uint8(h.Reduce))
	}
	if !h.Algo.Valid() {
		return malformed("algo %d out of range", uint8(h.Algo))
	}
	if h.Op.Reduces() {
		if h.Reduce == RedNone {
			return malformed("%v without a reduce op", h.Op)
		}
	} else if h.Reduce != RedNone {
		return malformed("%v with reduce op %v", h.Op, h.Reduce)
	}
	if h.Root < -1 {
		return malformed("root %d below -1", h.Root)
	}
	if mw := lim.maxWorld(); h.Root >= mw {
		return malformed("root %d not below max world %d", h.Root, mw)
	}
	switch {
	case h.Op.Rooted():
		if h.Root < 0 {
			return malformed("%v without a root (root %d)", h.Op, h.Root)
		}
	case h.Op != OpSendRecv:
		if h.Root != -1 {
			return malformed("%v has no root but root is %d, want -1", h.Op, h.Root)
		}
	}
	shift := dtypeShift[h.DType] // a shift and a mask, not divisions
	size := uint64(1) << shift
	if h.Count > math.MaxInt64>>shift {
		return malformed("count %d of %v overflows int64 bytes", h.Count, h.DType)
	}
	if mp := lim.maxPayload(); h.PayloadLen > mp {
		return malformed("payload length %d exceeds limit %d", h.PayloadLen, mp)
	}
	if uint64(h.PayloadLen)&(size-1) != 0 {
		return malformed("payload length %d not a multiple of %v size %d", h.PayloadLen, h.DType, size)
	}
	if h.Count == 0 && h.PayloadLen != 0 {
		return malformed("payload length %d with count 0", h.PayloadLen)
	}
	return nil
}

// Validate checks an abort: Code valid, 0 <= Rank < MaxWorld, Reason valid
// UTF-8 of at most MaxReason bytes. The error wraps ErrMalformed.
func (a *Abort) Validate(lim Limits) error {
	if !a.Code.Valid() {
		return malformed("abort code %d out of range", uint8(a.Code))
	}
	if a.Rank < 0 {
		return malformed("abort rank %d negative", a.Rank)
	}
	if mw := lim.maxWorld(); a.Rank >= mw {
		return malformed("abort rank %d not below max world %d", a.Rank, mw)
	}
	if len(a.Reason) > MaxReason {
		return malformed("abort reason of %d bytes exceeds %d", len(a.Reason), MaxReason)
	}
	if !utf8.ValidString(a.Reason) {
		return malformed("abort reason is not valid UTF-8")
	}
	return nil
}

// Validate checks a hello: Version == Version, 1 <= World <= MaxWorld,
// 0 <= Rank < World, Group valid UTF-8 of at most MaxGroup bytes. The error
// wraps ErrMalformed. Whether group, epoch, world and rank match the
// receiver's view is the receiver's check, not this one.
func (h *Hello) Validate(lim Limits) error {
	if h.Version != Version {
		return malformed("hello version %d unsupported (want %d)", h.Version, Version)
	}
	if len(h.Group) > MaxGroup {
		return malformed("hello group of %d bytes exceeds %d", len(h.Group), MaxGroup)
	}
	if !utf8.ValidString(h.Group) {
		return malformed("hello group is not valid UTF-8")
	}
	if h.World < 1 {
		return malformed("hello world %d below 1", h.World)
	}
	if mw := lim.maxWorld(); h.World > mw {
		return malformed("hello world %d exceeds max world %d", h.World, mw)
	}
	if h.Rank < 0 || h.Rank >= h.World {
		return malformed("hello rank %d out of range for world %d", h.Rank, h.World)
	}
	if h.Channels > MaxChannels {
		return malformed("hello offers %d channels, more than %d", h.Channels, MaxChannels)
	}
	if h.Channel >= max(h.Channels, 1) {
		return malformed("hello opens channel %d of %d", h.Channel, max(h.Channels, 1))
	}
	return nil
}

// Validate validates the member of f that f.Kind names.
func (f *Frame) Validate(lim Limits) error {
	switch f.Kind {
	case KindData:
		return f.Data.Validate(lim)
	case KindAbort:
		return f.Abort.Validate(lim)
	case KindHello:
		return f.Hello.Validate(lim)
	}
	return malformed("kind %d out of range", uint8(f.Kind))
}
