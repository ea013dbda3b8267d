package rendezvous

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestMeasureDetection measures, over several runs, how long 4 keyed nodes
// take to agree, how long after a crash (Shutdown without Leave) every
// survivor has a MemberFailed event, and how long the survivors take to
// re-form. It is skipped unless RINGO_MEASURE is set (to the run count).
func TestMeasureDetection(t *testing.T) {
	runs, _ := strconv.Atoi(os.Getenv("RINGO_MEASURE"))
	if runs <= 0 {
		t.Skip("set RINGO_MEASURE=<runs> to measure failure detection")
	}
	stressPreset(t)
	var agree, first, all, reform []time.Duration
	for r := 0; r < runs; r++ {
		nodes := group(t, "m"+strconv.Itoa(r)+"-", 4, Config{Group: "measure" + strconv.Itoa(r), Min: 2, Max: 4, Settle: 100 * time.Millisecond, Key: testKey(t)}, nil)
		t0 := time.Now()
		agreeAll(t, 20*time.Second, nodes...)
		agree = append(agree, time.Since(t0))
		victim := nodes[r%4]
		rest := slices.Delete(slices.Clone(nodes), r%4, r%4+1)
		t0 = time.Now()
		victim.shutdown(false)
		var last time.Duration
		for i, n := range rest {
			waitEvent(t, n, 15*time.Second, MemberFailed, victim.Name())
			d := time.Since(t0)
			if i == 0 {
				first = append(first, d)
			}
			last = d
		}
		all = append(all, last)
		t0 = time.Now()
		agreeAll(t, 20*time.Second, rest...)
		reform = append(reform, time.Since(t0))
		closeAll(rest...)
	}
	med := func(d []time.Duration) time.Duration { s := slices.Clone(d); slices.Sort(s); return s[len(s)/2] }
	t.Logf("preset probe %v/%v mult %d", preset.ProbeInterval, preset.ProbeTimeout, preset.SuspicionMult)
	t.Logf("agree (4 nodes):            median %v  all %v", med(agree), agree)
	t.Logf("kill -> first survivor:     median %v  all %v", med(first), first)
	t.Logf("kill -> all 3 survivors:    median %v  all %v", med(all), all)
	t.Logf("re-form (3 nodes, settle 100ms): median %v  all %v", med(reform), reform)
}

// TestStressFalsePositives runs 8 nodes in one process for RINGO_STRESS
// seconds while goroutines burn CPU and churn the heap, and counts the
// MemberFailed events (every one is a false positive: nobody crashes).
func TestStressFalsePositives(t *testing.T) {
	secs, _ := strconv.Atoi(os.Getenv("RINGO_STRESS"))
	if secs <= 0 {
		t.Skip("set RINGO_STRESS=<seconds> to look for false failure detections under load")
	}
	burners, _ := strconv.Atoi(os.Getenv("RINGO_STRESS_BURNERS"))
	alloc := os.Getenv("RINGO_STRESS_ALLOC") != ""
	stressPreset(t)
	nodes := group(t, "s", 8, Config{Group: "stress", World: 8, Key: testKey(t)}, nil)
	agreeAll(t, 30*time.Second, nodes...)
	stop := make(chan struct{})
	done := make(chan struct{})
	for i := 0; i < burners; i++ {
		go func() {
			defer func() { done <- struct{}{} }()
			var keep [][]byte
			x := 1.0
			for {
				select {
				case <-stop:
					return
				default:
				}
				if alloc {
					keep = append(keep, make([]byte, 64<<10))
					if len(keep) > 256 {
						keep = keep[:0]
					}
				} else {
					for j := 0; j < 1e5; j++ {
						x = x*1.0000001 + 1e-9
					}
				}
			}
		}()
	}
	deadline := time.After(time.Duration(secs) * time.Second)
	failed := 0
	counts := map[EventKind]int{}
	cases := make([]<-chan Event, len(nodes))
	for i, n := range nodes {
		cases[i] = n.Events()
	}
loop:
	for {
		for _, ch := range cases {
			select {
			case ev := <-ch:
				counts[ev.Kind]++
				if ev.Kind == MemberFailed {
					failed++
				}
			default:
			}
		}
		select {
		case <-deadline:
			break loop
		case <-time.After(5 * time.Millisecond):
		}
	}
	close(stop)
	for i := 0; i < burners; i++ {
		<-done
	}
	t.Logf("%d s, 8 nodes, %d burners (alloc %v), probe %v/%v mult %d: events %v (MemberFailed = false positives: %d)",
		secs, burners, alloc, preset.ProbeInterval, preset.ProbeTimeout, preset.SuspicionMult, counts, failed)
}

// burn keeps n goroutines busy until stop is closed, like a training loop.
func burn(n int, stop <-chan struct{}) (wait func()) {
	done := make(chan struct{}, n)
	for i := 0; i < n; i++ {
		go func() {
			defer func() { done <- struct{}{} }()
			x := 1.0
			for {
				select {
				case <-stop:
					return
				default:
				}
				for j := 0; j < 1e5; j++ {
					x = x*1.0000001 + 1e-9
				}
			}
		}()
	}
	return func() {
		for i := 0; i < n; i++ {
			<-done
		}
	}
}

// countFailures counts MemberFailed events on n until the deadline.
func countFailures(n *Node, deadline time.Time) int {
	failed := 0
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	for {
		select {
		case ev := <-n.Events():
			if ev.Kind == MemberFailed {
				failed++
			}
		case <-timer.C:
			return failed
		}
	}
}

// TestStressProcesses is the realistic variant: RINGO_STRESS_PROCS worker
// processes (children of this test binary), one node each, every one of
// them running RINGO_STRESS_BURNERS CPU-bound goroutines for RINGO_STRESS
// seconds after agreeing; the parent node counts MemberFailed events and
// the children print theirs.
func TestStressProcesses(t *testing.T) {
	procs, _ := strconv.Atoi(os.Getenv("RINGO_STRESS_PROCS"))
	secs, _ := strconv.Atoi(os.Getenv("RINGO_STRESS"))
	if procs <= 0 || secs <= 0 || os.Getenv("RINGO_CHILD_SEED") != "" {
		t.Skip("set RINGO_STRESS_PROCS=<n> and RINGO_STRESS=<seconds>")
	}
	stressPreset(t)
	key, _ := NewKey()
	world := procs + 1
	parent := start(t, Config{Group: "procs", World: world, Name: "p00", Rank: -1, Key: mustKey(key)})
	t.Cleanup(func() { parent.Close() })
	deadline := time.Now().Add(time.Duration(secs)*time.Second + 10*time.Second)
	var cmds []*exec.Cmd
	var outs []*bytes.Buffer
	for i := 0; i < procs; i++ {
		cmd := exec.Command(os.Args[0], "-test.run=^TestStressChild$", "-test.v")
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		cmd.Env = append(os.Environ(), "RINGO_CHILD_SEED="+parent.GossipAddr(), "RINGO_CHILD_KEY="+key,
			"RINGO_CHILD_NAME=c"+strconv.Itoa(10+i), "RINGO_CHILD_WORLD="+strconv.Itoa(world),
			"RINGO_CHILD_DEADLINE="+strconv.FormatInt(deadline.UnixMilli(), 10))
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		cmds, outs = append(cmds, cmd), append(outs, &out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	v, err := parent.Agree(ctx)
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("agreed %v", v)
	failed := countFailures(parent, deadline)
	for i, cmd := range cmds {
		cmd.Wait()
		for _, line := range strings.Split(outs[i].String(), "\n") {
			if strings.Contains(line, "FALSEPOS") {
				t.Log(strings.TrimSpace(line))
			}
		}
	}
	t.Logf("parent: %d MemberFailed with probe %v/%v mult %d", failed, preset.ProbeInterval, preset.ProbeTimeout, preset.SuspicionMult)
}

func mustKey(s string) []byte {
	k, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return k
}

func TestStressChild(t *testing.T) {
	seed := os.Getenv("RINGO_CHILD_SEED")
	if seed == "" {
		t.Skip("child of TestStressProcesses")
	}
	stressPreset(t)
	world, _ := strconv.Atoi(os.Getenv("RINGO_CHILD_WORLD"))
	ms, _ := strconv.ParseInt(os.Getenv("RINGO_CHILD_DEADLINE"), 10, 64)
	burners, _ := strconv.Atoi(os.Getenv("RINGO_STRESS_BURNERS"))
	n := start(t, Config{Group: "procs", World: world, Name: os.Getenv("RINGO_CHILD_NAME"), Rank: -1,
		Key: mustKey(os.Getenv("RINGO_CHILD_KEY")), Join: []string{seed}})
	defer n.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	_, err := n.Agree(ctx)
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	wait := burn(burners, stop)
	failed := countFailures(n, time.UnixMilli(ms))
	close(stop)
	wait()
	fmt.Printf("FALSEPOS %s %d\n", n.Name(), failed)
	// Stay up until every process has stopped counting.
	time.Sleep(time.Until(time.UnixMilli(ms).Add(2 * time.Second)))
}

// stressPreset lets the stress tests try other detector settings.
func stressPreset(t *testing.T) {
	saved := preset
	t.Cleanup(func() { preset = saved })
	if v, err := time.ParseDuration(os.Getenv("RINGO_STRESS_PROBE")); err == nil {
		preset.ProbeInterval = v
	}
	if v, err := time.ParseDuration(os.Getenv("RINGO_STRESS_TIMEOUT")); err == nil {
		preset.ProbeTimeout = v
	}
	if v, err := strconv.Atoi(os.Getenv("RINGO_STRESS_SUSPICION")); err == nil {
		preset.SuspicionMult = v
	}
}
