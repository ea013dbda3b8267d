package tree

import (
	"fmt"
	"math/bits"

	"github.com/ringo-ml/ringo/ring"
)

func dst(seg int) ring.Ref { return ring.Ref{Buf: ring.Dst, Seg: seg} }
func src(seg int) ring.Ref { return ring.Ref{Buf: ring.Src, Seg: seg} }
func tmp(seg int) ring.Ref { return ring.Ref{Buf: ring.Tmp, Seg: seg} }

func check(op string, world, rank int) {
	if world < 1 {
		panic(fmt.Sprintf("tree: %s: world size %d < 1", op, world))
	}
	if rank < 0 || rank >= world {
		panic(fmt.Sprintf("tree: %s: rank %d out of range [0, %d)", op, rank, world))
	}
}

func checkRoot(op string, world, rank, root int) {
	check(op, world, rank)
	if root < 0 || root >= world {
		panic(fmt.Sprintf("tree: %s: root %d out of range [0, %d)", op, root, world))
	}
}

func send(peer int, from ring.Ref, after int) Send {
	return Send{Peer: peer, From: from, After: after}
}

func ack(peer, after int) Send { return Send{Peer: peer, After: after} }

func recv(peer int, kind ring.RecvKind, to ring.Ref, after int) Recv {
	return Recv{Peer: peer, Kind: kind, To: to, After: after, AfterSend: -1}
}

func recvAck(peer, after int) Recv {
	return Recv{Peer: peer, Kind: ring.RecvAck, After: after, AfterSend: -1}
}

// BinomialBroadcast copies the root's Dst to every rank along the binomial
// tree (see Binomial). In place; Dst has 1 part (the whole buffer); no Src,
// no Tmp.
//
// A non-root receives Dst[0] from its parent (Recvs[0], RecvCopy) and sends
// Dst[0] to each child, by decreasing subtree size, After Recvs[0], so the
// data is pipelined chunk by chunk down the tree; the root sends with no
// dependency. Completion is a convergecast of acks: each rank receives an ack
// from each child (smallest subtree first, each ack recv After the previous
// one, the first After the data recv), then, once it has its data and all
// its children's acks, sends an ack to its parent. When the root's last ack
// arrives every rank has received the whole buffer.
func BinomialBroadcast(world, rank, root int) Schedule {
	checkRoot("BinomialBroadcast", world, rank, root)
	s := Schedule{World: world, Rank: rank}
	if world == 1 {
		return s
	}
	parent, kids := binomialLinks(world, root, rank)
	s.Sends = make([]Send, 0, len(kids)+1)
	s.Recvs = make([]Recv, 0, len(kids)+1)
	last := -1
	if parent >= 0 {
		s.Recvs = append(s.Recvs, recv(parent, ring.RecvCopy, dst(0), -1))
		last = 0
	}
	for _, c := range kids {
		s.Sends = append(s.Sends, send(c, dst(0), last))
	}
	for i := len(kids) - 1; i >= 0; i-- {
		s.Recvs = append(s.Recvs, recvAck(kids[i], last))
		last = len(s.Recvs) - 1
	}
	if parent >= 0 {
		s.Sends = append(s.Sends, ack(parent, last))
	}
	return s
}

// BinomialReduce reduces every rank's Src into the root's Dst along the
// binomial tree (see Binomial), out of place: Src is never written. Src has
// 1 part; Dst has 1 part and only the root uses it (len(dst) = len(src)); Tmp
// has 1 part of len(src) elements and only interior non-root ranks use it.
//
// An interior non-root copies Src[0] into Tmp[0] (Local), RecvReduce's each
// child's partial result into Tmp[0], children by increasing subtree size,
// each recv After the previous one, and sends Tmp[0] to its parent After the
// last recv. A leaf sends its Src[0] directly. The root copies Src[0] into
// Dst[0] (Local) and RecvReduce's its children into Dst[0] the same way.
// Everything is pipelined chunk by chunk. Each rank that only sends (a leaf)
// receives an ack from its parent, sent After the parent's recv of the
// leaf's data, so that every rank reads at least one frame.
//
// The result at the root is R(root), where R(v) = ((x_v ⊕ R(c_1)) ⊕ R(c_2))
// ⊕ ... for v's children c_1, c_2, ... by increasing subtree size and x_v is
// v's Src.
func BinomialReduce(world, rank, root int) Schedule {
	checkRoot("BinomialReduce", world, rank, root)
	s := Schedule{World: world, Rank: rank}
	if world == 1 {
		s.Local = []ring.Local{{From: src(0), To: dst(0)}}
		return s
	}
	parent, kids := binomialLinks(world, root, rank)
	if parent >= 0 && len(kids) == 0 { // a leaf
		s.Sends = []Send{send(parent, src(0), -1)}
		s.Recvs = []Recv{recvAck(parent, -1)}
		return s
	}
	acc := tmp(0)
	if parent < 0 {
		acc = dst(0)
	}
	s.Local = []ring.Local{{From: src(0), To: acc}}
	s.Sends = make([]Send, 0, len(kids)+1)
	s.Recvs = make([]Recv, 0, len(kids))
	last := -1
	for i := len(kids) - 1; i >= 0; i-- {
		s.Recvs = append(s.Recvs, recv(kids[i], ring.RecvReduce, acc, last))
		last = len(s.Recvs) - 1
	}
	if parent >= 0 {
		s.Sends = append(s.Sends, send(parent, acc, last))
	}
	for j, rv := range s.Recvs {
		if binomialLeaf(world, (rv.Peer-root+world)%world) {
			s.Sends = append(s.Sends, ack(rv.Peer, j))
		}
	}
	return s
}

// BinomialGather collects every rank's Src into the root's Dst along the
// binomial tree (see Binomial): block k of the root's Dst is rank k's Src.
// Src has 1 part; Dst has world parts of len(src) elements each and only the
// root uses it; Tmp has world parts (world*len(src) elements, laid out like
// the root's Dst) and only interior non-root ranks use it, each only the
// blocks of its subtree.
//
// Blocks travel up the tree one transfer per block and hop. A non-root sends
// its parent its own block first (from Src[0]), then forwards the blocks of
// its subtree in the order it receives them: children by increasing subtree
// size, each child's blocks in the order that child sends them. Each block k
// is RecvCopy'd into Tmp[k] and sent from Tmp[k] After that recv. The root
// copies its Src[0] into Dst[root] (Local) and RecvCopy's every other block
// k straight into Dst[k]. Each leaf receives an ack from its parent, sent
// After the parent's recv of the leaf's block.
func BinomialGather(world, rank, root int) Schedule {
	checkRoot("BinomialGather", world, rank, root)
	s := Schedule{World: world, Rank: rank}
	if world == 1 {
		s.Local = []ring.Local{{From: src(0), To: dst(0)}}
		return s
	}
	parent, kids := binomialLinks(world, root, rank)
	v := (rank - root + world) % world
	size := world // ranks in this subtree
	if v > 0 {
		size = min(v&-v, world-v)
	}
	into := tmp
	if parent < 0 {
		into = dst
		s.Local = []ring.Local{{From: src(0), To: dst(rank)}}
	}
	s.Sends = make([]Send, 0, size+len(kids))
	s.Recvs = make([]Recv, 0, size)
	if parent >= 0 {
		s.Sends = append(s.Sends, send(parent, src(0), -1))
	}
	var acks []Send
	for i := len(kids) - 1; i >= 0; i-- {
		c := kids[i]
		first := len(s.Recvs)
		for _, b := range gatherOrder(world, root, c, nil) {
			s.Recvs = append(s.Recvs, recv(c, ring.RecvCopy, into(b), -1))
			if parent >= 0 {
				s.Sends = append(s.Sends, send(parent, into(b), len(s.Recvs)-1))
			}
		}
		if binomialLeaf(world, (c-root+world)%world) {
			acks = append(acks, ack(c, first))
		}
	}
	s.Sends = append(s.Sends, acks...)
	if parent >= 0 && len(kids) == 0 {
		s.Recvs = append(s.Recvs, recvAck(parent, -1))
	}
	return s
}

// gatherOrder appends the blocks rank sends to its parent in BinomialGather:
// its own, then each child's (by increasing subtree size) in that child's
// order.
func gatherOrder(world, root, rank int, out []int) []int {
	out = append(out, rank)
	_, kids := binomialLinks(world, root, rank)
	for i := len(kids) - 1; i >= 0; i-- {
		out = gatherOrder(world, root, kids[i], out)
	}
	return out
}

// RecursiveDoubling reduces Dst in place over all ranks in about log2(world)
// steps, each exchanging the whole buffer: the latency-optimal allreduce for
// small buffers. Dst has 1 part; no Src, no Tmp.
//
// Let p be the largest power of two <= world. Rank p+i (i < world-p) first
// sends its Dst[0] to rank i, which RecvReduce's it (Dst = x_i ⊕ x_{p+i});
// rank p+i then waits for the result, a RecvCopy from rank i AfterSend its
// send (the buffer being sent is overwritten). Ranks r < p run log2(p)
// steps: at step j, partner q = ungray(gray(r) ^ (1<<j)), Send{q, Dst[0],
// After: the previous recv} and Recv{q, RecvReduce Dst[0], After: the
// previous recv, AfterSend: this step's send}. Ranks i < world-p finally
// send Dst[0] to rank p+i After the last step.
//
// The exchanges pair ranks by their places in the reflected Gray code
// (gray(r) = r ^ r>>1), not by r itself: ranks r and r+1 < p, and p-1 and
// 0, differ in one bit of it, so every link of the ring over ranks 0..p-1
// is one of the exchanges (half of them at the first step), and an
// executor that sends something to each ring successor at the start of
// every operation (the collective package does, to catch mismatched calls)
// sends it on links the schedule uses anyway.
//
// Each exchange needs its links to buffer one chunk per direction, or the
// executor to read a RecvReduce payload before it waits for AfterSend (see
// Buffering in the package documentation).
//
// Every rank ends with identical bits although each computes its own
// result: at every step both partners hold values equal up to commutativity
// (by induction, starting from the fold, whose results are copied) and
// combine the same two values, a ⊕ b on one side and b ⊕ a on the other,
// which is the same value because ⊕ is commutative element by element
// (IEEE 754 addition, multiplication, min and max are). Associativity is
// never assumed: the bracketing is the same on every rank.
func RecursiveDoubling(world, rank int) Schedule {
	check("RecursiveDoubling", world, rank)
	s := Schedule{World: world, Rank: rank}
	if world == 1 {
		return s
	}
	p := 1 << (bits.Len(uint(world)) - 1)
	if rank >= p {
		s.Sends = []Send{send(rank-p, dst(0), -1)}
		s.Recvs = []Recv{{Peer: rank - p, Kind: ring.RecvCopy, To: dst(0), After: -1, AfterSend: 0}}
		return s
	}
	steps := bits.Len(uint(p)) - 1
	folded := rank < world-p
	n := steps
	if folded {
		n++
	}
	s.Sends = make([]Send, 0, n)
	s.Recvs = make([]Recv, 0, n)
	last := -1
	if folded {
		s.Recvs = append(s.Recvs, recv(rank+p, ring.RecvReduce, dst(0), -1))
		last = 0
	}
	for j := range steps {
		q := ungray(gray(rank) ^ 1<<j)
		s.Sends = append(s.Sends, send(q, dst(0), last))
		s.Recvs = append(s.Recvs, Recv{Peer: q, Kind: ring.RecvReduce, To: dst(0), After: last, AfterSend: len(s.Sends) - 1})
		last = len(s.Recvs) - 1
	}
	if folded {
		s.Sends = append(s.Sends, send(rank+p, dst(0), last))
	}
	return s
}

// gray is r's place in the reflected Gray code: ranks r and r+1 (and p-1
// and 0, for p a power of two) differ in one bit of it.
func gray(r int) int { return r ^ r>>1 }

// ungray inverts gray.
func ungray(g int) int {
	r := 0
	for ; g != 0; g >>= 1 {
		r ^= g
	}
	return r
}

// DoubleBinaryTree reduces Dst in place over all ranks with the two trees of
// BinaryTrees: half h of the buffer is reduced up tree h to its root and
// broadcast back down tree h, pipelined chunk by chunk, both halves at once.
// Dst has 2 parts (part h = ring.Split(len(dst), 2, h)); no Src, no Tmp.
//
// Up phase, per tree h: RecvReduce Dst[h] from each child (left first, each
// After the previous), and Send Dst[h] to the parent After the last child
// recv. Down phase: a non-root RecvCopy's Dst[h] from its parent, After its
// last child recv and AfterSend its up-send (it overwrites the segment being
// sent), and sends Dst[h] to each child After that recv; the root sends down
// After its last child recv. Sends list the up-sends, then the down-sends
// (tree 0 before tree 1 within each phase); Recvs list the children's
// up-recvs, then the down-recvs, in the same order, so that a link that
// carries both an up and a down transfer carries the up transfer first
// (ups never wait for downs, so this cannot deadlock).
//
// Half h is reduced once, at the root of tree h, to R(root), where
// R(v) = (x_v ⊕ R(left)) ⊕ R(right), and then only copied: every rank holds
// the identical expression, hence identical bits.
func DoubleBinaryTree(world, rank int) Schedule {
	check("DoubleBinaryTree", world, rank)
	s := Schedule{World: world, Rank: rank}
	if world == 1 {
		return s
	}
	var parent [2]int
	var kids [2][2]int
	var nk [2]int
	for h := range 2 {
		parent[h], kids[h], nk[h] = binaryLinks(world, h, rank)
	}
	s.Sends = make([]Send, 0, 6)
	s.Recvs = make([]Recv, 0, 6)
	var lastUp, upSend [2]int
	for h := range 2 {
		lastUp[h] = -1
		for _, c := range kids[h][:nk[h]] {
			s.Recvs = append(s.Recvs, recv(c, ring.RecvReduce, dst(h), lastUp[h]))
			lastUp[h] = len(s.Recvs) - 1
		}
	}
	for h := range 2 {
		upSend[h] = -1
		if parent[h] >= 0 {
			s.Sends = append(s.Sends, send(parent[h], dst(h), lastUp[h]))
			upSend[h] = len(s.Sends) - 1
		}
	}
	for h := range 2 {
		after := lastUp[h]
		if parent[h] >= 0 {
			s.Recvs = append(s.Recvs, Recv{Peer: parent[h], Kind: ring.RecvCopy, To: dst(h), After: lastUp[h], AfterSend: upSend[h]})
			after = len(s.Recvs) - 1
		}
		for _, c := range kids[h][:nk[h]] {
			s.Sends = append(s.Sends, send(c, dst(h), after))
		}
	}
	return s
}
