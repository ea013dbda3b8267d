package collective_test

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/ringo-ml/ringo/collective"
)

// Four goroutine ranks sum their gradients; every rank ends with the total.
func ExampleCommunicator_AllReduce() {
	ctx := context.Background()
	comms, err := collective.NewInProc(ctx, 4, collective.Config{})
	if err != nil {
		panic(err)
	}
	grads := make([][]float32, 4)
	var wg sync.WaitGroup
	for r, c := range comms {
		grads[r] = []float32{float32(r + 1), float32(10 * (r + 1))}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := c.AllReduce(ctx, grads[r], collective.Sum); err != nil {
				panic(err)
			}
		}()
	}
	wg.Wait()
	for _, c := range comms {
		c.Close()
	}
	fmt.Println(grads[0], grads[3])
	// Output: [10 100] [10 100]
}

// Rank 2 broadcasts its weights to the others.
func ExampleCommunicator_Broadcast() {
	ctx := context.Background()
	comms, err := collective.NewInProc(ctx, 3, collective.Config{})
	if err != nil {
		panic(err)
	}
	weights := [][]float64{make([]float64, 3), make([]float64, 3), {0.5, -1, 2}}
	var wg sync.WaitGroup
	for r, c := range comms {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := c.Broadcast(ctx, weights[r], 2); err != nil {
				panic(err)
			}
		}()
	}
	wg.Wait()
	for _, c := range comms {
		c.Close()
	}
	fmt.Println(weights[0])
	// Output: [0.5 -1 2]
}

// Rank 0 gathers one value from each rank.
func ExampleCommunicator_Gather() {
	ctx := context.Background()
	comms, err := collective.NewInProc(ctx, 4, collective.Config{})
	if err != nil {
		panic(err)
	}
	all := make([]float32, 4)
	var wg sync.WaitGroup
	for r, c := range comms {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var dst []float32
			if r == 0 {
				dst = all
			}
			if err := c.Gather(ctx, dst, []float32{float32(r * r)}, 0); err != nil {
				panic(err)
			}
		}()
	}
	wg.Wait()
	for _, c := range comms {
		c.Close()
	}
	fmt.Println(all)
	// Output: [0 1 4 9]
}

// Calls that do not match fail on every rank, naming both calls.
func ExampleErrMismatch() {
	ctx := context.Background()
	comms, err := collective.NewInProc(ctx, 2, collective.Config{})
	if err != nil {
		panic(err)
	}
	errs := make([]error, 2)
	var wg sync.WaitGroup
	for r, c := range comms {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if r == 0 {
				errs[r] = c.AllReduce(ctx, make([]float32, 8), collective.Sum)
			} else {
				errs[r] = c.Broadcast(ctx, make([]float32, 8), 0)
			}
		}()
	}
	wg.Wait()
	for _, c := range comms {
		c.Close()
	}
	fmt.Println(errors.Is(errs[0], collective.ErrMismatch), errors.Is(errs[1], collective.ErrMismatch))
	// Output: true true
}

// A tensor that ranks reduce again and again is best allocated by the
// communicator: between processes on one host, the other ranks map it and
// AllReduce reduces it in place, with no copies. Elsewhere (here, goroutine
// ranks) it is ordinary memory, and everything else is the same.
func ExampleCommunicator_AllocFloat32() {
	ctx := context.Background()
	comms, err := collective.NewInProc(ctx, 2, collective.Config{})
	if err != nil {
		panic(err)
	}
	bufs := make([][]float32, 2)
	for r, c := range comms {
		if bufs[r], err = c.AllocFloat32(1 << 20); err != nil { // 4 MiB
			panic(err)
		}
		bufs[r][0] = float32(r + 1)
	}
	var wg sync.WaitGroup
	for r, c := range comms {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := c.AllReduce(ctx, bufs[r], collective.Sum); err != nil {
				panic(err)
			}
		}()
	}
	wg.Wait()
	fmt.Println(bufs[0][0], bufs[1][0])
	for r, c := range comms {
		_ = c.Free(bufs[r]) // the memory must not be used after Free
		c.Close()
	}
	// Output: 3 3
}

// An Arena hands out every layer's gradient from one registered buffer:
// on shared memory, AllReduces of them reduce in place.
func ExampleArena() {
	ctx := context.Background()
	comms, err := collective.NewInProc(ctx, 2, collective.Config{})
	if err != nil {
		panic(err)
	}
	var wg sync.WaitGroup
	for r, c := range comms {
		wg.Go(func() {
			defer c.Close()
			arena, err := collective.NewArena[float32](c, 6)
			if err != nil {
				panic(err)
			}
			defer arena.Free()
			w1, _ := arena.Take(4) // a layer's weights' gradient
			b1, _ := arena.Take(2) // its bias's
			for i := range w1 {
				w1[i] = float32(r + 1)
			}
			b1[0], b1[1] = 10, float32(r)
			// One call for both: consecutive tensors are one slice.
			if err := c.AllReduce(ctx, arena.All(), collective.Sum); err != nil {
				panic(err)
			}
			if r == 0 {
				fmt.Println(w1, b1)
			}
		})
	}
	wg.Wait()
	// Output: [3 3 3 3] [20 1]
}
