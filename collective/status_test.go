package collective_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/ringo-ml/ringo/collective"
	"github.com/ringo-ml/ringo/internal/launch"
)

// waitStatus polls c.Status until ok accepts it (the operation it watches
// runs on other goroutines), failing the test after a generous bound.
func waitStatus(t *testing.T, c *collective.Communicator, ok func(collective.Status) bool) collective.Status {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		s := c.Status()
		if ok(s) {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("status never reached the expected state; last:\n%s", s)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestStatusInFlight: while rank 2 has not called yet, ranks 0 and 1 show
// their AllReduce in flight, with the link that waits for rank 2; once it
// calls, the operation completes and Status shows nothing in flight.
func TestStatusInFlight(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	g := startGroup(t, ctx, launch.InProc, 3, collective.Config{Algorithm: collective.Ring, ChunkBytes: 4096})
	idle := g.Comms[0].Status()
	if len(idle.Ops) != 0 || idle.Err != nil || idle.Completed != 0 || idle.World != 3 || idle.Rank != 0 {
		t.Fatalf("idle status: %+v", idle)
	}
	release := make(chan struct{})
	errs := make(chan error, 3)
	bufs := make([][]float32, 3)
	for r := range 3 {
		bufs[r] = make([]float32, 30000)
		for i := range bufs[r] {
			bufs[r][i] = float32(r + 1)
		}
		go func() {
			if r == 2 {
				<-release
			}
			errs <- g.Comms[r].AllReduce(ctx, bufs[r], collective.Sum)
		}()
	}
	// Rank 0 receives from rank 2: it is stuck at the first chunk, which
	// opens the operation.
	s := waitStatus(t, g.Comms[0], func(s collective.Status) bool {
		if len(s.Ops) != 1 || s.Ops[0].Connecting {
			return false
		}
		for _, l := range s.Ops[0].Links {
			if !l.Send && l.Peer == 2 && !l.Done && l.Step == 0 {
				return true
			}
		}
		return false
	})
	op := s.Ops[0]
	if op.Seq != 1 || op.Call != "AllReduce(float32[30000], sum) #1" || op.Algorithm != collective.Ring || op.Schedule != collective.ScheduleRing || op.Bytes != 120000 {
		t.Errorf("op status %+v", op)
	}
	if op.Deadline.IsZero() || op.Started.IsZero() || !op.Deadline.After(op.Started) {
		t.Errorf("times: started %v deadline %v", op.Started, op.Deadline)
	}
	text := s.String()
	for _, w := range []string{"rank 0 of 3", "AllReduce(float32[30000], sum) #1", "from rank 2", "step 0 of 4", "(reduce-scatter)", "to rank 1"} {
		if !strings.Contains(text, w) {
			t.Errorf("status text lacks %q:\n%s", w, text)
		}
	}
	close(release)
	for range 3 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	for r, c := range g.Comms {
		s := c.Status()
		if len(s.Ops) != 0 || s.Completed != 1 || s.Err != nil {
			t.Errorf("rank %d after the operation: %+v", r, s)
		}
		if bufs[r][0] != 6 || bufs[r][len(bufs[r])-1] != 6 {
			t.Errorf("rank %d: result %v", r, bufs[r][0])
		}
	}
	if got := g.Comms[1].Status().String(); !strings.Contains(got, "no operation in flight") {
		t.Errorf("idle text: %q", got)
	}
}

// TestHangReportNamesTheStalledRank: rank 2 of four QUIC ranks vanishes
// (its socket closes; it answers nothing, as when its process is frozen or
// partitioned) in the middle of an AllReduce. Every survivor fails at its
// 1.5 s deadline (plus the bounded wait for a peer's report), and every
// survivor's error names rank 2: its neighbours because it did not answer
// their probe, rank 0 through its neighbours' reports.
func TestHangReportNamesTheStalledRank(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	g := startGroup(t, ctx, launch.QUIC, 4, collective.Config{Algorithm: collective.Ring, ChunkBytes: 64 << 10, Transport: collective.TransportQUIC})
	const deadline = 1500 * time.Millisecond
	opCtx, opCancel := context.WithTimeout(ctx, deadline)
	defer opCancel()
	t0 := time.Now()
	var ended [4]time.Time
	errs := launch.OnEveryRank(g.Comms, func(r int, c *collective.Communicator) error {
		if r == 2 {
			g.Kill(2)
			return nil
		}
		err := c.AllReduce(opCtx, make([]float32, 1<<20), collective.Sum)
		ended[r] = time.Now()
		return err
	})
	for _, r := range []int{0, 1, 3} {
		err := errs[r]
		if err == nil {
			t.Fatalf("rank %d: succeeded without rank 2", r)
		}
		t.Logf("rank %d after %v: %v", r, ended[r].Sub(t0).Round(time.Millisecond), err)
		if took := ended[r].Sub(t0); took > deadline+2*time.Second {
			t.Errorf("rank %d took %v; deadline %v", r, took, deadline)
		}
		msg := err.Error()
		if !strings.Contains(msg, "rank 2") || !strings.Contains(msg, "did not answer a ping") {
			t.Errorf("rank %d: the error does not name the silent rank 2: %v", r, err)
		}
		if !strings.Contains(msg, "AllReduce(float32[1048576], sum) #1") || !strings.Contains(msg, "step ") {
			t.Errorf("rank %d: the error does not name the call and step: %v", r, err)
		}
		if later := g.Comms[r].Barrier(ctx); !errors.Is(later, collective.ErrPoisoned) {
			t.Errorf("rank %d: later call: %v", r, later)
		}
		if s := g.Comms[r].Status(); s.Err == nil || len(s.Ops) != 0 {
			t.Errorf("rank %d: status after the failure: %+v", r, s)
		}
	}
	// The neighbours' own reports blame rank 2 directly.
	if !strings.Contains(errs[3].Error(), "from rank 2, which did not answer a ping") &&
		!strings.Contains(errs[1].Error(), "to rank 2, which did not answer a ping") {
		t.Errorf("no neighbour blames rank 2 first-hand: %v / %v", errs[1], errs[3])
	}
}

// TestSlowRankIsNotAborted: a rank that arrives at 40% of the others'
// deadline must not make anyone fail: the probe near the deadline does not
// abort, and the operation is done long before it.
func TestSlowRankIsNotAborted(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	g := startGroup(t, ctx, launch.QUIC, 3, collective.Config{Algorithm: collective.Ring, Transport: collective.TransportQUIC})
	const deadline = 2 * time.Second
	opCtx, opCancel := context.WithTimeout(ctx, deadline)
	defer opCancel()
	bufs := [3][]float64{}
	errs := launch.OnEveryRank(g.Comms, func(r int, c *collective.Communicator) error {
		bufs[r] = make([]float64, 4096)
		for i := range bufs[r] {
			bufs[r][i] = float64(i * (r + 1))
		}
		if r == 1 {
			time.Sleep(deadline * 4 / 10)
		}
		return c.AllReduce(opCtx, bufs[r], collective.Sum)
	})
	noErrors(t, "AllReduce with a slow rank", errs)
	for r := range 3 {
		for i, v := range bufs[r] {
			if v != float64(6*i) {
				t.Fatalf("rank %d element %d = %v, want %v", r, i, v, 6*i)
			}
		}
	}
}
