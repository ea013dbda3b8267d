package tree

import "fmt"

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
