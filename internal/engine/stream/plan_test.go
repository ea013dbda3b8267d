package stream

import (
	"testing"

	"github.com/ringo-ml/ringo/internal/engine"
	"github.com/ringo-ml/ringo/internal/wire"
	"github.com/ringo-ml/ringo/ring"
)

// TestOpeningFrames checks, for every schedule, world size 1..9, root and
// rank, what the mismatch check rests on (plan.finish): the first frame
// from each rank to its ring successor waits for nothing, and the
// successor expects that frame, empty or not, as the first of the link.
// With 4 ranks the ring opens with its first chunk everywhere, and
// recursive doubling on Gray-code order needs an empty opening frame only
// from ranks 1 and 3 (whose successors are second-step partners); with a
// power-of-two world every ring link is one of its exchanges.
func TestOpeningFrames(t *testing.T) {
	type sched struct {
		name string
		op   wire.Op
		s    engine.Schedule
	}
	var scheds []sched
	for op := wire.OpAllReduce; op <= wire.OpSendRecv; op++ {
		for s := engine.Ring; s <= engine.BinomialTree; s++ {
			if Has(op, s) {
				scheds = append(scheds, sched{s.String() + " " + op.String(), op, s})
			}
		}
	}
	if len(scheds) != 14 {
		t.Fatalf("%d schedules, want 8 ring and 6 tree ones", len(scheds))
	}
	first := func(p *plan, peer int, send bool) (int, bool) {
		for _, l := range p.lanes {
			if l.Peer == peer && l.Send == send {
				return l.items[0], true
			}
		}
		return 0, false
	}
	carriesData := func(p *plan, peer int) bool {
		for _, sd := range p.sends {
			if sd.peer == peer && !sd.open {
				return true
			}
		}
		return false
	}
	for _, s := range scheds {
		for world := 1; world <= 9; world++ {
			for root := range world {
				plans := make([]*plan, world)
				for r := range world {
					e := &Engine{world: world, rank: r, plans: map[planKey]*plan{}}
					plans[r] = e.plan(s.op, s.s, root)
				}
				opened := make([]bool, world)
				for r := range world {
					if world == 1 {
						if len(plans[r].lanes) != 0 {
							t.Errorf("%s world 1: lanes %v", s.name, plans[r].lanes)
						}
						continue
					}
					succ := (r + 1) % world
					j, ok := first(plans[r], succ, true)
					if !ok {
						t.Errorf("%s world %d root %d: rank %d sends nothing to its successor", s.name, world, root, r)
						continue
					}
					i, ok := first(plans[succ], r, false)
					if !ok {
						t.Errorf("%s world %d root %d: rank %d reads nothing from its predecessor", s.name, world, root, succ)
						continue
					}
					sd, rv := plans[r].sends[j], plans[succ].recvs[i]
					opened[r] = sd.open
					if s.name == "recursive doubling AllReduce" && world&(world-1) == 0 {
						// Gray-code order: every ring link is an exchange.
						if !carriesData(plans[r], succ) {
							t.Errorf("%s world %d: rank %d sends its successor nothing but the opening frame", s.name, world, r)
						}
					}
					if sd.after >= 0 || sd.step != 0 || rv.step != 0 {
						t.Errorf("%s world %d root %d: rank %d's first frame to %d waits for recv %d (step %d, read as step %d)",
							s.name, world, root, r, succ, sd.after, sd.step, rv.step)
					}
					if (sd.from.Buf == ring.None) != (rv.kind == ring.RecvAck) || sd.open != rv.open {
						t.Errorf("%s world %d root %d: rank %d opens with %+v, rank %d expects %+v", s.name, world, root, r, sd, succ, rv)
					}
				}
				if world == 4 {
					want := []bool{false, false, false, false}
					if s.name == "recursive doubling AllReduce" {
						want = []bool{false, true, false, true}
					}
					if s.name == "ring AllReduce" || s.name == "recursive doubling AllReduce" {
						for r := range world {
							if opened[r] != want[r] {
								t.Errorf("%s world 4: opening frames %v, want %v", s.name, opened, want)
								break
							}
						}
					}
				}
			}
		}
	}
}
