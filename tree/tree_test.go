package tree

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/ringo-ml/ringo/internal/race"
	"github.com/ringo-ml/ringo/internal/schedtest"
	"github.com/ringo-ml/ringo/ring"
)

// opSpec describes one op to the tests: its layout and the naive reference
// for its final state.
type opSpec struct {
	op       Op
	inPlace  bool // Dst holds the input (leaves 'x'); otherwise it starts unwritten
	rootDst  bool // only the root has a Dst
	rankSegs bool // Dst and Tmp segments are indexed by rank (they rotate with the root)
	check    func(s *sim)
}

func (o *opSpec) name() string { return o.op.String() }

func (o *opSpec) hasDst(world, rank, root int) bool { return !o.rootDst || rank == root }

func (o *opSpec) build(world, root int) []Schedule {
	schs := make([]Schedule, world)
	for r := range schs {
		schs[r] = Build(o.op, world, r, root)
	}
	return schs
}

// checkAllReduce checks what both allreduce schedules guarantee: every
// rank's Dst reduces every rank's input exactly once, every rank holds the
// same expression up to commutativity, and every rank has heard from every
// rank.
func checkAllReduce(s *sim, parts int) {
	for seg := range parts {
		for c := range s.chunks {
			v0 := s.dst(0, seg, c)
			for r := range s.world {
				v := s.dst(r, seg, c)
				if !s.e.allOnce(v, s.world, seg, c) {
					s.fail("rank %d Dst[%d] chunk %d = %s: not a reduction of all ranks exactly once", r, seg, c, s.e.String(v))
				} else if !s.e.equiv(v, v0) {
					s.fail("rank %d Dst[%d] chunk %d = %s differs from rank 0's %s beyond commutativity", r, seg, c, s.e.String(v), s.e.String(v0))
				}
			}
		}
	}
	for r := range s.world {
		if k := s.final(r); k.started != all(s.world) {
			s.fail("rank %d completes without hearing from ranks %b", r, all(s.world)&^k.started)
		}
	}
}

var ops = []*opSpec{
	{
		op: OpBinomialBroadcast, inPlace: true,
		check: func(s *sim) {
			for r := range s.world {
				for c := range s.chunks {
					if got, want := s.dst(r, 0, c), s.e.leaf(leafInput, s.root, 0, c); !s.e.same(got, want) {
						s.fail("rank %d Dst[0] chunk %d = %s, want %s", r, c, s.e.String(got), s.e.String(want))
					}
				}
			}
			if k := s.final(s.root); k.finished != all(s.world) {
				s.fail("root %d completes before ranks %b have received the data", s.root, all(s.world)&^k.finished)
			}
		},
	},
	{
		op: OpBinomialReduce, rootDst: true,
		check: func(s *sim) {
			t := Binomial(s.world, s.root)
			kids := func(v int) []int { k := slices.Clone(t.Children[v]); slices.Reverse(k); return k }
			for c := range s.chunks {
				want := s.treeReduce(kids, s.root, 0, c)
				if !s.e.allOnce(want, s.world, 0, c) {
					s.fail("reference %s is not a reduction of all ranks exactly once", s.e.String(want))
				}
				if got := s.dst(s.root, 0, c); !s.e.same(got, want) {
					s.fail("root %d Dst[0] chunk %d = %s, want %s", s.root, c, s.e.String(got), s.e.String(want))
				}
			}
		},
	},
	{
		op: OpBinomialGather, rootDst: true, rankSegs: true,
		check: func(s *sim) {
			for k := range s.world {
				for c := range s.chunks {
					if got, want := s.dst(s.root, k, c), s.e.leaf(leafInput, k, 0, c); !s.e.same(got, want) {
						s.fail("root %d Dst[%d] chunk %d = %s, want %s", s.root, k, c, s.e.String(got), s.e.String(want))
					}
				}
			}
		},
	},
	{
		op: OpRecursiveDoubling, inPlace: true,
		check: func(s *sim) { checkAllReduce(s, 1) },
	},
	{
		op: OpDoubleBinaryTree, inPlace: true,
		check: func(s *sim) {
			checkAllReduce(s, 2)
			for h, t := range BinaryTrees(s.world) {
				kids := func(v int) []int { return t.Children[v] }
				for c := range s.chunks {
					want := s.treeReduce(kids, t.Root, h, c)
					for r := range s.world {
						if got := s.dst(r, h, c); !s.e.same(got, want) {
							s.fail("rank %d Dst[%d] chunk %d = %s, want exactly %s", r, h, c, s.e.String(got), s.e.String(want))
						}
					}
				}
			}
		},
	},
}

func opByName(name string) *opSpec {
	for _, op := range ops {
		if op.name() == name {
			return op
		}
	}
	panic(name)
}

func simulate(op *opSpec, schs []Schedule, root int, cfg simConfig) *sim {
	s := newSim(op, schs, root, cfg)
	if len(s.errs) == 0 {
		s.run()
	}
	if len(s.errs) == 0 {
		op.check(s)
	}
	return s
}

var configs = []simConfig{
	{mode: modeRandom, seed: 1, chunks: 1},
	{mode: modeEagerSend, seed: 2, chunks: 2},
	{mode: modeEagerRecv, seed: 3, chunks: 3},
	{mode: modeRandom, seed: 4, chunks: 3},
	{mode: modeRandom, seed: 5, chunks: 2},
}

// rendezvous are the configs of TestRendezvous.
var rendezvous = []simConfig{
	{mode: modeRendezvous, seed: 6, chunks: 1},
	{mode: modeRendezvous, seed: 7, chunks: 3},
	{mode: modeRendezvous, seed: 8, chunks: 3, scratch: true},
}

// smallWorld bounds the worlds that are simulated exhaustively: every root,
// every config. Larger worlds are checked statically for every root (every
// interleaving at once, see orderCheck) and simulated for every root in one
// config, in two for a sample of roots (and the unrooted ops in every
// config). The race detector slows these single-goroutine checks about
// tenfold and adds nothing to them, so under it only worlds up to
// raceSmallWorld are exhaustive, and larger worlds are checked and simulated
// (one config; two for unrooted ops) for the sampled roots only; rotation
// equivalence, checked for every root, carries the result to the others.
const (
	smallWorld     = 12
	raceSmallWorld = 8
)

// simPlan returns the roots to check statically, and the configs to
// simulate for each.
func simPlan(op *opSpec, world int) (roots []int, cfgs func(root int) []simConfig) {
	roots = []int{0}
	if op.op.Rooted() {
		roots = make([]int, world)
		for r := range roots {
			roots[r] = r
		}
	}
	exhaustive := smallWorld
	if race.Enabled {
		exhaustive = raceSmallWorld
	}
	if world <= exhaustive || !op.op.Rooted() && !race.Enabled {
		return roots, func(int) []simConfig { return configs }
	}
	one := func(root int) []simConfig {
		k := (world + root) % len(configs)
		return configs[k : k+1]
	}
	two := func(root int) []simConfig {
		k := (world + root) % len(configs)
		return []simConfig{configs[k], configs[(k+2)%len(configs)]}
	}
	if !op.op.Rooted() {
		return roots, two
	}
	sampled := map[int]bool{0: true, world - 1: true, world * 5 / 7: true}
	if race.Enabled {
		return slices.Sorted(maps.Keys(sampled)), one
	}
	return roots, func(root int) []simConfig {
		if sampled[root] {
			return two(root)
		}
		return one(root)
	}
}

// rotRanks returns the ranks whose rotation equivalence is checked for a
// root: all of them, except under the race detector in large worlds, where
// the root, the ranks next to it and a middle rank keep the cost of checking
// every root of every world low.
func rotRanks(world, root int) []int {
	if world <= 16 || !race.Enabled {
		rs := make([]int, world)
		for i := range rs {
			rs[i] = i
		}
		return rs
	}
	return []int{root, (root + 1) % world, (root + 2) % world, (root + 3) % world, (root + world/2) % world, (root + world - 1) % world}
}

// rotated reports whether got, built for root, is base (built for root 0
// and rank got.Rank-root) relabelled: ranks move by root and, for ops whose
// segments are indexed by rank, so do the Dst and Tmp segments.
func rotated(op *opSpec, got, base Schedule, root int) bool {
	n := base.World
	rank := func(r int) int { return (r + root) % n }
	ref := func(r ring.Ref) ring.Ref {
		if op.rankSegs && (r.Buf == ring.Dst || r.Buf == ring.Tmp) {
			r.Seg = (r.Seg + root) % n
		}
		return r
	}
	if got.World != n || got.Rank != rank(base.Rank) || len(got.Local) != len(base.Local) || len(got.Sends) != len(base.Sends) || len(got.Recvs) != len(base.Recvs) {
		return false
	}
	for i, l := range base.Local {
		if got.Local[i] != (ring.Local{From: ref(l.From), To: ref(l.To)}) {
			return false
		}
	}
	for i, sd := range base.Sends {
		if got.Sends[i] != (Send{Peer: rank(sd.Peer), From: ref(sd.From), After: sd.After}) {
			return false
		}
	}
	for i, rv := range base.Recvs {
		if got.Recvs[i] != (Recv{Peer: rank(rv.Peer), Kind: rv.Kind, To: ref(rv.To), With: ref(rv.With), After: rv.After, AfterSend: rv.AfterSend}) {
			return false
		}
	}
	return true
}

func TestSchedules(t *testing.T) {
	for _, op := range ops {
		t.Run(op.name(), func(t *testing.T) {
			t.Parallel()
			sims := 0
			for world := 1; world <= maxWorld; world++ {
				var base []Schedule
				if op.op.Rooted() {
					base = op.build(world, 0)
				}
				// Every root of a rooted op is a rotation of root 0.
				for root := 1; root < len(base); root++ {
					for _, r := range rotRanks(world, root) {
						if got, b := Build(op.op, world, r, root), base[(r-root+world)%world]; !rotated(op, got, b, root) {
							t.Fatalf("world %d root %d: rank %d is not the rotation of root 0's rank %d:\n%v\nroot 0:\n%v", world, root, r, b.Rank, got, b)
						}
					}
				}
				roots, cfgs := simPlan(op, world)
				for _, root := range roots {
					schs := op.build(world, root)
					if errs := staticCheck(op, world, root, schs); len(errs) > 0 {
						t.Fatalf("world %d root %d:\n%s", world, root, strings.Join(errs, "\n"))
					}
					for _, cfg := range cfgs(root) {
						sims++
						if s := simulate(op, schs, root, cfg); len(s.errs) > 0 {
							t.Fatalf("world %d root %d %v:\n%s", world, root, cfg, strings.Join(s.errs, "\n"))
						}
					}
				}
			}
			t.Logf("%d simulations", sims)
		})
	}
}

// TestBinomial checks Binomial as a tree: a spanning tree of depth
// floor(log2 world) whose parent and children agree, children by decreasing
// subtree size, and whose vranks follow the bit rule.
func TestBinomial(t *testing.T) {
	for world := 1; world <= maxWorld; world++ {
		for root := range world {
			tr := Binomial(world, root)
			if err := checkTree(tr, world); err != nil {
				t.Fatalf("Binomial(%d, %d): %v", world, root, err)
			}
			if tr.Root != root {
				t.Fatalf("Binomial(%d, %d): root %d", world, root, tr.Root)
			}
			if d, want := depth(tr), bitsLen(world)-1; d != want {
				t.Fatalf("Binomial(%d, %d): depth %d, want %d", world, root, d, want)
			}
			for r := range world {
				v := (r - root + world) % world
				if v > 0 && tr.Parent[r] != (v&(v-1)+root)%world {
					t.Fatalf("Binomial(%d, %d): parent of %d is %d", world, root, r, tr.Parent[r])
				}
				kids := tr.Children[r]
				for i := 1; i < len(kids); i++ {
					if size(tr, kids[i-1]) < size(tr, kids[i]) {
						t.Fatalf("Binomial(%d, %d): children of %d %v not by decreasing subtree size", world, root, r, kids)
					}
				}
				if leaf := v > 0 && binomialLeaf(world, v); leaf != (v > 0 && len(kids) == 0) {
					t.Fatalf("Binomial(%d, %d): binomialLeaf(%d) = %v with children %v", world, root, v, leaf, kids)
				}
			}
		}
	}
}

// TestBinaryTrees checks the double binary tree's shape for every world:
// two spanning trees of depth <= floor(log2 world), at most two children per
// rank, tree 0's leaves the even ranks, tree 1 the mirror (even worlds) or
// shift (odd worlds) of tree 0, and every rank interior in at most one tree
// (exactly one in even worlds above 1).
func TestBinaryTrees(t *testing.T) {
	for world := 1; world <= maxWorld; world++ {
		ts := BinaryTrees(world)
		m := func(r int) int { return world - 1 - r }
		if world%2 == 1 {
			m = func(r int) int { return (r + 1) % world }
		}
		for h, tr := range ts {
			if err := checkTree(tr, world); err != nil {
				t.Fatalf("BinaryTrees(%d)[%d]: %v", world, h, err)
			}
			if d := depth(tr); d > bitsLen(world)-1 {
				t.Fatalf("BinaryTrees(%d)[%d]: depth %d", world, h, d)
			}
			for r, kids := range tr.Children {
				if len(kids) > 2 {
					t.Fatalf("BinaryTrees(%d)[%d]: rank %d has %d children", world, h, r, len(kids))
				}
			}
		}
		for r := range world {
			if leaf := len(ts[0].Children[r]) == 0; leaf != (r%2 == 0) {
				t.Fatalf("BinaryTrees(%d)[0]: rank %d leaf=%v", world, r, leaf)
			}
			mp := -1
			if p := ts[0].Parent[r]; p >= 0 {
				mp = m(p)
			}
			if ts[1].Parent[m(r)] != mp {
				t.Fatalf("BinaryTrees(%d): tree 1 is not tree 0 relabelled at rank %d", world, r)
			}
			interior := 0
			for _, tr := range ts {
				if len(tr.Children[r]) > 0 {
					interior++
				}
			}
			if interior > 1 || (world%2 == 0 && world > 1 && interior != 1) {
				t.Fatalf("BinaryTrees(%d): rank %d is interior in %d trees", world, r, interior)
			}
		}
		if ts[0].Root != 1<<(bitsLen(world)-1)-1 {
			t.Fatalf("BinaryTrees(%d): tree 0 root %d", world, ts[0].Root)
		}
	}
}

// TestDoubleBinaryTreeLinks checks the property that makes the per-peer order
// of DoubleBinaryTree safe: a directed link carries at most one up and one
// down transfer, the up first.
func TestDoubleBinaryTreeLinks(t *testing.T) {
	for world := 2; world <= maxWorld; world++ {
		for r := range world {
			s := DoubleBinaryTree(world, r)
			per := map[int][]Send{}
			for _, sd := range s.Sends {
				per[sd.Peer] = append(per[sd.Peer], sd)
			}
			ts := BinaryTrees(world)
			for p, sends := range per {
				ups := 0
				for k, sd := range sends {
					up := ts[sd.From.Seg].Parent[r] == p
					if up {
						ups++
						if k > 0 {
							t.Fatalf("DoubleBinaryTree(%d, %d): up transfer to %d after a down one", world, r, p)
						}
					}
				}
				if ups > 1 || len(sends)-ups > 1 {
					t.Fatalf("DoubleBinaryTree(%d, %d): %d transfers to %d", world, r, len(sends), p)
				}
			}
		}
	}
}

func checkTree(tr Tree, world int) error {
	if len(tr.Parent) != world || len(tr.Children) != world {
		return fmt.Errorf("%d parents, %d child lists", len(tr.Parent), len(tr.Children))
	}
	if tr.Root < 0 || tr.Root >= world || tr.Parent[tr.Root] != -1 {
		return fmt.Errorf("bad root %d", tr.Root)
	}
	for r, p := range tr.Parent {
		if r != tr.Root && (p < 0 || p >= world || !slices.Contains(tr.Children[p], r)) {
			return fmt.Errorf("rank %d: parent %d does not list it", r, p)
		}
		for _, c := range tr.Children[r] {
			if c < 0 || c >= world || tr.Parent[c] != r {
				return fmt.Errorf("rank %d lists child %d whose parent is not %d", r, c, r)
			}
		}
	}
	if n := size(tr, tr.Root); n != world {
		return fmt.Errorf("spans %d of %d ranks", n, world)
	}
	return nil
}

func size(tr Tree, v int) int {
	n := 1
	for _, c := range tr.Children[v] {
		n += size(tr, c)
	}
	return n
}

func depth(tr Tree) int {
	var d func(v int) int
	d = func(v int) int {
		m := 0
		for _, c := range tr.Children[v] {
			m = max(m, 1+d(c))
		}
		return m
	}
	return d(tr.Root)
}

func bitsLen(n int) int {
	b := 0
	for ; n > 0; n >>= 1 {
		b++
	}
	return b
}

func TestParts(t *testing.T) {
	for world := 1; world <= maxWorld; world++ {
		for _, tc := range []struct {
			op            Op
			dst, src, tmp int
			tmpLen        int // for count 10
		}{
			{OpBinomialBroadcast, 1, 0, 0, 0},
			{OpBinomialReduce, 1, 1, 1, 10},
			{OpBinomialGather, world, 1, world, 10 * world},
			{OpRecursiveDoubling, 1, 0, 0, 0},
			{OpDoubleBinaryTree, 2, 0, 0, 0},
		} {
			d, s, m := Parts(tc.op, world)
			if d != tc.dst || s != tc.src || m != tc.tmp {
				t.Fatalf("Parts(%v, %d) = %d, %d, %d", tc.op, world, d, s, m)
			}
			if n := TmpLen(tc.op, world, 10); n != tc.tmpLen {
				t.Fatalf("TmpLen(%v, %d, 10) = %d", tc.op, world, n)
			}
		}
	}
}

// Every schedule uses exactly the buffers Parts declares: no reference to a
// buffer with 0 parts (TestSchedules checks the ranges).
func TestPartsUsed(t *testing.T) {
	for _, op := range ops {
		for world := 1; world <= 17; world++ {
			used := map[ring.Buf]bool{}
			for _, s := range op.build(world, world/2) {
				for _, l := range s.Local {
					used[l.From.Buf], used[l.To.Buf] = true, true
				}
				for _, sd := range s.Sends {
					used[sd.From.Buf] = true
				}
				for _, rv := range s.Recvs {
					used[rv.To.Buf], used[rv.With.Buf] = true, true
				}
			}
			d, s, m := Parts(op.op, world)
			for buf, parts := range map[ring.Buf]int{ring.Dst: d, ring.Src: s, ring.Tmp: m} {
				if used[buf] && parts == 0 {
					t.Errorf("%v world %d uses %v, which Parts says it has not", op.name(), world, buf)
				}
				if !used[buf] && parts > 0 && world >= 4 {
					t.Errorf("%v world %d never uses %v", op.name(), world, buf)
				}
			}
			if used[ring.Stage] {
				t.Errorf("%v world %d uses Stage", op.name(), world)
			}
		}
	}
}

func TestWorldOne(t *testing.T) {
	copyAll := []ring.Local{{From: ring.Ref{Buf: ring.Src}, To: ring.Ref{Buf: ring.Dst}}}
	for _, tc := range []struct {
		s     Schedule
		local []ring.Local
	}{
		{BinomialBroadcast(1, 0, 0), nil},
		{BinomialReduce(1, 0, 0), copyAll},
		{BinomialGather(1, 0, 0), copyAll},
		{RecursiveDoubling(1, 0), nil},
		{DoubleBinaryTree(1, 0), nil},
	} {
		if fmt.Sprint(tc.s.Local) != fmt.Sprint(tc.local) || len(tc.s.Sends)+len(tc.s.Recvs) != 0 || tc.s.World != 1 || tc.s.Rank != 0 {
			t.Errorf("world 1: %v", tc.s)
		}
	}
}

// Hand-checked schedules, so that a bug shared by the schedules and the
// simulator's reference cannot hide.
func TestHandChecked(t *testing.T) {
	d0, d1 := ring.Ref{Buf: ring.Dst}, ring.Ref{Buf: ring.Dst, Seg: 1}
	for _, tc := range []struct {
		got, want Schedule
	}{
		// World 4: tree 0 = 3 <- 1 <- {0, 2}; tree 1 (mirror) = 0 <- 2 <- {3, 1}.
		// Rank 1 is interior in tree 0 (parent 3) and a leaf of tree 1 (parent 2).
		{DoubleBinaryTree(4, 1), Schedule{World: 4, Rank: 1,
			Sends: []Send{{Peer: 3, From: d0, After: 1}, {Peer: 2, From: d1, After: -1}, {Peer: 0, From: d0, After: 2}, {Peer: 2, From: d0, After: 2}},
			Recvs: []Recv{
				{Peer: 0, Kind: ring.RecvReduce, To: d0, After: -1, AfterSend: -1},
				{Peer: 2, Kind: ring.RecvReduce, To: d0, After: 0, AfterSend: -1},
				{Peer: 3, Kind: ring.RecvCopy, To: d0, After: 1, AfterSend: 0},
				{Peer: 2, Kind: ring.RecvCopy, To: d1, After: -1, AfterSend: 1},
			}}},
		// World 3: p = 2; rank 2 folds into rank 0.
		{RecursiveDoubling(3, 0), Schedule{World: 3, Rank: 0,
			Sends: []Send{{Peer: 1, From: d0, After: 0}, {Peer: 2, From: d0, After: 1}},
			Recvs: []Recv{
				{Peer: 2, Kind: ring.RecvReduce, To: d0, After: -1, AfterSend: -1},
				{Peer: 1, Kind: ring.RecvReduce, To: d0, After: 0, AfterSend: 0},
			}}},
		{RecursiveDoubling(3, 2), Schedule{World: 3, Rank: 2,
			Sends: []Send{{Peer: 0, From: d0, After: -1}},
			Recvs: []Recv{{Peer: 0, Kind: ring.RecvCopy, To: d0, After: -1, AfterSend: 0}}}},
		// World 6, root 0: children of 0 are 4 (subtree {4, 5}), 2 ({2, 3}), 1.
		{BinomialBroadcast(6, 0, 0), Schedule{World: 6, Rank: 0,
			Sends: []Send{{Peer: 4, From: d0, After: -1}, {Peer: 2, From: d0, After: -1}, {Peer: 1, From: d0, After: -1}},
			Recvs: []Recv{
				{Peer: 1, Kind: ring.RecvAck, After: -1, AfterSend: -1},
				{Peer: 2, Kind: ring.RecvAck, After: 0, AfterSend: -1},
				{Peer: 4, Kind: ring.RecvAck, After: 1, AfterSend: -1},
			}}},
	} {
		if tc.got.String() != tc.want.String() {
			t.Errorf("got:\n%v\nwant:\n%v", tc.got, tc.want)
		}
	}
}

func TestPanics(t *testing.T) {
	cases := map[string]func(){
		"Broadcast world 0":  func() { BinomialBroadcast(0, 0, 0) },
		"Broadcast root":     func() { BinomialBroadcast(4, 0, 4) },
		"Reduce rank":        func() { BinomialReduce(3, 3, 0) },
		"Reduce root -1":     func() { BinomialReduce(3, 0, -1) },
		"Gather root":        func() { BinomialGather(3, 0, 7) },
		"RD rank -1":         func() { RecursiveDoubling(4, -1) },
		"DBT rank=world":     func() { DoubleBinaryTree(4, 4) },
		"Binomial root":      func() { Binomial(2, 2) },
		"BinaryTrees 0":      func() { BinaryTrees(0) },
		"Parts op":           func() { Parts(0, 2) },
		"Parts world":        func() { Parts(OpDoubleBinaryTree, 0) },
		"TmpLen count":       func() { TmpLen(OpBinomialReduce, 2, -1) },
		"Build op":           func() { Build(Op(99), 2, 0, 0) },
		"Build rooted range": func() { Build(OpBinomialGather, 2, 0, 2) },
	}
	schedtest.Panics(t, "tree: ", cases)
}

func TestStrings(t *testing.T) {
	for o, want := range map[Op]string{OpBinomialBroadcast: "BinomialBroadcast", OpDoubleBinaryTree: "DoubleBinaryTree", 0: "Op(0)"} {
		if got := o.String(); got != want {
			t.Errorf("Op(%d).String() = %q, want %q", uint8(o), got, want)
		}
	}
	if got := (Send{Peer: 2, After: 3}).String(); got != "send ack to 2 after R3" {
		t.Errorf("ack send: %q", got)
	}
	rv := Recv{Peer: 1, Kind: ring.RecvCopyReduce, To: ring.Ref{Buf: ring.Tmp, Seg: 2}, With: ring.Ref{Buf: ring.Src, Seg: 2}, After: -1, AfterSend: 0}
	if got := rv.String(); got != "recv CopyReduce Tmp[2] with Src[2] from 1 after S0" {
		t.Errorf("recv: %q", got)
	}
}

// TestRendezvous runs the schedules over a transport that buffers nothing
// (modeRendezvous). All but RecursiveDoubling complete, so they complete
// with any buffering: every wait in them is for a transfer that causally
// precedes the frame waited on. RecursiveDoubling's exchange does not: each
// partner must finish sending chunk c before it writes the chunk c it
// receives, so it needs either a link that buffers a chunk per direction or
// an executor that reads a RecvReduce payload aside before it waits for the
// recv's dependencies (scratch), with which it completes too.
func TestRendezvous(t *testing.T) {
	for _, op := range ops {
		for world := 1; world <= maxWorld; world++ {
			if world > smallWorld && (race.Enabled && world < maxWorld-1 || world%8 != 0 && world%8 != 1 && world != maxWorld-1) {
				continue
			}
			root := world * 5 / 7
			schs := op.build(world, root)
			for _, cfg := range rendezvous {
				s := simulate(op, schs, root, cfg)
				errs := strings.Join(s.errs, "\n")
				if op.op == OpRecursiveDoubling && world > 1 && !cfg.scratch {
					if !strings.Contains(errs, "deadlock") {
						t.Fatalf("%v world %d %v: want a deadlock without buffering, got %q", op.name(), world, cfg, errs)
					}
					continue
				}
				if len(s.errs) > 0 {
					t.Fatalf("%v world %d root %d %v:\n%s", op.name(), world, root, cfg, errs)
				}
			}
		}
	}
}

func ExampleDoubleBinaryTree() {
	// World 6: tree 0 is 3 <- {1 <- {0, 2}, 5 <- 4}; tree 1 its mirror
	// (r -> 5-r). Rank 3 is the root of tree 0 and a leaf of tree 1.
	fmt.Print(DoubleBinaryTree(6, 3))
	// Output:
	// rank 3/6
	//   S0: send Dst[1] to 4
	//   S1: send Dst[0] to 1 after R1
	//   S2: send Dst[0] to 5 after R1
	//   R0: recv Reduce Dst[0] from 1
	//   R1: recv Reduce Dst[0] from 5 after R0
	//   R2: recv Copy Dst[1] from 4 after S0
}

func ExampleBinomialGather() {
	// World 4, root 0: rank 2 forwards its own block, then rank 3's.
	fmt.Print(BinomialGather(4, 2, 0))
	// Output:
	// rank 2/4
	//   S0: send Src[0] to 0
	//   S1: send Tmp[3] to 0 after R0
	//   S2: send ack to 3 after R0
	//   R0: recv Copy Tmp[3] from 3
}

func ExampleRecursiveDoubling() {
	// World 6 = 4 + 2: rank 5 folds into rank 1, which then exchanges with
	// ranks 0 and 2 (its neighbours in Gray-code order 0 1 3 2) and hands
	// the result back.
	fmt.Print(RecursiveDoubling(6, 1))
	// Output:
	// rank 1/6
	//   S0: send Dst[0] to 0 after R0
	//   S1: send Dst[0] to 2 after R1
	//   S2: send Dst[0] to 5 after R2
	//   R0: recv Reduce Dst[0] from 5
	//   R1: recv Reduce Dst[0] from 0 after R0 after S0
	//   R2: recv Reduce Dst[0] from 2 after R1 after S1
}

func ExampleBinaryTrees() {
	for h, t := range BinaryTrees(6) {
		fmt.Println("tree", h, "root", t.Root, "children", t.Children)
	}
	// Output:
	// tree 0 root 3 children [[] [0 2] [] [1 5] [] [4]]
	// tree 1 root 2 children [[1] [] [4 0] [] [5 3] []]
}
