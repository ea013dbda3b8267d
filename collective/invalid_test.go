package collective_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/ringo-ml/ringo/collective"
	"github.com/ringo-ml/ringo/internal/launch"
)

// TestInvalidArguments: misuse gives ErrInvalid naming what was wrong,
// sends nothing, and leaves the communicator usable.
func TestInvalidArguments(t *testing.T) {
	ctx := context.Background()
	comms, err := collective.NewInProc(ctx, 2, collective.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		for _, c := range comms {
			c.Close()
		}
	}()
	c := comms[0]
	f32 := make([]float32, 4)
	cases := []struct {
		name string
		call func() error
		want string
	}{
		{"nil buffer", func() error { return c.AllReduce(ctx, nil, collective.Sum) }, "buf is nil"},
		{"wrong type", func() error { return c.AllReduce(ctx, []int{1}, collective.Sum) }, "[]int"},
		{"unknown op", func() error { return c.AllReduce(ctx, f32, collective.ReduceOp(42)) }, "unknown reduction operator"},
		{"root too big", func() error { return c.Broadcast(ctx, f32, 2) }, "root 2 outside [0, 2)"},
		{"negative root", func() error { return c.Gather(ctx, make([]float32, 8), f32, -1) }, "root -1"},
		{"short gather dst", func() error { return c.Gather(ctx, make([]float32, 7), f32, 0) }, "dst has 7 elements, want 8"},
		{"dtype mix", func() error { return c.AllGather(ctx, make([]float64, 8), f32) }, "dst is float64, want float32"},
		{"short rs src", func() error { return c.ReduceScatter(ctx, f32, make([]float32, 5), collective.Sum) }, "src has 5 elements, want 8"},
		{"reduce root dst", func() error { return c.Reduce(ctx, nil, f32, collective.Sum, 0) }, "dst is nil"},
		{"nil context", func() error {
			//lint:ignore SA1012 a nil context is what this case passes
			return c.Barrier(nil)
		}, "nil context"},
	}
	for _, tc := range cases {
		err := tc.call()
		if !errors.Is(err, collective.ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want ErrInvalid mentioning %q", tc.name, err, tc.want)
		}
	}
	// Nothing was sent: the pair still works.
	errs := launch.OnEveryRank(comms, func(r int, c *collective.Communicator) error {
		return c.AllReduce(ctx, []float64{float64(r)}, collective.Sum)
	})
	noErrors(t, "after invalid calls", errs)
}
