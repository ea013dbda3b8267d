package collective

import (
	"github.com/ringo-ml/ringo/internal/engine"
	"github.com/ringo-ml/ringo/internal/wire"
	"github.com/ringo-ml/ringo/tree"
)

// Tree schedule names, as Choice.Name gives them.
const (
	nameRD       = "recursive doubling"
	nameDBT      = "double binary tree"
	nameBinomial = "binomial tree"
)

// planTree converts a tree schedule.
func planTree(s tree.Schedule) *plan {
	p := &plan{local: s.Local}
	for _, x := range s.Sends {
		p.sends = append(p.sends, xsend{peer: x.Peer, from: x.From, after: x.After})
	}
	for _, x := range s.Recvs {
		p.recvs = append(p.recvs, xrecv{peer: x.Peer, kind: x.Kind, to: x.To, with: x.With, after: x.After, afterSend: x.AfterSend})
	}
	return p
}

// treePlan returns the cached plan of a tree schedule.
func (c *Communicator) treePlan(op wire.Op, root int, name string) *plan {
	k := planKey{op, wire.AlgoTree, root}
	if name == nameDBT {
		k.root = -2 // AllReduce has two tree schedules
	}
	if p, ok := c.plans[k]; ok {
		return p
	}
	build := func(rank int) *plan {
		var s tree.Schedule
		switch {
		case op == wire.OpAllReduce && name == nameDBT:
			s = tree.DoubleBinaryTree(c.world, rank)
		case op == wire.OpAllReduce, op == wire.OpBarrier:
			s = tree.RecursiveDoubling(c.world, rank)
		case op == wire.OpBroadcast:
			s = tree.BinomialBroadcast(c.world, rank, root)
		case op == wire.OpReduce:
			s = tree.BinomialReduce(c.world, rank, root)
		case op == wire.OpGather:
			s = tree.BinomialGather(c.world, rank, root)
		default:
			panic("collective: no tree schedule for " + op.String())
		}
		return planTree(s)
	}
	p := newPlan(c.world, c.rank, build)
	c.plans[k] = p
	return p
}

// treeLayout adjusts the buffer layout of o for its tree schedule.
func (c *Communicator) treeLayout(o *opState, name string) {
	switch o.Hdr.Op {
	case wire.OpBarrier: // recursive doubling on an empty buffer
		o.lay.dstParts = 1
	case wire.OpAllReduce:
		o.lay.dstParts = 1
		if name == nameDBT {
			o.lay.dstParts = 2
		}
	case wire.OpReduce:
		o.tmp = c.tmpBytes(len(o.Src))
		o.lay.tmpParts = 1
	case wire.OpGather:
		o.tmp = c.tmpBytes(c.world * len(o.Src))
		o.lay.tmpParts = c.world
	}
}

// tmpBytes returns the communicator's scratch buffer, grown to n bytes.
func (c *Communicator) tmpBytes(n int) []byte {
	if cap(c.tmp) < n {
		c.tmp = engine.AlignedBytes(n)
	}
	return c.tmp[:n]
}

// treePeers is every rank that a tree schedule of this rank talks to, for
// any root: the links that New makes up front. (A link is dialled by the
// lower rank of the pair when either side first needs it; were links made
// only on demand, a rank whose call does not match its peers' could wait
// for a link the others never ask for, instead of failing with
// ErrMismatch.)
func (c *Communicator) treePeers() []int {
	seen := make([]bool, c.world)
	add := func(s tree.Schedule) {
		for _, x := range s.Sends {
			seen[x.Peer] = true
		}
		for _, x := range s.Recvs {
			seen[x.Peer] = true
		}
	}
	add(tree.RecursiveDoubling(c.world, c.rank))
	add(tree.DoubleBinaryTree(c.world, c.rank))
	for root := range c.world {
		add(tree.BinomialBroadcast(c.world, c.rank, root))
		add(tree.BinomialReduce(c.world, c.rank, root))
		add(tree.BinomialGather(c.world, c.rank, root))
	}
	var peers []int
	for p, ok := range seen {
		if ok && p != c.rank {
			peers = append(peers, p)
		}
	}
	return peers
}
