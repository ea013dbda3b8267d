package rendezvous

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestAgreeFourWithKey(t *testing.T) {
	key := testKey(t)
	want := map[string]int{"w0": 3, "w1": 2, "w3": 0} // w2 asks for nothing and gets 1
	nodes := group(t, "w", 4, Config{Group: "job-1", World: 4, Key: key}, func(i int, c *Config) {
		if r, ok := want[c.Name]; ok {
			c.Rank = r
		}
	})
	t0 := time.Now()
	v := agreeAll(t, 20*time.Second, nodes...)
	t.Logf("4 nodes agreed in %v: %v", time.Since(t0), v)
	if v.Epoch != 1 || v.Size() != 4 || v.Group != "job-1" {
		t.Fatalf("view %v", v)
	}
	want["w2"] = 1
	for _, n := range nodes {
		r := v.Rank(n.Name())
		if r != want[n.Name()] {
			t.Errorf("%s has rank %d, want %d", n.Name(), r, want[n.Name()])
		}
		m := v.Members[r]
		if m.Addr != "127.0.0.1:1"+n.Name() || !bytes.Equal(m.CertSHA256, certOf(n.Name())) || m.Gossip != n.GossipAddr() {
			t.Errorf("%s: meta %+v", n.Name(), m)
		}
		if got := n.View(); got.Digest() != v.Digest() {
			t.Errorf("%s: View() %v", n.Name(), got)
		}
	}
}

func TestElastic(t *testing.T) {
	nodes := group(t, "e", 3, Config{Group: "elastic", Min: 2, Max: 4, Settle: 300 * time.Millisecond}, nil)
	waitFor(t, 10*time.Second, "3 members everywhere", func() bool {
		for _, n := range nodes {
			if len(n.Members()) != 3 {
				return false
			}
		}
		return true
	})
	v := agreeAll(t, 20*time.Second, nodes...)
	if v.Epoch != 1 || v.Size() != 3 {
		t.Fatalf("view %v", v)
	}
}

// TestFailureReformReplace: a crashed member is reported, the survivors
// re-form without it, and a replacement is included in the next epoch.
func TestFailureReformReplace(t *testing.T) {
	key := testKey(t)
	base := Config{Group: "job-2", Min: 2, Max: 4, Settle: 200 * time.Millisecond, Key: key}
	nodes := group(t, "f", 4, base, nil)
	v1 := agreeAll(t, 20*time.Second, nodes...)
	if v1.Epoch != 1 || v1.Size() != 4 {
		t.Fatalf("view %v", v1)
	}

	// Crash the proposer (lowest name).
	dead, survivors := nodes[0], nodes[1:]
	t0 := time.Now()
	dead.shutdown(false)
	for _, n := range survivors {
		ev := waitEvent(t, n, 15*time.Second, MemberFailed, dead.Name())
		if ev.Rank != v1.Rank(dead.Name()) || ev.Epoch != 1 || ev.Member.Addr != "127.0.0.1:1"+dead.Name() {
			t.Fatalf("event %+v", ev)
		}
	}
	t.Logf("kill -> MemberFailed on all survivors: %v", time.Since(t0))

	t1 := time.Now()
	v2 := agreeAll(t, 20*time.Second, survivors...)
	t.Logf("re-formed in %v: %v", time.Since(t1), v2)
	if v2.Epoch != 2 || v2.Size() != 3 || v2.Rank(dead.Name()) >= 0 {
		t.Fatalf("view %v", v2)
	}

	// A replacement with a new name.
	c := base
	c.Name, c.Rank, c.Join = "f9", -1, []string{survivors[0].GossipAddr()}
	repl := start(t, c)
	t.Cleanup(func() { repl.Close() })
	for _, n := range survivors {
		ev := waitEvent(t, n, 15*time.Second, MemberJoined, "f9")
		if ev.Rank != -1 || ev.Epoch != 2 {
			t.Fatalf("event %+v", ev)
		}
	}
	v3 := agreeAll(t, 20*time.Second, append([]*Node{repl}, survivors...)...)
	if v3.Epoch != 3 || v3.Size() != 4 || v3.Rank("f9") < 0 {
		t.Fatalf("view %v", v3)
	}
}

// TestExactWorldExtraWaits: with World 2 a third worker waits; when a member
// crashes, the survivor and the waiting worker form epoch 2.
func TestExactWorldExtraWaits(t *testing.T) {
	nodes := group(t, "x", 3, Config{Group: "exact", World: 2}, nil)
	extraCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	type result struct {
		v   View
		err error
	}
	extra := make(chan result, 1)
	go func() {
		v, err := nodes[2].Agree(extraCtx)
		extra <- result{v, err}
	}()
	v1 := agreeAll(t, 20*time.Second, nodes[0], nodes[1])
	if v1.Epoch != 1 || v1.Rank("x2") >= 0 {
		t.Fatalf("view %v", v1)
	}
	select {
	case r := <-extra:
		t.Fatalf("extra worker returned %v, %v", r.v, r.err)
	default:
	}
	// A worker of an exact group cannot re-form alone.
	nodes[0].shutdown(false)
	waitEvent(t, nodes[1], 15*time.Second, MemberFailed, "x0")
	v2 := agreeAll(t, 20*time.Second, nodes[1])
	r := <-extra
	if r.err != nil || r.v.Digest() != v2.Digest() {
		t.Fatalf("extra: %v %v; survivor: %v", r.v, r.err, v2)
	}
	if v2.Epoch != 2 || v2.Size() != 2 || v2.Rank("x2") < 0 {
		t.Fatalf("view %v", v2)
	}
}

// TestWrongKey: a worker with another key, or none, cannot join, see the
// group's tags, or become part of a view.
func TestWrongKey(t *testing.T) {
	key := testKey(t)
	base := Config{Group: "secure", World: 3, Key: key}
	nodes := group(t, "k", 2, base, nil)
	seed := []string{nodes[0].GossipAddr()}

	t0 := time.Now()
	var wg sync.WaitGroup
	for _, tc := range []struct {
		name string
		key  []byte
	}{{"badkey", testKey(t)}, {"nokey", nil}} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := base
			c.Name, c.Key, c.Join, c.Logger, c.Rank = tc.name, tc.key, seed, testLogger(), -1
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			n, err := Start(ctx, c)
			if err == nil {
				n.Close()
				t.Errorf("%s: joined a keyed cluster", tc.name)
			} else if !strings.Contains(err.Error(), "could not join") {
				t.Errorf("%s: %v", tc.name, err)
			}
		}()
	}
	wg.Wait()
	t.Logf("join attempts: %v", time.Since(t0))

	// An intruder started on its own and pointed at the group.
	c := base
	c.Name, c.Key, c.Rank = "intruder", testKey(t), -1
	bad := start(t, c)
	t.Cleanup(func() { bad.Close() })
	t0 = time.Now()
	if num, err := bad.serf.Join(seed, true); num != 0 || err == nil {
		t.Fatalf("intruder joined %d: %v", num, err)
	}
	if num, _ := nodes[0].serf.Join([]string{bad.GossipAddr()}, true); num != 0 {
		t.Fatal("keyed node joined the intruder")
	}
	if ms := bad.serf.Members(); len(ms) != 1 {
		t.Fatalf("intruder sees %d members", len(ms))
	}
	for _, n := range nodes {
		for _, m := range n.serf.Members() {
			if m.Name == "intruder" {
				t.Fatalf("%s sees the intruder", n.Name())
			}
		}
	}

	t.Logf("direct joins: %v", time.Since(t0))

	// Two of three: no view, and the error says why.
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	_, err := nodes[0].Agree(ctx)
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "2 of at least 3") {
		t.Fatalf("Agree with 2 of 3: %v", err)
	}
	ctx, cancel = context.WithTimeout(context.Background(), 300*time.Millisecond)
	_, err = bad.Agree(ctx)
	cancel()
	if err == nil {
		t.Fatal("intruder agreed")
	}

	// The third real worker completes the group; the intruder is not in it.
	c = base
	c.Name, c.Join, c.Rank = "k2", seed, -1
	third := start(t, c)
	t.Cleanup(func() { third.Close() })
	v := agreeAll(t, 20*time.Second, append(nodes, third)...)
	if v.Size() != 3 || v.Rank("intruder") >= 0 {
		t.Fatalf("view %v", v)
	}
}

func TestDefaultNamesAndClose(t *testing.T) {
	a := start(t, Config{Group: "names", World: 2, Rank: -1})
	b := start(t, Config{Group: "names", World: 2, Rank: -1, Join: []string{a.GossipAddr()}})
	if a.Name() == b.Name() || a.Name() == "" {
		t.Fatalf("names %q %q", a.Name(), b.Name())
	}
	v := agreeAll(t, 20*time.Second, a, b)
	if v.Size() != 2 {
		t.Fatalf("view %v", v)
	}
	// a closes gracefully: b sees it leave.
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if err := a.Close(); err != nil {
		t.Fatal("second Close:", err)
	}
	waitEvent(t, b, 10*time.Second, MemberLeft, a.Name())
	if _, err := a.Agree(context.Background()); !errors.Is(err, ErrClosed) {
		t.Fatalf("Agree after Close: %v", err)
	}
	b.Close()
	for range b.Events() {
	}
}

// TestLostCommit: a member that never receives a commit still adopts the
// view (it asks with a status query once its promise is stale).
func TestLostCommit(t *testing.T) {
	nodes := group(t, "l", 3, Config{Group: "lossy", World: 3}, nil)
	drop := func(name string) bool { return name == queryCommit }
	nodes[2].dropQuery.Store(&drop)
	v := agreeAll(t, 20*time.Second, nodes...)
	if v.Epoch != 1 || v.Size() != 3 {
		t.Fatalf("view %v", v)
	}
}

// TestLostProposals: a member that loses its first proposals only delays
// agreement.
func TestLostProposals(t *testing.T) {
	nodes := group(t, "p", 3, Config{Group: "lossy2", World: 3}, nil)
	var lost atomic.Int32
	drop := func(name string) bool { return name == queryPropose && lost.Add(1) <= 2 }
	nodes[1].dropQuery.Store(&drop)
	v := agreeAll(t, 20*time.Second, nodes...)
	if v.Epoch != 1 || v.Size() != 3 || lost.Load() < 2 {
		t.Fatalf("view %v, %d proposals dropped", v, lost.Load())
	}
}

// TestMaxSizeTags: every advertised field at its limit still fits serf's
// 512-byte tag budget.
func TestMaxSizeTags(t *testing.T) {
	n := start(t, Config{
		Group: strings.Repeat("g", MaxGroupLen), Max: MaxWorld, Min: MaxWorld - 1, World: MaxWorld, Rank: MaxWorld - 1,
		Name: strings.Repeat("n", MaxNameLen), Key: testKey(t),
		Meta: Meta{Addr: strings.Repeat("a", MaxAddrLen), CertSHA256: certOf("x")},
	})
	defer n.Close()
	n.serfMu.Lock()
	err := n.serf.SetTags(n.cfg.tags(1<<64 - 1)) // the longest epoch
	n.serfMu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	ms := n.Members()
	if len(ms) != 1 || ms[0].Addr != strings.Repeat("a", MaxAddrLen) {
		t.Fatalf("members %+v", ms)
	}
}

func TestWorldOne(t *testing.T) {
	n := start(t, Config{Group: "solo", World: 1, Rank: -1})
	defer n.Close()
	for epoch := uint64(1); epoch <= 2; epoch++ {
		v := agreeAll(t, 10*time.Second, n)
		if v.Epoch != epoch || v.Size() != 1 || v.Rank(n.Name()) != 0 {
			t.Fatalf("view %v", v)
		}
	}
}
