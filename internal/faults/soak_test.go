//go:build unix

package faults

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ringo-ml/ringo/internal/netem"
)

// TestSoak runs random collectives in a group of rank processes for a set
// time, injecting a random fault into most epochs — SIGKILL, SIGTERM, a
// clean exit, a freeze, a slow rank, a partition — and re-forming the group
// after each (the survivors with fresh communicators at the next epoch,
// plus new processes for the ranks that died). Every result is checked bit
// for bit. Opt-in:
//
//	RINGO_SOAK=10m go test -run TestSoak -timeout 0 -v ./internal/faults
//
// RINGO_SOAK_SEED replays a run; RINGO_SOAK_WORLD sets the group size (4).
func TestSoak(t *testing.T) {
	env := os.Getenv("RINGO_SOAK")
	if env == "" {
		t.Skip("set RINGO_SOAK to a duration (e.g. 10m) to run the soak")
	}
	dur, err := time.ParseDuration(env)
	if err != nil {
		t.Fatalf("RINGO_SOAK=%q: %v", env, err)
	}
	world := 4
	if s := os.Getenv("RINGO_SOAK_WORLD"); s != "" {
		if world, err = strconv.Atoi(s); err != nil || world < 2 || world > 8 {
			t.Fatalf("RINGO_SOAK_WORLD=%q: want 2..8", s)
		}
	}
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("RINGO_SOAK_SEED"); s != "" {
		if seed, err = strconv.ParseUint(s, 10, 64); err != nil {
			t.Fatalf("RINGO_SOAK_SEED=%q: %v", s, err)
		}
	}
	t.Logf("soak: %v, %d ranks, RINGO_SOAK_SEED=%d", dur, world, seed)
	rng := rand.New(rand.NewPCG(seed, seed^0x5eed))

	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	c := NewCluster(exe, []string{"-test.run=^$"}, func(string, ...any) {}) // rank stderr shows in problems
	var procs []*Proc
	spawn := func() {
		p, err := c.Spawn()
		if err != nil {
			t.Fatal(err)
		}
		procs = append(procs, p)
	}
	for range world {
		spawn()
	}

	var s soakCounts
	s.byKind = map[string]int{}
	s.problems = map[string]int{}
	s.detect = map[string][]time.Duration{}
	start := time.Now()
	for epoch := uint64(1); time.Since(start) < dur; epoch++ {
		plan, script, net := soakEpoch(rng, world)
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		rd, err := c.Form(ctx, "soak", epoch, procs, plan, net)
		if err != nil {
			cancel()
			s.problems[ProblemOther]++
			t.Errorf("epoch %d: %v", epoch, err)
			break
		}
		v := c.Play(ctx, rd, script)
		cancel()
		rd.Close()
		s.epochs++
		s.calls += v.Calls
		s.failed += v.Failed
		if v.Fault != nil {
			s.faults++
			s.byKind[v.Fault.Kind+"/"+v.Fault.Point]++
			if v.Detect > 0 {
				k := plan.Transport + " " + v.Fault.Kind
				s.detect[k] = append(s.detect[k], v.Detect)
			}
		}
		for _, p := range v.Problems {
			s.problems[p.Kind]++
			t.Errorf("epoch %d (%s %s at call %d of %d, %s/%s): %s: %s", epoch, plan.Fault.Kind, plan.Fault.Point,
				plan.Fault.Call, plan.Calls, plan.Transport, plan.Algorithm, p.Kind, p.Msg)
		}
		// The next epoch: the processes still alive, in a new order, and new
		// ones for those that died.
		procs = procs[:0]
		for _, p := range rd.Procs {
			if exited, _, _ := c.Exited(p); !exited {
				procs = append(procs, p)
			}
		}
		for len(procs) < world {
			spawn()
		}
		rng.Shuffle(len(procs), func(i, j int) { procs[i], procs[j] = procs[j], procs[i] })
	}
	if err := c.Close(30 * time.Second); err != nil {
		s.problems[ProblemLeak]++
		t.Error(err)
	}
	report := s.String(time.Since(start), world)
	t.Log("\n" + report)
	fmt.Fprint(os.Stderr, report)
}

type soakCounts struct {
	epochs, calls, failed, faults int
	byKind                        map[string]int
	problems                      map[string]int
	detect                        map[string][]time.Duration // transport and fault -> time to the last survivor's error
}

func (s *soakCounts) String(d time.Duration, world int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "soak: %v, %d ranks per epoch\n", d.Round(time.Second), world)
	fmt.Fprintf(&b, "  epochs (group re-formed)  %d\n", s.epochs)
	fmt.Fprintf(&b, "  collective calls checked  %d\n", s.calls)
	fmt.Fprintf(&b, "  faults injected           %d\n", s.faults)
	fmt.Fprintf(&b, "  errors observed (calls)   %d\n", s.failed)
	for _, k := range []string{ProblemWrong, ProblemHang, ProblemLeak, ProblemFalseAbort, ProblemPoison, ProblemMissed, ProblemMessage, ProblemVictimExit, ProblemOther} {
		fmt.Fprintf(&b, "  %-25s %d\n", k+"s", s.problems[k])
	}
	kinds := make([]string, 0, len(s.byKind))
	for k := range s.byKind {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	b.WriteString("  faults by kind/point:")
	for _, k := range kinds {
		fmt.Fprintf(&b, " %s %d,", k, s.byKind[k])
	}
	b.WriteString("\n")
	keys := make([]string, 0, len(s.detect))
	for k := range s.detect {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	b.WriteString("  fault -> last survivor's error (median, max):\n")
	for _, k := range keys {
		d := s.detect[k]
		slices.Sort(d)
		fmt.Fprintf(&b, "    %-12s n=%-4d %8v %8v\n", k, len(d), d[len(d)/2].Round(time.Millisecond), d[len(d)-1].Round(time.Millisecond))
	}
	return b.String()
}

// soakEpoch draws an epoch: its workload, transport, fault and what the
// parent expects of it.
func soakEpoch(rng *rand.Rand, world int) (Plan, Script, *Net) {
	const deadline = 2 * time.Second
	slack := 3 * time.Second
	p := Plan{Seed: rng.Uint64(), Calls: 4 + rng.IntN(12), MaxCount: 1 << 17, Kinds: AllKinds,
		Transport: "quic", Algorithm: "ring", Chunk: 64 << 10, Deadline: Duration(deadline), Idle: Duration(30 * time.Second)}
	p.Fault.Rank = -1
	switch rng.IntN(5) {
	case 0:
		p.Transport, p.Algorithm = "auto", "auto" // shared memory on this host
		if rng.IntN(2) == 0 {
			p = registered(p) // AllReduces on registered buffers: the zero-copy path
		}
	case 1:
		p.Algorithm = []string{"auto", "tree"}[rng.IntN(2)]
	case 2:
		p.Transport, p.Algorithm = "tls", []string{"ring", "auto"}[rng.IntN(2)] // TLS lanes
	}
	var net *Net
	sc := Script{Bound: deadline + slack}
	roll := rng.IntN(100)
	switch {
	case roll < 8: // no fault, an impaired network
		if p.Transport == "quic" {
			net = &Net{Config: netem.Config{Loss: 0.01 + 0.04*rng.Float64(), Delay: time.Duration(rng.IntN(20)) * time.Millisecond, Seed: rng.Int64()}}
			p.MaxCount, p.Deadline = 1<<14, Duration(60*time.Second)
		}
		return p, sc, net
	case roll < 12: // no fault at all
		return p, sc, nil
	}
	p.Fault.Rank = rng.IntN(world)
	// Not call 0: its peers may still be in New, which waits for them up
	// to its own 30 s bound. A later call always follows the fault's.
	p.Fault.Call = 1 + rng.IntN(p.Calls-2)
	call := MakeCall(p.Seed, p.Fault.Call, world, p.MaxCount, p.Kinds)
	points := []string{PointBefore, PointDuring}
	if call.Kind == KindAllReduce && (p.Transport == "quic" || p.Transport == "tls") && p.Algorithm == "ring" {
		points = append(points, PointReduceScatter, PointAllGather)
	}
	p.Fault.Point = points[rng.IntN(len(points))]
	switch roll = rng.IntN(100); {
	case roll < 30:
		p.Fault.Kind = FaultKill
	case roll < 45:
		p.Fault.Kind = FaultTerm
	case roll < 60:
		p.Fault.Kind = FaultExit
	case roll < 75:
		p.Fault.Kind = FaultStop
	case roll < 88: // a slow rank: frozen for half the deadline, then resumed
		p.Fault.Kind = FaultStop
		p.Deadline = Duration(4 * time.Second)
		sc.Resume = 2 * time.Second
	default:
		if p.Transport != "quic" {
			p.Fault.Kind = FaultKill
			break
		}
		p.Fault.Kind, sc.Partition = FaultMark, true
		net = &Net{}
	}
	if sc.Resume == 0 {
		sc.Names = []string{fmt.Sprintf("rank %d", p.Fault.Rank)}
	}
	return p, sc, net
}
