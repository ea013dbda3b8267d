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

func TestExplain(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	comms, err := collective.NewInProc(ctx, 4, collective.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer closeAllComms(comms)
	k := comms[0].Costs()
	if k.Alpha <= 0 || k.Beta <= 0 || k.Gamma <= 0 {
		t.Fatalf("calibration left %v", k)
	}
	// Every rank holds the same costs, so every rank chooses alike.
	for r, c := range comms {
		if c.Costs() != k {
			t.Fatalf("rank %d has %v, rank 0 %v", r, c.Costs(), k)
		}
	}
	for _, size := range []int{1, 1 << 10, 1 << 20, 1 << 26} {
		ch, err := comms[0].Explain(collective.OpAllReduce, 4, size)
		if err != nil {
			t.Fatal(err)
		}
		if ch.Reason == "" || ch.Schedule == 0 || ch.Estimate <= 0 {
			t.Errorf("%d floats: %+v", size, ch)
		}
		t.Logf("%9d floats: %s (%s)", size, ch.Schedule, ch.Reason)
	}
	ch, err := comms[0].Explain(collective.OpAllReduce, 4, 1<<10, collective.Using(collective.Ring))
	if err != nil || ch.Algorithm != collective.Ring || ch.Reason != "forced" {
		t.Errorf("forced ring: %+v %v", ch, err)
	}
	ch, err = comms[0].Explain(collective.OpAllGather, 4, 1<<10, collective.Using(collective.Tree))
	if err != nil || ch.Algorithm != collective.Ring || !strings.Contains(ch.Reason, "no tree") {
		t.Errorf("allgather with tree: %+v %v", ch, err)
	}
	if _, err := comms[0].Explain(collective.Operation(42), 4, 1); !errors.Is(err, collective.ErrInvalid) {
		t.Errorf("unknown op: %v", err)
	}
	// Calibrate again, as a collective call: figures stay agreed.
	errs := launch.OnEveryRank(comms, func(r int, c *collective.Communicator) error { return c.Calibrate(ctx) })
	noErrors(t, "Calibrate", errs)
	for r, c := range comms {
		if c.Costs() != comms[0].Costs() {
			t.Fatalf("after recalibration rank %d differs", r)
		}
	}
}

// TestAlgorithmMismatch: ranks that force different algorithms fail with
// ErrMismatch saying so, rather than hang.
func TestAlgorithmMismatch(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	comms, err := collective.NewInProc(ctx, 4, collective.Config{Timeout: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer closeAllComms(comms)
	errs := launch.OnEveryRank(comms, func(r int, c *collective.Communicator) error {
		a := collective.Ring
		if r == 2 {
			a = collective.Tree
		}
		return c.AllReduce(ctx, make([]float32, 100), collective.Sum, collective.Using(a))
	})
	for r, err := range errs {
		if !errors.Is(err, collective.ErrMismatch) {
			t.Errorf("rank %d: %v", r, err)
		}
	}
	if !strings.Contains(errs[0].Error(), "tree") {
		t.Errorf("the error does not say which algorithms differed: %v", errs[0])
	}
}
