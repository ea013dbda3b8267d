//go:build unix

package faults

import (
	"context"
	"os"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/ringo-ml/ringo/internal/netem"
)

func TestMain(m *testing.M) {
	if IsRank() {
		os.Exit(RankMain())
	}
	goleak.VerifyTestMain(m)
}

// suite skips the process-based fault tests unless RINGO_FAULTS is set:
// they take about a minute, so .ci/run runs them once, on their own
// line, rather than in every go test ./...
func suite(t *testing.T) {
	t.Helper()
	if os.Getenv("RINGO_FAULTS") == "" {
		t.Skip("set RINGO_FAULTS=1 to run the fault suite (rank processes; about a minute)")
	}
}

// newCluster starts world rank processes of this test binary and closes
// them when the test ends, failing it if any had to be killed.
func newCluster(t *testing.T, world int) (*Cluster, []*Proc) {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	c := NewCluster(exe, []string{"-test.run=^$"}, t.Logf)
	t.Cleanup(func() {
		if err := c.Close(20 * time.Second); err != nil {
			t.Errorf("process leak: %v", err)
		}
	})
	procs := make([]*Proc, world)
	for r := range procs {
		if procs[r], err = c.Spawn(); err != nil {
			t.Fatal(err)
		}
	}
	return c, procs
}

// findCall picks the fault's call: the first seed from plan.Seed on whose
// workload some call from #from on satisfies pred (the workload stays
// random; the fault lands where the scenario needs it). It sets
// plan.Seed and returns the call's index.
func findCall(t *testing.T, plan *Plan, world, from int, pred func(Call) bool) int {
	t.Helper()
	for seed := plan.Seed; seed < plan.Seed+1000; seed++ {
		for i := from; i < plan.Calls-1; i++ {
			if pred(MakeCall(seed, i, world, plan.MaxCount, plan.Kinds)) {
				plan.Seed = seed
				return i
			}
		}
	}
	t.Fatalf("no workload from seed %d has a call that fits", plan.Seed)
	return -1
}

func bigAllReduce(c Call) bool { return c.Kind == KindAllReduce && c.Count >= 1<<17 }

func kindAtLeast(kind string, n int) func(Call) bool {
	return func(c Call) bool { return c.Kind == kind && c.Count >= n }
}

// scenario is one fault of the suite.
type scenario struct {
	name   string
	world  int
	plan   Plan
	net    *Net
	victim int
	pick   func(Call) bool // the call the fault strikes
	script Script
}

func quicPlan(seed uint64, deadline time.Duration) Plan {
	return Plan{Seed: seed, Calls: 12, MaxCount: 1 << 18, Kinds: AllKinds, Transport: "quic", Algorithm: "ring",
		Chunk: 64 << 10, Deadline: Duration(deadline), Idle: Duration(30 * time.Second)}
}

// run runs one scenario in fresh processes and checks "exact or error".
func (sc scenario) run(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	plan := sc.plan
	plan.Fault.Rank = -1
	if plan.Fault.Kind != FaultNone {
		plan.Fault.Rank = sc.victim
		plan.Fault.Call = findCall(t, &plan, sc.world, 2, sc.pick)
	}
	c, procs := newCluster(t, sc.world)
	rd, err := c.Form(ctx, "faults-"+sc.name, 1, procs, plan, sc.net)
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	v := c.Play(ctx, rd, sc.script)
	if v.Fault != nil {
		t.Logf("fault: %s at call %d, point %s; the last survivor failed %v after it", v.Fault.Kind, v.Fault.Call, v.Fault.Point, v.Detect.Round(time.Millisecond))
	}
	t.Logf("results:\n%s", DescribeResults(v.Results))
	for _, p := range v.Problems {
		t.Errorf("%s: %s", p.Kind, p.Msg)
	}
}

// TestFaults is the short fault suite (CI): a group of four rank
// processes runs a sweep of random collectives over QUIC while one rank
// is killed, terminated, exits, freezes, slows down or is cut off at a
// chosen point.
func TestFaults(t *testing.T) {
	suite(t)
	const d = 3 * time.Second // each call's deadline: the probe gets 750 ms, ample on a loaded machine
	slack := 3 * time.Second  // a loaded 2-core machine, plus the wait for a peer's report
	fault := func(kind, point string) Fault { return Fault{Kind: kind, Point: point} }
	withFault := func(p Plan, f Fault) Plan { p.Fault = f; return p }
	cases := []scenario{
		{name: "kill-before-first-chunk", plan: withFault(quicPlan(11, d), fault(FaultKill, PointBefore)),
			pick: bigAllReduce, victim: 2, script: Script{Bound: d + slack, Names: []string{"rank 2"}}},
		{name: "kill-in-reduce-scatter", plan: withFault(quicPlan(12, d), fault(FaultKill, PointReduceScatter)),
			pick: bigAllReduce, victim: 1, script: Script{Bound: d + slack, Names: []string{"rank 1"}}},
		{name: "term-in-allgather", plan: withFault(quicPlan(13, d), fault(FaultTerm, PointAllGather)),
			pick: bigAllReduce, victim: 3, script: Script{Bound: slack, Names: []string{"rank 3"}}},
		{name: "exit-in-broadcast", plan: withFault(quicPlan(14, d), fault(FaultExit, PointDuring)),
			pick: kindAtLeast(KindBroadcast, 1<<16), victim: 0, script: Script{Bound: slack, Names: []string{"rank 0"}}},
		{name: "kill-in-gather", plan: withFault(quicPlan(15, d), fault(FaultKill, PointDuring)),
			pick: kindAtLeast(KindGather, 1<<16), victim: 2, script: Script{Bound: d + slack, Names: []string{"rank 2"}}},
		{name: "frozen-in-reduce-scatter", plan: withFault(quicPlan(16, d), fault(FaultStop, PointReduceScatter)),
			pick: bigAllReduce, victim: 1, script: Script{Bound: d + slack, Names: []string{"rank 1", "step ", "did not answer a ping"}}},
		{name: "slow-rank-half-deadline", plan: withFault(quicPlan(17, 4*time.Second), fault(FaultStop, PointDuring)),
			pick: bigAllReduce, victim: 2, script: Script{Resume: 2 * time.Second}},
		{name: "partition", plan: withFault(quicPlan(18, d), fault(FaultMark, PointAllGather)), net: &Net{},
			pick: bigAllReduce, victim: 3, script: Script{Partition: true, Bound: d + slack, Names: []string{"rank 3"}}},
	}
	for _, sc := range cases {
		sc.world = 4
		t.Run(sc.name, sc.run)
	}
}

// TestFaultsTLS: the same promise over TLS lanes: a rank killed,
// terminated or frozen in the middle of an AllReduce is reported by the
// others within the bound, every result that returns is exact.
func TestFaultsTLS(t *testing.T) {
	suite(t)
	const d = 3 * time.Second
	slack := 3 * time.Second
	plan := func(seed uint64, f Fault) Plan {
		p := quicPlan(seed, d)
		p.Transport, p.Fault = "tls", f
		return p
	}
	cases := []scenario{
		{name: "kill-in-reduce-scatter", plan: plan(41, Fault{Kind: FaultKill, Point: PointReduceScatter}),
			pick: bigAllReduce, victim: 1, script: Script{Bound: d + slack, Names: []string{"rank 1"}}},
		{name: "term-in-allgather", plan: plan(42, Fault{Kind: FaultTerm, Point: PointAllGather}),
			pick: bigAllReduce, victim: 3, script: Script{Bound: slack, Names: []string{"rank 3"}}},
		{name: "frozen-in-reduce-scatter", plan: plan(43, Fault{Kind: FaultStop, Point: PointReduceScatter}),
			pick: bigAllReduce, victim: 2, script: Script{Bound: d + slack, Names: []string{"rank 2", "step ", "did not answer a ping"}}},
	}
	for _, sc := range cases {
		sc.world = 4
		t.Run(sc.name, sc.run)
	}
}

// TestLossyNetwork: 5% loss and 20 ms delay on every link (each way) must
// not change a single bit, nor make any call fail.
func TestLossyNetwork(t *testing.T) {
	suite(t)
	plan := quicPlan(21, 60*time.Second)
	plan.Calls, plan.MaxCount = 10, 1<<15
	sc := scenario{name: "loss-and-delay", world: 4, plan: plan,
		net: &Net{Config: netem.Config{Loss: 0.05, Delay: 20 * time.Millisecond, Seed: 1}}}
	sc.run(t)
}

// registered makes a plan's AllReduces use registered buffers, which on
// shared memory take the zero-copy path from 1 MiB (2^18 float32s) up.
func registered(p Plan) Plan {
	p.Registered, p.MaxCount = true, 1<<19
	return p
}

// TestFaultsSharedMemory: the same promise on the default transport, which
// for ranks on one host is shared memory.
func TestFaultsSharedMemory(t *testing.T) {
	suite(t)
	const d = 2 * time.Second
	plan := func(seed uint64, f Fault) Plan {
		p := quicPlan(seed, d)
		p.Transport, p.Algorithm, p.Fault = "auto", "auto", f
		return p
	}
	cases := []scenario{
		{name: "kill", plan: plan(31, Fault{Kind: FaultKill, Point: PointDuring}),
			pick: bigAllReduce, victim: 1, script: Script{Bound: 3 * time.Second, Names: []string{"rank 1"}}},
		{name: "frozen", plan: plan(32, Fault{Kind: FaultStop, Point: PointDuring}),
			pick: bigAllReduce, victim: 2, script: Script{Bound: d + 3*time.Second, Names: []string{"rank 2"}}},
		{name: "term", plan: plan(33, Fault{Kind: FaultTerm, Point: PointBefore}),
			pick: kindAtLeast(KindGather, 1<<10), victim: 0, script: Script{Bound: 3 * time.Second, Names: []string{"rank 0"}}},
		{name: "kill-registered", plan: registered(plan(34, Fault{Kind: FaultKill, Point: PointDuring})),
			pick: kindAtLeast(KindAllReduce, 1<<18), victim: 3, script: Script{Bound: 3 * time.Second, Names: []string{"rank 3"}}},
	}
	for _, sc := range cases {
		sc.world = 4
		t.Run(sc.name, sc.run)
	}
}
