package tree

import "math/bits"

// Tree is a rooted spanning tree over the ranks 0..len(Parent)-1.
type Tree struct {
	Root     int
	Parent   []int   // Parent[r] is r's parent; -1 for the root
	Children [][]int // Children[r] lists r's children in the order the schedules use them
}

// Binomial returns the binomial tree rooted at root that BinomialBroadcast,
// BinomialReduce and BinomialGather use. With v = (rank-root+world) % world,
// the parent of v > 0 is v with its lowest set bit cleared, and the children
// of v are v+1, v+2, v+4, ... below v's lowest set bit (any power of two for
// v = 0) and below world. Children are listed by decreasing subtree size,
// ties broken by the larger offset first; this is the order in which
// BinomialBroadcast sends, and BinomialReduce and BinomialGather receive in
// the reverse order (smallest subtree first). Its depth is
// floor(log2(world)). It panics if world < 1 or root is outside [0, world).
func Binomial(world, root int) Tree {
	checkRoot("Binomial", world, 0, root)
	t := Tree{Root: root, Parent: make([]int, world), Children: make([][]int, world)}
	for r := range world {
		t.Parent[r], t.Children[r] = binomialLinks(world, root, r)
	}
	return t
}

// BinaryTrees returns the two trees of DoubleBinaryTree.
//
// Tree 0 is an in-order numbered binary tree: rank r sits at position
// p = r+1 of the perfect binary tree whose nodes are numbered 1, 2, 3, ...
// from left to right, where the height of a node is the number of trailing
// zero bits of p. Its root is the largest power of two P <= world (rank
// P-1); positions above world are removed, and a node whose parent was
// removed hangs from its nearest remaining ancestor. So every odd p (even
// rank) is a leaf, every even p (odd rank) has a left child p - lowbit(p)/2
// and so is interior, every node has at most two children (left first), and
// the depth is at most floor(log2(world)).
//
// Tree 1 is tree 0 with every rank r renamed m(r): the mirror
// m(r) = world-1-r when world is even, the shift m(r) = (r+1) % world when it
// is odd. Its interior ranks are m(odd ranks): the even ranks when world is
// even, the even ranks 2..world-1 when world is odd. Hence every rank is
// interior in at most one of the two trees (in even worlds, exactly one; in
// odd worlds rank 0 is a leaf in both), so each rank forwards at most one
// half of the data, and two ranks are never parent and child in the same
// direction in both trees.
//
// It panics if world < 1.
func BinaryTrees(world int) [2]Tree {
	check("BinaryTrees", world, 0)
	var ts [2]Tree
	for h := range ts {
		t := Tree{Parent: make([]int, world), Children: make([][]int, world)}
		for r := range world {
			p, kids, n := binaryLinks(world, h, r)
			t.Parent[r] = p
			t.Children[r] = append([]int(nil), kids[:n]...)
			if p < 0 {
				t.Root = r
			}
		}
		ts[h] = t
	}
	return ts
}

// binomialLinks returns rank's parent (-1 for the root) and children, by
// decreasing subtree size, in the binomial tree rooted at root.
func binomialLinks(world, root, rank int) (parent int, kids []int) {
	v := (rank - root + world) % world
	parent = -1
	if v > 0 {
		parent = (v&(v-1) + root) % world
	}
	limit := v & -v // children lie below v's lowest set bit
	if v == 0 {
		limit = world
	}
	// Offsets 1, 2, 4, ..., largest first. Every child but the one of the
	// largest offset b has a full subtree of b ranks; the largest may be
	// truncated to world-(v+b) ranks, so it goes before the offsets larger
	// than its size.
	var offs [bits.UintSize]int
	n := 0
	for b := 1; b < limit && v+b < world; b <<= 1 {
		offs[n] = b
		n++
	}
	if n == 0 {
		return parent, nil
	}
	kids = make([]int, 0, n)
	top := offs[n-1]
	size := min(top, world-v-top)
	placed := false
	for i := n - 2; i >= 0; i-- {
		if !placed && offs[i] <= size {
			kids = append(kids, (v+top+root)%world)
			placed = true
		}
		kids = append(kids, (v+offs[i]+root)%world)
	}
	if !placed {
		kids = append(kids, (v+top+root)%world)
	}
	return parent, kids
}

// binomialLeaf reports whether vrank v > 0 has no children.
func binomialLeaf(world, v int) bool { return v&1 == 1 || v+1 >= world }

// binaryLinks returns rank's parent (-1 for the root) and children (left
// first) in tree h of BinaryTrees.
func binaryLinks(world, h, rank int) (parent int, kids [2]int, n int) {
	to0, from0 := func(r int) int { return r }, func(u int) int { return u }
	if h == 1 {
		if world%2 == 0 {
			to0 = func(r int) int { return world - 1 - r }
			from0 = to0
		} else {
			to0 = func(r int) int { return (r - 1 + world) % world }
			from0 = func(u int) int { return (u + 1) % world }
		}
	}
	p := to0(rank) + 1 // position in tree 0
	parent = -1
	if q := inorderParent(p, world); q > 0 {
		parent = from0(q - 1)
	}
	l, r := inorderChildren(p, world)
	for _, c := range [2]int{l, r} {
		if c > 0 {
			kids[n] = from0(c - 1)
			n++
		}
	}
	return parent, kids, n
}

// inorderParent returns the parent position of p in the in-order tree over
// positions 1..n, or 0 for the root.
func inorderParent(p, n int) int {
	root := 1 << (bits.Len(uint(n)) - 1)
	for p != root {
		b := p & -p
		if p&(b<<1) == 0 { // a left child
			p += b
		} else {
			p -= b
		}
		if p <= n {
			return p
		}
	}
	return 0
}

// inorderChildren returns the left and right child positions of p in the
// in-order tree over positions 1..n (0: none).
func inorderChildren(p, n int) (l, r int) {
	b := p & -p
	if b == 1 {
		return 0, 0
	}
	l = p - b/2
	// The right child is the first remaining node on the leftmost path of
	// the perfect right subtree; it exists iff p+1 <= n.
	for c := p + b/2; ; {
		if c <= n {
			return l, c
		}
		cb := c & -c
		if cb == 1 {
			return l, 0
		}
		c -= cb / 2
	}
}
