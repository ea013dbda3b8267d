package ring

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"testing/quick"

	"github.com/ringo-ml/ringo/internal/race"
	"github.com/ringo-ml/ringo/internal/schedtest"
)

const maxWorld = 64

// opSpec describes one op to the tests: its schedule, its segment layout and
// the naive reference for its final state.
type opSpec struct {
	name     string
	rooted   bool
	rankSegs bool // Dst/Stage segments are indexed by rank (rotate with the root)
	inPlace  bool // Dst holds the input (leaves 'x'); otherwise Dst starts as 'd' leaves
	build    func(world, rank, root int) Schedule
	// Number of Src / Dst segments a rank's buffers have; Dst 0 means the
	// rank has no output buffer (any access is an error).
	srcSegs, dstSegs func(world, rank, root int) int
	stageSegs        func(world int) int
	// tmpSegs is the number of Tmp segments (Src's layout) a rank may use;
	// 0 for every op but ReduceScatter.
	tmpSegs func(world int) int
	// segLen is the length in elements of a segment when the op is called
	// with count (AllReduce: len(dst); otherwise the block length).
	segLen func(world int, ref Ref, count int) int
	counts func(world, rank, root int) (sends, recvs int)
	ackTo  func(world, root int) int // the rank whose last recv is the completion ack, or -1
	check  func(s *sim)
}

func noRoot(f func(world, rank int) Schedule) func(world, rank, root int) Schedule {
	return func(world, rank, _ int) Schedule { return f(world, rank) }
}

func constSegs(n int) func(world, rank, root int) int {
	return func(int, int, int) int { return n }
}

func worldSegs(world, _, _ int) int { return world }

func rootOnly(segs func(world int) int) func(world, rank, root int) int {
	return func(world, rank, root int) int {
		if rank == root {
			return segs(world)
		}
		return 0
	}
}

func blockLen(_ int, _ Ref, count int) int { return count }

func sameCount(n func(world int) int) func(world, rank, root int) (int, int) {
	return func(world, _, _ int) (int, int) { return n(world), n(world) }
}

func noAck(int, int) int { return -1 }

func noTmp(int) int { return 0 }

var ops = []*opSpec{
	{
		name: "AllReduce", inPlace: true, build: noRoot(AllReduce),
		srcSegs: constSegs(0), dstSegs: worldSegs, stageSegs: func(int) int { return 0 }, tmpSegs: noTmp,
		segLen: func(world int, ref Ref, count int) int {
			_, n := Split(count, world, ref.Seg)
			return n
		},
		counts: sameCount(func(n int) int { return 2 * (n - 1) }),
		ackTo:  noAck,
		check: func(s *sim) {
			n := s.world
			for k := range n {
				for c := range s.cfg.chunks {
					// x_{k-1} ⊕ (x_{k-2} ⊕ (... ⊕ (x_{k+1} ⊕ x_k)))
					want := s.e.leaf('x', k, k, c)
					for j := 1; j < n; j++ {
						want = s.e.plus(s.e.leaf('x', mod(k+j, n), k, c), want)
					}
					s.checkOnce("reference", want, k, c)
					for r := range n {
						if got := s.dst(r, k, c); !s.e.same(got, want) {
							s.fail("rank %d Dst[%d] chunk %d = %s, want %s", r, k, c, s.e.String(got), s.e.String(want))
						}
					}
				}
			}
		},
	},
	{
		name: "ReduceScatter", build: noRoot(ReduceScatter),
		srcSegs: worldSegs, dstSegs: constSegs(1), stageSegs: func(int) int { return 0 }, tmpSegs: func(n int) int { return n },
		segLen: blockLen,
		counts: sameCount(func(n int) int { return n - 1 }),
		ackTo:  noAck,
		check: func(s *sim) {
			n := s.world
			chain := make([]int, n)
			for r := range n {
				// ((x_{r+1} ⊕ x_{r+2}) ⊕ ...) ⊕ x_r, block r
				for j := range n {
					chain[j] = mod(r+1+j, n)
				}
				for c := range s.chunks {
					want := s.wantFold(chain, r, c)
					s.checkOnce("reference", want, r, c)
					if got := s.dst(r, 0, c); !s.e.same(got, want) {
						s.fail("rank %d Dst[0] chunk %d = %s, want %s", r, c, s.e.String(got), s.e.String(want))
					}
				}
			}
		},
	},
	{
		name: "AllGather", build: noRoot(AllGather),
		srcSegs: constSegs(1), dstSegs: worldSegs, stageSegs: func(int) int { return 0 }, tmpSegs: noTmp,
		segLen: blockLen,
		counts: sameCount(func(n int) int { return n - 1 }),
		ackTo:  noAck,
		check: func(s *sim) {
			for r := range s.world {
				for k := range s.world {
					for c := range s.chunks {
						if got, want := s.dst(r, k, c), s.e.leaf('x', k, 0, c); !s.e.same(got, want) {
							s.fail("rank %d Dst[%d] chunk %d = %s, want %s", r, k, c, s.e.String(got), s.e.String(want))
						}
					}
				}
			}
		},
	},
	{
		name: "Broadcast", rooted: true, inPlace: true, build: Broadcast,
		srcSegs: constSegs(0), dstSegs: constSegs(1), stageSegs: func(int) int { return 0 }, tmpSegs: noTmp,
		segLen: blockLen,
		counts: func(world, _, _ int) (int, int) { return min(1, world-1), min(1, world-1) },
		ackTo:  func(world, root int) int { return root },
		check: func(s *sim) {
			for r := range s.world {
				for c := range s.chunks {
					if got, want := s.dst(r, 0, c), s.e.leaf('x', s.root, 0, c); !s.e.same(got, want) {
						s.fail("rank %d Dst[0] chunk %d = %s, want %s", r, c, s.e.String(got), s.e.String(want))
					}
				}
			}
		},
	},
	{
		name: "Reduce", rooted: true, build: Reduce,
		srcSegs: constSegs(1), dstSegs: rootOnly(func(int) int { return 1 }), stageSegs: func(int) int { return 1 }, tmpSegs: noTmp,
		segLen: blockLen,
		counts: func(world, _, _ int) (int, int) { return min(1, world-1), min(1, world-1) },
		ackTo:  func(world, root int) int { return (root + 1) % world },
		check: func(s *sim) {
			n := s.world
			chain := make([]int, n)
			for j := range n {
				chain[j] = mod(s.root+1+j, n)
			}
			for c := range s.chunks {
				want := s.wantFold(chain, 0, c)
				s.checkOnce("reference", want, 0, c)
				if got := s.dst(s.root, 0, c); !s.e.same(got, want) {
					s.fail("root %d Dst[0] chunk %d = %s, want %s", s.root, c, s.e.String(got), s.e.String(want))
				}
			}
		},
	},
	{
		name: "Gather", rooted: true, rankSegs: true, build: Gather,
		srcSegs: constSegs(1), dstSegs: rootOnly(func(n int) int { return n }), stageSegs: func(n int) int { return n }, tmpSegs: noTmp,
		segLen: blockLen,
		counts: func(world, rank, root int) (int, int) {
			if world == 1 {
				return 0, 0
			}
			if rank == root {
				return 1, world - 1
			}
			d := mod(root-rank, world)
			recvs := world - 1 - d
			if d == world-1 {
				recvs++ // the ack
			}
			return world - d, recvs
		},
		ackTo: func(world, root int) int { return (root + 1) % world },
		check: func(s *sim) {
			for k := range s.world {
				for c := range s.chunks {
					if got, want := s.dst(s.root, k, c), s.e.leaf('x', k, 0, c); !s.e.same(got, want) {
						s.fail("root %d Dst[%d] chunk %d = %s, want %s", s.root, k, c, s.e.String(got), s.e.String(want))
					}
				}
			}
		},
	},
	{
		name: "Barrier", build: noRoot(Barrier),
		srcSegs: constSegs(0), dstSegs: constSegs(0), stageSegs: func(int) int { return 0 }, tmpSegs: noTmp,
		segLen: blockLen,
		counts: sameCount(func(n int) int { return n - 1 }),
		ackTo:  noAck,
		check: func(s *sim) {
			if s.world == 1 {
				return
			}
			for r, st := range s.ranks {
				k := st.recvKnow[(len(st.sch.Recvs)-1)*s.chunks]
				if k.started != all(s.world) {
					s.fail("rank %d leaves the barrier before ranks %b started", r, all(s.world)&^k.started)
				}
			}
		},
	},
	{
		name: "SendRecv", build: noRoot(SendRecv),
		srcSegs: constSegs(1), dstSegs: constSegs(1), stageSegs: func(int) int { return 0 }, tmpSegs: noTmp,
		segLen: blockLen,
		counts: sameCount(func(n int) int { return min(1, n-1) }),
		ackTo:  noAck,
		check: func(s *sim) {
			for r := range s.world {
				for c := range s.chunks {
					if got, want := s.dst(r, 0, c), s.e.leaf('x', mod(r-1, s.world), 0, c); !s.e.same(got, want) {
						s.fail("rank %d Dst[0] chunk %d = %s, want %s", r, c, s.e.String(got), s.e.String(want))
					}
				}
			}
		},
	},
}

// staticCheck verifies the shape of one world's schedules without running
// them: fields, counts, references, frame pairing and segment lengths, and
// the stage FIFO discipline and the Tmp write-once/read-after discipline.
func staticCheck(op *opSpec, world, root int, schs []Schedule) []string {
	var errs []string
	fail := func(format string, args ...any) {
		if len(errs) < 10 {
			errs = append(errs, fmt.Sprintf(format, args...))
		}
	}
	inRange := func(r int, ref Ref, data bool) bool {
		var segs int
		switch ref.Buf {
		case Dst:
			segs = op.dstSegs(world, r, root)
		case Src:
			segs = op.srcSegs(world, r, root)
		case Stage:
			segs = op.stageSegs(world)
		case Tmp:
			segs = op.tmpSegs(world)
		default:
			return !data && ref == Ref{}
		}
		return data && ref.Seg >= 0 && ref.Seg < segs
	}
	for r, s := range schs {
		if s.World != world || s.Rank != r {
			fail("rank %d: header World=%d Rank=%d", r, s.World, s.Rank)
		}
		next, prev := (r+1)%world, (r-1+world)%world
		for i, sd := range s.Sends {
			if sd.Peer != next {
				fail("rank %d: send %d goes to %d, not to its successor %d", r, i, sd.Peer, next)
			}
		}
		for i, rv := range s.Recvs {
			if rv.Peer != prev || rv.After != -1 {
				fail("rank %d: recv %d (%v) is not the next frame from its predecessor %d", r, i, rv, prev)
			}
			if rv.AfterSend >= i || rv.AfterSend < -1 {
				fail("rank %d: recv %d follows send %d", r, i, rv.AfterSend)
			}
		}
		wantS, wantR := op.counts(world, r, root)
		if len(s.Sends) != wantS || len(s.Recvs) != wantR {
			fail("rank %d: %d sends, %d recvs; want %d, %d", r, len(s.Sends), len(s.Recvs), wantS, wantR)
		}
		if world == 1 && (len(s.Sends) > 0 || len(s.Recvs) > 0) {
			fail("world 1 must not transfer")
		}
		for _, l := range s.Local {
			if l.To.Buf != Dst || !inRange(r, l.To, true) || (l.From.Buf != Src && l.From.Buf != Dst) || !inRange(r, l.From, true) {
				fail("rank %d: bad Local %v -> %v", r, l.From, l.To)
			}
		}
		var stageFills []int
		tmpWriter := map[int]int{} // Tmp segment -> the recv that writes it
		for j, rv := range s.Recvs {
			if rv.To.Buf == Tmp {
				if w, dup := tmpWriter[rv.To.Seg]; dup {
					fail("rank %d recv %d (%v): Tmp segment already written by recv %d", r, j, rv, w)
				}
				tmpWriter[rv.To.Seg] = j
			}
			ok := true
			switch rv.Kind {
			case RecvCopy, RecvReduce:
				ok = rv.To.Buf == Dst && inRange(r, rv.To, true) && rv.With == Ref{}
			case RecvCopyReduce:
				ok = (rv.To.Buf == Dst || rv.To.Buf == Tmp) && inRange(r, rv.To, true) && rv.With.Buf == Src && inRange(r, rv.With, true)
			case RecvStage:
				ok = rv.To.Buf == Stage && inRange(r, rv.To, true) && rv.With == Ref{}
				stageFills = append(stageFills, j)
			case RecvStageReduce:
				ok = rv.To.Buf == Stage && inRange(r, rv.To, true) && rv.With.Buf == Src && inRange(r, rv.With, true)
				stageFills = append(stageFills, j)
			case RecvAck:
				ok = rv.To == Ref{} && rv.With == Ref{}
			default:
				ok = false
			}
			if !ok {
				fail("rank %d recv %d: malformed %v", r, j, rv)
			}
		}
		stageSends := 0
		for i, sd := range s.Sends {
			if sd.After < -1 || sd.After >= len(s.Recvs) {
				fail("rank %d send %d: After %d out of range", r, i, sd.After)
				continue
			}
			if !inRange(r, sd.From, sd.From.Buf != None) {
				fail("rank %d send %d: bad From %v", r, i, sd.From)
				continue
			}
			if sd.From.Buf == Tmp {
				if w, ok := tmpWriter[sd.From.Seg]; !ok || sd.After != w {
					fail("rank %d send %d (%v): does not depend on the recv that writes its Tmp segment", r, i, sd)
				}
			}
			if sd.From.Buf == Stage {
				if stageSends >= len(stageFills) || sd.After != stageFills[stageSends] || s.Recvs[sd.After].To != sd.From {
					fail("rank %d send %d (%v): does not consume staged slot %d in FIFO order (fills at %v)", r, i, sd, stageSends, stageFills)
				}
				stageSends++
			}
			// A data send that depends on a data recv reads what that recv wrote,
			// so chunk c of one matches chunk c of the other.
			if sd.From.Buf != None && sd.After >= 0 && s.Recvs[sd.After].Kind != RecvAck && s.Recvs[sd.After].To != sd.From {
				fail("rank %d send %d (%v) depends on recv %d (%v) which wrote another segment", r, i, sd, sd.After, s.Recvs[sd.After])
			}
		}
		if stageSends != len(stageFills) {
			fail("rank %d: %d staged slots but %d sends from Stage", r, len(stageFills), stageSends)
		}
	}
	if len(errs) > 0 {
		return errs
	}
	// Frame pairing: send i of r is recv i of Next(r).
	counts := []int{0, 1, world - 1, world, 3*world + 1, 1000}
	for r, s := range schs {
		next := (r + 1) % world
		nx := schs[next]
		if len(s.Sends) != len(nx.Recvs) {
			fail("rank %d sends %d frames, rank %d receives %d", r, len(s.Sends), next, len(nx.Recvs))
			continue
		}
		for i, sd := range s.Sends {
			rv := nx.Recvs[i]
			if (sd.From.Buf == None) != (rv.Kind == RecvAck) {
				fail("rank %d send %d (%v) vs rank %d recv %d (%v): ack/data mismatch", r, i, sd, next, i, rv)
				continue
			}
			if rv.Kind == RecvAck || (sd.From == rv.To && rv.With == Ref{}) {
				// The layout is the same on every rank, so identical
				// references have identical lengths.
				continue
			}
			for _, count := range counts {
				n := op.segLen(world, sd.From, count)
				m := op.segLen(world, rv.To, count)
				w := m
				if rv.With.Buf != None {
					w = op.segLen(world, rv.With, count)
				}
				if n != m || n != w {
					fail("count %d: rank %d send %d (%v, %d elems) vs rank %d recv %d (%v, %d/%d elems)", count, r, i, sd, n, next, i, rv, m, w)
				}
			}
		}
		for _, l := range s.Local {
			for _, count := range counts {
				if op.segLen(world, l.From, count) != op.segLen(world, l.To, count) {
					fail("count %d: rank %d Local %v -> %v length mismatch", count, r, l.From, l.To)
				}
			}
		}
	}
	return errs
}

// smallWorld bounds the worlds that are simulated exhaustively: every root,
// every config. Every larger world is simulated with one interleaving and a
// sample of roots; rotation equivalence (checked for every root) carries the
// result to the other roots. Under the race detector, which slows the
// simulator about tenfold and adds nothing to a single-goroutine model, worlds
// above raceWorld are simulated only at the sizes in raceSizes (they are
// still statically checked), so that the package stays fast with -race.
const (
	smallWorld = 10
	raceWorld  = 32
)

var raceSizes = map[int]bool{33: true, 48: true, 63: true, 64: true}

var configs = []simConfig{
	{mode: modeRandom, seed: 1, chunks: 1},
	{mode: modeEagerSend, seed: 2, chunks: 2},
	{mode: modeEagerRecv, seed: 3, chunks: 3},
	{mode: modeRandom, seed: 4, chunks: 3},
}

// simPlan returns the roots whose schedules are statically checked, and the
// configs to simulate for each (none for roots that are only checked
// statically).
func simPlan(op *opSpec, world int) (roots []int, cfgs func(root int) []simConfig) {
	if world <= smallWorld {
		roots = []int{0}
		if op.rooted {
			roots = make([]int, world)
			for i := range roots {
				roots[i] = i
			}
		}
		return roots, func(int) []simConfig { return configs }
	}
	// Simulate a different position of the root in every world; Broadcast
	// and Reduce are cheap enough to also cover the ring's ends. Without the
	// race detector every root is still checked statically.
	simulated := map[int]bool{0: true}
	if op.rooted {
		simulated = map[int]bool{(world * 5 / 7) % world: true}
		if op.name != "Gather" {
			simulated[0], simulated[world-1] = true, true
		}
	}
	roots = []int{0}
	if op.rooted && !race.Enabled {
		roots = make([]int, world)
		for i := range roots {
			roots[i] = i
		}
	} else if op.rooted {
		roots = slices.Sorted(maps.Keys(simulated))
	}
	return roots, func(root int) []simConfig {
		if !simulated[root] || (race.Enabled && world > raceWorld && !raceSizes[world]) {
			return nil
		}
		chunks := 1
		if world%8 == 0 {
			chunks = 2
		}
		return []simConfig{{mode: simMode((world + root) % 3), seed: uint64(world), chunks: chunks}}
	}
}

// rotRanks returns the ranks whose rotation equivalence is checked for a
// root: all of them, except under the race detector in large worlds, where
// the root, its neighbours (the chains' ends and the ack receivers) and a
// middle rank keep the cost of checking every root of every world quadratic.
func rotRanks(world, root int) []int {
	if world <= 16 || !race.Enabled {
		rs := make([]int, world)
		for i := range rs {
			rs[i] = i
		}
		return rs
	}
	return []int{root, (root + 1) % world, (root + 2) % world, (root + world/2) % world, (root + world - 1) % world}
}

// rotated reports whether got, built for root, is base (built for root 0
// and rank got.Rank-root) relabelled: ranks move by root and, for ops whose
// segments are indexed by rank, so do the Dst and Stage segments.
func rotated(op *opSpec, got, base Schedule, root int) bool {
	n := base.World
	ref := func(r Ref) Ref {
		if op.rankSegs && (r.Buf == Dst || r.Buf == Stage) {
			r.Seg = mod(r.Seg+root, n)
		}
		return r
	}
	if got.World != n || got.Rank != mod(base.Rank+root, n) ||
		len(got.Local) != len(base.Local) || len(got.Sends) != len(base.Sends) || len(got.Recvs) != len(base.Recvs) {
		return false
	}
	for i, l := range base.Local {
		if got.Local[i] != (Local{From: ref(l.From), To: ref(l.To)}) {
			return false
		}
	}
	for i, sd := range base.Sends {
		if got.Sends[i] != (Send{Peer: mod(sd.Peer+root, n), From: ref(sd.From), After: sd.After}) {
			return false
		}
	}
	for i, rv := range base.Recvs {
		if got.Recvs[i] != (Recv{Peer: mod(rv.Peer+root, n), Kind: rv.Kind, To: ref(rv.To), With: ref(rv.With), After: rv.After, AfterSend: rv.AfterSend}) {
			return false
		}
	}
	return true
}

func simulate(op *opSpec, world, root int, cfg simConfig) []string {
	s := newSim(op, world, root, cfg)
	s.run()
	if len(s.errs) == 0 {
		op.check(s)
	}
	if len(s.errs) == 0 && world > 1 {
		if a := op.ackTo(world, root); a >= 0 {
			st := s.ranks[a]
			if last := len(st.sch.Recvs) - 1; last < 0 || st.sch.Recvs[last].Kind != RecvAck {
				s.fail("rank %d: last recv is not the completion ack", a)
			} else if k := st.recvKnow[last*s.chunks]; k.finished != all(world) {
				s.fail("rank %d gets the completion ack before ranks %b finished", a, all(world)&^k.finished)
			}
		}
	}
	return s.errs
}

func TestSchedules(t *testing.T) {
	for _, op := range ops {
		t.Run(op.name, func(t *testing.T) {
			t.Parallel()
			for world := 1; world <= maxWorld; world++ {
				// Every root of a rooted op is a rotation of root 0.
				if op.rooted {
					base := make([]Schedule, world)
					for r := range world {
						base[r] = op.build(world, r, 0)
					}
					for root := 1; root < world; root++ {
						for _, r := range rotRanks(world, root) {
							if got, b := op.build(world, r, root), base[mod(r-root, world)]; !rotated(op, got, b, root) {
								t.Fatalf("world %d root %d: rank %d is not the rotation of root 0's rank %d:\n%v\nroot 0:\n%v", world, root, r, b.Rank, got, b)
							}
						}
					}
				}
				roots, cfgs := simPlan(op, world)
				for _, root := range roots {
					schs := make([]Schedule, world)
					for r := range world {
						schs[r] = op.build(world, r, root)
					}
					if errs := staticCheck(op, world, root, schs); len(errs) > 0 {
						t.Fatalf("world %d root %d:\n%s", world, root, strings.Join(errs, "\n"))
					}
					for _, cfg := range cfgs(root) {
						if errs := simulate(op, world, root, cfg); len(errs) > 0 {
							t.Fatalf("world %d root %d %v:\n%s", world, root, cfg, strings.Join(errs, "\n"))
						}
					}
				}
			}
		})
	}
}

func TestWorldOneLocal(t *testing.T) {
	copyAll := []Local{{From: Ref{Src, 0}, To: Ref{Dst, 0}}}
	for _, tc := range []struct {
		name  string
		s     Schedule
		local []Local
	}{
		{"AllReduce", AllReduce(1, 0), nil},
		{"Broadcast", Broadcast(1, 0, 0), nil},
		{"Barrier", Barrier(1, 0), nil},
		{"ReduceScatter", ReduceScatter(1, 0), copyAll},
		{"Reduce", Reduce(1, 0, 0), copyAll},
		{"Gather", Gather(1, 0, 0), copyAll},
		{"AllGather", AllGather(1, 0), copyAll},
		{"SendRecv", SendRecv(1, 0), copyAll},
	} {
		if fmt.Sprint(tc.s.Local) != fmt.Sprint(tc.local) || len(tc.s.Sends)+len(tc.s.Recvs) != 0 {
			t.Errorf("%s(1, 0) = %v", tc.name, tc.s)
		}
		if tc.s.World != 1 || tc.s.Rank != 0 {
			t.Errorf("%s(1, 0) header = %+v", tc.name, tc.s)
		}
	}
}

// A hand-checked schedule, so that a bug shared by the schedules and the
// simulator's reference cannot hide.
func TestAllReduceWorld3Rank0(t *testing.T) {
	got := AllReduce(3, 0)
	want := Schedule{
		World: 3, Rank: 0,
		Sends: []Send{
			{1, Ref{Dst, 0}, -1}, {1, Ref{Dst, 2}, 0}, // reduce-scatter
			{1, Ref{Dst, 1}, 1}, {1, Ref{Dst, 0}, 2}, // all-gather
		},
		Recvs: []Recv{
			{Peer: 2, Kind: RecvReduce, To: Ref{Dst, 2}, After: -1, AfterSend: -1},
			{Peer: 2, Kind: RecvReduce, To: Ref{Dst, 1}, After: -1, AfterSend: -1},
			// The all-gather overwrites segments the reduce-scatter sent:
			// after those sends, chunk by chunk.
			{Peer: 2, Kind: RecvCopy, To: Ref{Dst, 0}, After: -1, AfterSend: 0},
			{Peer: 2, Kind: RecvCopy, To: Ref{Dst, 2}, After: -1, AfterSend: 1},
		},
	}
	if got.String() != want.String() {
		t.Errorf("AllReduce(3, 0):\n%v\nwant:\n%v", got, want)
	}
}

func TestReduceScatterWorld3Rank0(t *testing.T) {
	got := ReduceScatter(3, 0)
	want := Schedule{
		World: 3, Rank: 0,
		Sends: []Send{{1, Ref{Src, 2}, -1}, {1, Ref{Tmp, 1}, 0}},
		Recvs: []Recv{
			{Peer: 2, Kind: RecvCopyReduce, To: Ref{Tmp, 1}, With: Ref{Src, 1}, After: -1, AfterSend: -1},
			{Peer: 2, Kind: RecvCopyReduce, To: Ref{Dst, 0}, With: Ref{Src, 0}, After: -1, AfterSend: -1},
		},
	}
	if got.String() != want.String() {
		t.Errorf("ReduceScatter(3, 0):\n%v\nwant:\n%v", got, want)
	}
}

// ReduceScatter must not use bounded staging slots: every rank forwards and
// receives at every step, so a receiver waiting for a free slot could
// deadlock the ring under a flow-controlled transport.
func TestReduceScatterNoStage(t *testing.T) {
	for world := 1; world <= maxWorld; world++ {
		for r := range world {
			s := ReduceScatter(world, r)
			for _, l := range s.Local {
				if l.From.Buf == Stage || l.To.Buf == Stage {
					t.Fatalf("ReduceScatter(%d, %d) Local uses Stage:\n%v", world, r, s)
				}
			}
			for _, sd := range s.Sends {
				if sd.From.Buf == Stage {
					t.Fatalf("ReduceScatter(%d, %d) sends from Stage:\n%v", world, r, s)
				}
			}
			for _, rv := range s.Recvs {
				if rv.Kind == RecvStage || rv.Kind == RecvStageReduce || rv.To.Buf == Stage || rv.With.Buf == Stage {
					t.Fatalf("ReduceScatter(%d, %d) receives into Stage:\n%v", world, r, s)
				}
			}
		}
	}
}

func TestBufString(t *testing.T) {
	for b, want := range map[Buf]string{None: "None", Dst: "Dst", Src: "Src", Stage: "Stage", Tmp: "Tmp", Tmp + 1: "Buf(5)"} {
		if got := b.String(); got != want {
			t.Errorf("Buf(%d).String() = %q, want %q", uint8(b), got, want)
		}
	}
	if Stage != 3 || Tmp != 4 {
		t.Errorf("Buf values moved: Stage = %d, Tmp = %d", Stage, Tmp)
	}
}

func TestPanics(t *testing.T) {
	cases := map[string]func(){
		"AllReduce world 0":    func() { AllReduce(0, 0) },
		"AllReduce rank -1":    func() { AllReduce(4, -1) },
		"AllReduce rank=world": func() { AllReduce(4, 4) },
		"ReduceScatter":        func() { ReduceScatter(2, 2) },
		"AllGather":            func() { AllGather(-1, 0) },
		"Broadcast root":       func() { Broadcast(4, 0, 4) },
		"Broadcast root -1":    func() { Broadcast(4, 0, -1) },
		"Reduce root":          func() { Reduce(3, 1, 3) },
		"Reduce rank":          func() { Reduce(3, 3, 0) },
		"Gather root":          func() { Gather(3, 0, 7) },
		"Barrier":              func() { Barrier(0, 0) },
		"SendRecv":             func() { SendRecv(2, 5) },
		"Split parts 0":        func() { Split(10, 0, 0) },
		"Split count -1":       func() { Split(-1, 2, 0) },
		"Split i=parts":        func() { Split(10, 3, 3) },
		"Split i -1":           func() { Split(10, 3, -1) },
	}
	schedtest.Panics(t, "ring: ", cases)
}

// checkSplit verifies that Split partitions [0, count) into parts
// contiguous, balanced, in-order parts.
func checkSplit(count, parts int) error {
	next := 0
	q, rem := count/parts, count%parts
	for i := range parts {
		off, n := Split(count, parts, i)
		want := q
		if i < rem {
			want++
		}
		if off != next || n != want {
			return fmt.Errorf("Split(%d, %d, %d) = (%d, %d), want (%d, %d)", count, parts, i, off, n, next, want)
		}
		next += n
	}
	if next != count {
		return fmt.Errorf("Split(%d, %d, ·) covers %d elements", count, parts, next)
	}
	return nil
}

func TestSplitQuick(t *testing.T) {
	f := func(c uint32, p uint16) bool {
		count, parts := int(c%1_000_000), int(p%1000)+1
		if err := checkSplit(count, parts); err != nil {
			t.Log(err)
			return false
		}
		return true
	}
	if err := quick.Check(f, &quick.Config{MaxCount: 500}); err != nil {
		t.Fatal(err)
	}
	for count := range 70 {
		for parts := 1; parts <= 70; parts++ {
			if err := checkSplit(count, parts); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func FuzzSplit(f *testing.F) {
	f.Add(uint32(0), uint16(1))
	f.Add(uint32(1000), uint16(7))
	f.Add(uint32(5), uint16(64))
	f.Fuzz(func(t *testing.T, c uint32, p uint16) {
		if err := checkSplit(int(c%(1<<24)), int(p%4096)+1); err != nil {
			t.Fatal(err)
		}
	})
}

// The simulator itself must catch broken schedules, each for the right
// reason.
func TestSimulatorCatchesBugs(t *testing.T) {
	byName := map[string]*opSpec{}
	for _, op := range ops {
		byName[op.name] = op
	}
	cases := []struct {
		name        string
		op          string
		world, root int
		rank        int // the rank mutated; -1: all
		mutate      func(s *Schedule)
		want        string // substring of some reported error
	}{
		{"missing dependency", "AllReduce", 4, 0, 1, func(s *Schedule) { s.Sends[1].After = -1 }, ""},
		{"deadlock", "AllReduce", 4, 0, -1, func(s *Schedule) { s.Sends[0].After = 0 }, "deadlock"},
		{"wrong segment", "AllReduce", 4, 0, 1, func(s *Schedule) { s.Recvs[0].To.Seg = (s.Recvs[0].To.Seg + 1) % 4 }, ""},
		{"copy instead of reduce", "AllReduce", 4, 0, 1, func(s *Schedule) { s.Recvs[0].Kind = RecvCopy }, "want"},
		{"overwrite before read", "AllReduce", 4, 0, 1, func(s *Schedule) { s.Sends[4].After = 2 }, ""},
		{"ack for data", "AllReduce", 4, 0, 1, func(s *Schedule) { s.Sends[0].From = Ref{} }, "ack=true"},
		{"wrong With", "ReduceScatter", 4, 0, 1, func(s *Schedule) { s.Recvs[0].With.Seg = (s.Recvs[0].With.Seg + 1) % 4 }, "want"},
		{"read unwritten Tmp", "ReduceScatter", 4, 0, 1, func(s *Schedule) { s.Recvs[0].To.Seg = (s.Recvs[0].To.Seg + 1) % 4 }, "unwritten Tmp"},
		{"Tmp read before written", "ReduceScatter", 4, 0, 1, func(s *Schedule) { s.Sends[1].After = -1 }, ""},
		{"Tmp in another op", "Reduce", 5, 0, 0, func(s *Schedule) { s.Recvs[0].To = Ref{Tmp, 0} }, "outside the Tmp layout"},
		{"stage out of order", "Gather", 5, 0, 3, func(s *Schedule) { s.Sends[1], s.Sends[2] = s.Sends[2], s.Sends[1] }, "staged slot"},
		{"non-root writes Dst", "Reduce", 5, 0, 3, func(s *Schedule) {
			s.Recvs[0] = Recv{Peer: s.Recvs[0].Peer, Kind: RecvCopyReduce, To: Ref{Dst, 0}, With: Ref{Src, 0}, After: -1, AfterSend: -1}
		}, "outside the Dst layout"},
		{"early broadcast ack", "Broadcast", 5, 2, 1, func(s *Schedule) { s.Sends[0].After = -1 }, "completion ack"},
		{"early barrier exit", "Barrier", 5, 0, -1, func(s *Schedule) {
			for i := range s.Sends {
				s.Sends[i].After = -1
			}
		}, "leaves the barrier"},
	}
	for _, tc := range cases {
		base := byName[tc.op]
		op := *base
		op.build = func(world, rank, root int) Schedule {
			s := base.build(world, rank, root)
			if tc.rank < 0 || rank == tc.rank {
				tc.mutate(&s)
			}
			return s
		}
		var errs []string
		for _, cfg := range configs {
			errs = append(errs, simulate(&op, tc.world, tc.root, cfg)...)
		}
		all := strings.Join(errs, "\n")
		if len(errs) == 0 || !strings.Contains(all, tc.want) {
			t.Errorf("%s: not detected (errors: %q)", tc.name, all)
		} else {
			t.Logf("%s: %s", tc.name, errs[0])
		}
	}
}

func ExampleAllReduce() {
	fmt.Print(AllReduce(3, 1))
	// Output:
	// rank 1/3
	//   S0: send Dst[1] to 2
	//   S1: send Dst[0] to 2 after R0
	//   S2: send Dst[2] to 2 after R1
	//   S3: send Dst[1] to 2 after R2
	//   R0: recv Reduce Dst[0] from 0
	//   R1: recv Reduce Dst[2] from 0
	//   R2: recv Copy Dst[1] from 0 after S0
	//   R3: recv Copy Dst[0] from 0 after S1
}

func ExampleReduceScatter() {
	fmt.Print(ReduceScatter(4, 1))
	// Output:
	// rank 1/4
	//   S0: send Src[0] to 2
	//   S1: send Tmp[3] to 2 after R0
	//   S2: send Tmp[2] to 2 after R1
	//   R0: recv CopyReduce Tmp[3] with Src[3] from 0
	//   R1: recv CopyReduce Tmp[2] with Src[2] from 0
	//   R2: recv CopyReduce Dst[0] with Src[1] from 0
}

func ExampleSplit() {
	for i := range 3 {
		fmt.Println(Split(10, 3, i))
	}
	// Output:
	// 0 4
	// 4 3
	// 7 3
}
