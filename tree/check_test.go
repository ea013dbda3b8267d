package tree

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/ringo-ml/ringo/internal/race"
	"github.com/ringo-ml/ringo/ring"
)

// The checks themselves must catch broken schedules, each for the right
// reason: wantSim and wantStatic are substrings of some error the simulator
// (over every config) and staticCheck must report; "" means that check is
// not required to notice (e.g. a missing AfterSend that causality happens to
// cover, which only the static check sees).
func TestChecksCatchBugs(t *testing.T) {
	cases := []struct {
		name        string
		op          string
		world, root int
		rank        int // the rank mutated; -1: all
		mutate      func(s *Schedule)
		wantSim     string
		wantStatic  string
	}{
		{"RD without AfterSend", "RecursiveDoubling", 4, 0, -1, func(s *Schedule) {
			for j := range s.Recvs {
				s.Recvs[j].AfterSend = -1
			}
		}, "read the value written by R", "may see the write"},
		{"RD fold without AfterSend", "RecursiveDoubling", 5, 0, 4, func(s *Schedule) { s.Recvs[0].AfterSend = -1 }, "", "may see the write"},
		{"DBT without AfterSend", "DoubleBinaryTree", 8, 0, -1, func(s *Schedule) {
			for j := range s.Recvs {
				s.Recvs[j].AfterSend = -1
			}
		}, "", "may see the write"},
		{"unordered reductions", "BinomialReduce", 8, 0, 0, func(s *Schedule) { s.Recvs[2].After = -1 }, "overwrites the value written by", "in no fixed order"},
		{"copy instead of reduce", "BinomialReduce", 8, 0, 0, func(s *Schedule) { s.Recvs[0].Kind = ring.RecvCopy }, "want", ""},
		{"forward before receiving", "BinomialBroadcast", 8, 0, 4, func(s *Schedule) { s.Sends[0].After = -1 }, "Dst[0] chunk 0 = x4", "may see the write"},
		{"early broadcast ack", "BinomialBroadcast", 8, 3, 7, func(s *Schedule) { s.Sends[len(s.Sends)-1].After = 0 }, "completes before ranks", ""},
		{"leaf ack before its data", "BinomialGather", 8, 0, 0, func(s *Schedule) { s.Sends[len(s.Sends)-1].After = -1 }, "acks before it has received", ""},
		{"missing leaf ack", "BinomialReduce", 8, 0, -1, func(s *Schedule) {
			if s.Rank == 7 {
				s.Recvs = nil
			}
			if s.Rank == 6 {
				s.Sends = s.Sends[:1]
			}
		}, "", "receives nothing"},
		{"leaf waits for its ack", "BinomialReduce", 4, 0, 3, func(s *Schedule) { s.Sends[0].After = 0 }, "deadlock", "does not write its segment"},
		{"cross-rank deadlock", "RecursiveDoubling", 2, 0, -1, func(s *Schedule) {
			s.Sends[0].After, s.Recvs[0].AfterSend = 0, -1
		}, "deadlock", ""},
		{"local cycle", "DoubleBinaryTree", 4, 0, 1, func(s *Schedule) { s.Sends[0].After = 2 }, "deadlock", "cycle"},
		{"gather blocks swapped", "BinomialGather", 8, 0, 4, func(s *Schedule) { s.Sends[1], s.Sends[2] = s.Sends[2], s.Sends[1] }, "want", ""},
		{"wrong half", "DoubleBinaryTree", 2, 0, 0, func(s *Schedule) {
			s.Sends[0].From.Seg, s.Sends[0].After, s.Recvs[1].AfterSend = 1, 0, -1
		}, "want", "elements"},
		{"ack for data", "BinomialBroadcast", 4, 0, 0, func(s *Schedule) { s.Sends[0].From = ring.Ref{} }, "ack=true", "ack/data mismatch"},
		{"writes Src", "BinomialReduce", 4, 0, 2, func(s *Schedule) { s.Recvs[0].To = ring.Ref{Buf: ring.Src} }, "only Dst and Tmp", "malformed"},
		{"Tmp not initialised", "BinomialReduce", 8, 0, 4, func(s *Schedule) { s.Local = nil }, "unwritten", "nothing wrote"},
		{"staging", "BinomialGather", 4, 0, 2, func(s *Schedule) { s.Recvs[0].Kind = ring.RecvStage }, "not used by tree schedules", "malformed"},
		{"DBT copy instead of reduce", "DoubleBinaryTree", 6, 0, 3, func(s *Schedule) { s.Recvs[0].Kind = ring.RecvCopy }, "not a reduction", ""},
		{"frame count", "DoubleBinaryTree", 6, 0, 3, func(s *Schedule) { s.Sends = s.Sends[:len(s.Sends)-1] }, "deadlock", "sends"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			op := opByName(tc.op)
			schs := op.build(tc.world, tc.root)
			for r := range schs {
				if tc.rank < 0 || r == tc.rank {
					s := &schs[r]
					s.Local = append([]ring.Local(nil), s.Local...)
					s.Sends = append([]Send(nil), s.Sends...)
					s.Recvs = append([]Recv(nil), s.Recvs...)
					tc.mutate(s)
				}
			}
			var simErrs []string
			for _, cfg := range configs {
				simErrs = append(simErrs, simulate(op, schs, tc.root, cfg).errs...)
			}
			staticErrs := staticCheck(op, tc.world, tc.root, schs)
			if tc.wantSim != "" && !strings.Contains(strings.Join(simErrs, "\n"), tc.wantSim) {
				t.Errorf("simulator misses it (want %q): %q", tc.wantSim, simErrs)
			}
			if tc.wantStatic != "" && !strings.Contains(strings.Join(staticErrs, "\n"), tc.wantStatic) {
				t.Errorf("static check misses it (want %q): %q", tc.wantStatic, staticErrs)
			}
			if len(simErrs)+len(staticErrs) == 0 {
				t.Errorf("not detected")
			}
			if len(simErrs) > 0 {
				t.Logf("sim: %s", simErrs[0])
			}
			if len(staticErrs) > 0 {
				t.Logf("static: %s", staticErrs[0])
			}
		})
	}
}

// TestExprCanonical pins the comparison the allreduce checks rely on: the
// canonical form identifies a ⊕ b with b ⊕ a, at any depth, but not
// different bracketings.
func TestExprCanonical(t *testing.T) {
	e := newExprs()
	a, b, c := e.leaf(leafInput, 0, 0, 0), e.leaf(leafInput, 1, 0, 0), e.leaf(leafInput, 2, 0, 0)
	ab, ba := e.plus(a, b), e.plus(b, a)
	abc := e.plus(ab, c)
	cba := e.plus(c, ba)
	aBC := e.plus(a, e.plus(b, c))
	switch {
	case e.same(ab, ba) || !e.equiv(ab, ba):
		t.Error("a⊕b vs b⊕a")
	case e.same(abc, cba) || !e.equiv(abc, cba):
		t.Error("(a⊕b)⊕c vs c⊕(b⊕a)")
	case e.equiv(abc, aBC):
		t.Error("(a⊕b)⊕c must differ from a⊕(b⊕c)")
	case !e.same(abc, e.plus(e.plus(a, b), c)):
		t.Error("equal expressions built twice differ")
	case !e.allOnce(abc, 3, 0, 0) || e.allOnce(e.plus(abc, a), 3, 0, 0) || e.allOnce(ab, 3, 0, 0):
		t.Error("allOnce")
	}
}

// latencyWorlds are the rows of the package documentation's table.
var latencyWorlds = []int{2, 3, 4, 5, 7, 8, 9, 16, 17, 24, 32, 33, 48, 63, 64}

// latency returns the completion time in frame steps of op in world (root
// 0): a run with one chunk per segment, in which each transfer takes one
// step once its dependencies are done. The value does not depend on the
// interleaving: with all set, every config must agree.
func latency(t *testing.T, op *opSpec, world int, all bool) int {
	schs := op.build(world, 0)
	steps := -1
	cfgs := []simConfig{{mode: modeEagerSend, seed: 1, chunks: 1}, {mode: modeEagerRecv, seed: 2, chunks: 1}, {mode: modeRandom, seed: 3, chunks: 1}}
	if !all {
		cfgs = cfgs[:1]
	}
	for _, cfg := range cfgs {
		s := simulate(op, schs, 0, cfg)
		if len(s.errs) > 0 {
			t.Fatalf("%v world %d: %s", op.name(), world, strings.Join(s.errs, "\n"))
		}
		if steps >= 0 && s.steps() != steps {
			t.Fatalf("%v world %d: %d steps in one interleaving, %d in another", op.name(), world, steps, s.steps())
		}
		steps = s.steps()
	}
	return steps
}

// TestLatency computes the step counts of every schedule for worlds 2..64,
// checks them against closed forms, and checks that the package
// documentation's table is current (go test -v prints the full table).
func TestLatency(t *testing.T) {
	var doc strings.Builder
	fmt.Fprintf(&doc, "//\t%5s", "world")
	header := []string{"Bcast", "Reduce", "Gather", "RD", "DBT", "ring AR"}
	for _, h := range header {
		fmt.Fprintf(&doc, " %7s", h)
	}
	doc.WriteString("\n")
	full := doc.String()
	for world := 2; world <= maxWorld; world++ {
		if race.Enabled && !slices.Contains(latencyWorlds, world) {
			continue // the table's rows suffice
		}
		row := fmt.Sprintf("//\t%5d", world)
		steps := map[string]int{}
		for _, op := range ops {
			steps[op.name()] = latency(t, op, world, slices.Contains(latencyWorlds, world))
			row += fmt.Sprintf(" %7d", steps[op.name()])
		}
		row += fmt.Sprintf(" %7d\n", 2*(world-1))
		full += row
		if slices.Contains(latencyWorlds, world) {
			doc.WriteString(row)
		}
		lg := bitsLen(world) - 1 // floor(log2 world)
		rd := lg
		if world&(world-1) != 0 {
			rd += 2 // fold in and out
		}
		biggest := 0 // the largest subtree below the binomial root
		tr := Binomial(world, 0)
		for _, c := range tr.Children[0] {
			biggest = max(biggest, size(tr, c))
		}
		for name, want := range map[string]int{
			"BinomialBroadcast": 2 * lg,          // down, then acks up
			"BinomialReduce":    max(lg, 2),      // up; a leaf's ack takes 2
			"BinomialGather":    max(biggest, 2), // the busiest link into the root
			"RecursiveDoubling": rd,
			"DoubleBinaryTree":  2 * lg, // up, then down
		} {
			if steps[name] != want {
				t.Errorf("%s world %d: %d steps, want %d", name, world, steps[name], want)
			}
		}
	}
	t.Logf("steps per schedule (root 0; every world without -race):\n%s", strings.ReplaceAll(full, "//\t", ""))
	src, err := os.ReadFile("tree.go")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(src), doc.String()) {
		t.Errorf("the package documentation's latency table is stale; it should read:\n%s", doc.String())
	}
}
