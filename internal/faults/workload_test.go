package faults

import (
	"context"
	"testing"
	"time"

	"github.com/ringo-ml/ringo/collective"
)

// TestWorkloadReference: the workload's reference results agree, bit for
// bit, with what the library computes (goroutine ranks), for every kind,
// type and operator it draws, and every rank's copy of a replicated result
// is the same.
func TestWorkloadReference(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	const world = 3
	comms, err := collective.NewInProc(ctx, world, collective.Config{ChunkBytes: 1024})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		for _, c := range comms {
			c.Close()
		}
	}()
	for i := range 60 {
		call := MakeCall(7, i, world, 5000, AllKinds)
		if again := MakeCall(7, i, world, 5000, AllKinds); again != call {
			t.Fatalf("MakeCall is not deterministic: %v vs %v", call, again)
		}
		outs := make([]Outcome, world)
		done := make(chan int, world)
		for r, c := range comms {
			go func() {
				outs[r] = Run(ctx, c, 7, call)
				done <- r
			}()
		}
		for range world {
			<-done
		}
		for r, o := range outs {
			if o.Err != nil || o.Wrong != 0 {
				t.Fatalf("call %v rank %d: %v, %d wrong (%s)", call, r, o.Err, o.Wrong, o.First)
			}
			if call.Replicated() && o.Digest != outs[0].Digest {
				t.Fatalf("call %v: ranks 0 and %d differ", call, r)
			}
		}
	}
}
