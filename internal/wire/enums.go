package wire

import "strconv"

// Kind is a frame's kind. The zero Kind is invalid.
type Kind uint8

const (
	KindData  Kind = 1 // a data frame: Header plus raw payload
	KindAbort Kind = 2 // the sender aborts: Abort
	KindHello Kind = 3 // first frame on a new link: Hello
)

var kindNames = [...]string{"", "data", "abort", "hello"}

// Valid reports whether k is a known kind.
func (k Kind) Valid() bool { return k >= KindData && k <= KindHello }

func (k Kind) String() string {
	if k.Valid() {
		return kindNames[k]
	}
	return "Kind(" + strconv.Itoa(int(k)) + ")"
}

// Op is the collective operation a data frame belongs to. The zero Op is
// invalid.
type Op uint8

const (
	OpAllReduce Op = iota + 1
	OpBroadcast
	OpReduce
	OpGather
	OpAllGather
	OpReduceScatter
	OpBarrier
	OpSendRecv
)

var opNames = [...]string{"", "AllReduce", "Broadcast", "Reduce", "Gather",
	"AllGather", "ReduceScatter", "Barrier", "SendRecv"}

// Valid reports whether o is a known op.
func (o Op) Valid() bool { return o >= OpAllReduce && o <= OpSendRecv }

func (o Op) String() string {
	if o.Valid() {
		return opNames[o]
	}
	return "Op(" + strconv.Itoa(int(o)) + ")"
}

// Reduces reports whether o combines values with a ReduceOp (AllReduce,
// Reduce, ReduceScatter). Data frames of these ops must carry a ReduceOp
// other than RedNone; all other ops must carry RedNone.
func (o Op) Reduces() bool {
	return o == OpAllReduce || o == OpReduce || o == OpReduceScatter
}

// Rooted reports whether o has a root rank (Broadcast, Reduce, Gather). Data
// frames of these ops must carry Root >= 0; AllReduce, AllGather,
// ReduceScatter and Barrier must carry Root == -1; SendRecv may carry either
// (the field is free for the executor, e.g. to name the sender).
func (o Op) Rooted() bool {
	return o == OpBroadcast || o == OpReduce || o == OpGather
}

// DType is the element type of a tensor. The zero DType is invalid.
type DType uint8

const (
	Float32  DType = 1
	Float64  DType = 2
	Int32    DType = 3
	Int64    DType = 4
	Uint8    DType = 5
	Float16  DType = 6 // IEEE 754 binary16
	BFloat16 DType = 7 // bfloat16: float32's exponent, 7 bits of mantissa
)

// Valid reports whether d is a known element type.
func (d DType) Valid() bool { return d >= Float32 && d <= BFloat16 }

// dtypeShift is log2 of each valid DType's size.
var dtypeShift = [...]uint8{Float32: 2, Float64: 3, Int32: 2, Int64: 3, Uint8: 0, Float16: 1, BFloat16: 1}

// Size is the size of one element in bytes, 0 for an invalid DType.
func (d DType) Size() int {
	if !d.Valid() {
		return 0
	}
	return 1 << dtypeShift[d]
}

func (d DType) String() string {
	switch d {
	case Float32:
		return "float32"
	case Float64:
		return "float64"
	case Int32:
		return "int32"
	case Int64:
		return "int64"
	case Uint8:
		return "uint8"
	case Float16:
		return "float16"
	case BFloat16:
		return "bfloat16"
	}
	return "DType(" + strconv.Itoa(int(d)) + ")"
}

// ReduceOp is the reduction of a reducing op. RedNone (zero) is valid and is
// required for ops that do not reduce.
type ReduceOp uint8

const (
	RedNone ReduceOp = iota
	RedSum
	RedProd
	RedMin
	RedMax
	RedAvg
)

var reduceNames = [...]string{"none", "sum", "prod", "min", "max", "avg"}

// Valid reports whether r is a known reduction (RedNone included).
func (r ReduceOp) Valid() bool { return r <= RedAvg }

func (r ReduceOp) String() string {
	if r.Valid() {
		return reduceNames[r]
	}
	return "ReduceOp(" + strconv.Itoa(int(r)) + ")"
}

// Algo is the algorithm whose schedule a data frame follows. The zero Algo is
// invalid.
type Algo uint8

const (
	AlgoRing Algo = 1
	AlgoTree Algo = 2
)

// Valid reports whether a is a known algorithm.
func (a Algo) Valid() bool { return a == AlgoRing || a == AlgoTree }

func (a Algo) String() string {
	switch a {
	case AlgoRing:
		return "ring"
	case AlgoTree:
		return "tree"
	}
	return "Algo(" + strconv.Itoa(int(a)) + ")"
}

// Code is the reason class of an abort. The zero Code is invalid.
type Code uint8

const (
	CodeMismatch Code = iota + 1 // ranks called different collectives
	CodePeerLost                 // a link to a peer failed
	CodeClosed                   // the communicator was closed
	CodeTimeout                  // an op timed out
	CodeCanceled                 // an op's context was canceled
	CodeProtocol                 // a peer sent a malformed or unexpected frame
	CodeInternal                 // a bug or an unexpected local failure
	CodeInvalid                  // a caller passed invalid arguments
	CodeBye                      // not a failure: the sender closed after completing op Seq
	CodePing                     // not a failure: a liveness probe; answer with CodePong and the same Seq
	CodePong                     // not a failure: the answer to CodePing
)

var codeNames = [...]string{"", "mismatch", "peer-lost", "closed", "timeout",
	"canceled", "protocol", "internal", "invalid", "bye", "ping", "pong"}

// Valid reports whether c is a known code.
func (c Code) Valid() bool { return c >= CodeMismatch && c <= CodePong }

// Failure reports whether an abort frame with this code ends the
// communicator (Bye, Ping and Pong do not).
func (c Code) Failure() bool { return c.Valid() && c < CodeBye }

func (c Code) String() string {
	if c.Valid() {
		return codeNames[c]
	}
	return "Code(" + strconv.Itoa(int(c)) + ")"
}
