package collective

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"testing"
	"time"
)

// rankBuffers are one rank's tensors for a sequence of operations whose
// results depend on their order (several reuse a buffer).
type rankBuffers struct {
	a      []float32 // AllReduce Sum, then AllReduce Max, then Broadcast
	b      []float64 // Broadcast, then AllReduce Prod
	rsDst  []float32
	rsSrc  []float32
	agDst  []float64
	agSrc  []float64
	redDst []float32
	gatDst []float64
}

func newRankBuffers(r, world int) *rankBuffers {
	const n = 3000 // several chunks' worth at the small chunk size below
	rb := &rankBuffers{
		a: make([]float32, n), b: make([]float64, n),
		rsDst: make([]float32, n), rsSrc: make([]float32, n*world),
		agDst: make([]float64, 7*world), agSrc: make([]float64, 7),
		redDst: make([]float32, n), gatDst: make([]float64, 7*world),
	}
	for i := range rb.a {
		rb.a[i] = float32((r*31+i*7)%19-9) / 4
		rb.b[i] = []float64{0.5, 1, 2, -1}[(r+i)%4]
	}
	for i := range rb.rsSrc {
		rb.rsSrc[i] = float32((r+1)*(i%13)) / 8
	}
	for i := range rb.agSrc {
		rb.agSrc[i] = float64(r*100 + i)
	}
	return rb
}

// script issues the sequence on c: blocking calls when async is false,
// otherwise asynchronous ones (but for the blocking positions in mixed),
// and returns the futures in issue order.
func script(ctx context.Context, c *Communicator, rb *rankBuffers, async bool, mixed map[int]bool) ([]*Work, error) {
	steps := []struct {
		block func() error
		queue func() *Work
	}{
		{func() error { return c.AllReduce(ctx, rb.a, Sum) }, func() *Work { return c.AllReduceAsync(ctx, rb.a, Sum) }},
		{func() error { return c.AllReduce(ctx, rb.a, Max) }, func() *Work { return c.AllReduceAsync(ctx, rb.a, Max) }},
		{func() error { return c.Broadcast(ctx, rb.b, 1) }, func() *Work { return c.BroadcastAsync(ctx, rb.b, 1) }},
		{func() error { return c.AllReduce(ctx, rb.b, Prod) }, func() *Work { return c.AllReduceAsync(ctx, rb.b, Prod) }},
		{func() error { return c.ReduceScatter(ctx, rb.rsDst, rb.rsSrc, Avg) }, func() *Work { return c.ReduceScatterAsync(ctx, rb.rsDst, rb.rsSrc, Avg) }},
		{func() error { return c.Barrier(ctx) }, func() *Work { return c.BarrierAsync(ctx) }},
		{func() error { return c.AllGather(ctx, rb.agDst, rb.agSrc) }, func() *Work { return c.AllGatherAsync(ctx, rb.agDst, rb.agSrc) }},
		{func() error { return c.Reduce(ctx, rb.redDst, rb.a, Sum, 2) }, func() *Work { return c.ReduceAsync(ctx, rb.redDst, rb.a, Sum, 2) }},
		{func() error { return c.Broadcast(ctx, rb.a, 0) }, func() *Work { return c.BroadcastAsync(ctx, rb.a, 0) }},
		{func() error { return c.Gather(ctx, rb.gatDst, rb.agSrc, 0) }, func() *Work { return c.GatherAsync(ctx, rb.gatDst, rb.agSrc, 0) }},
	}
	var futs []*Work
	for i, s := range steps {
		if !async || mixed[i] {
			if err := s.block(); err != nil {
				return futs, fmt.Errorf("step %d: %w", i, err)
			}
			continue
		}
		futs = append(futs, s.queue())
	}
	return futs, nil
}

func sameBits(t *testing.T, what string, r int, got, want any) {
	t.Helper()
	if fmt.Sprintf("%v", bitsOf(got)) != fmt.Sprintf("%v", bitsOf(want)) {
		t.Fatalf("rank %d: %s differs from the blocking run", r, what)
	}
}

func bitsOf(v any) []uint64 {
	var out []uint64
	switch s := v.(type) {
	case []float32:
		for _, x := range s {
			out = append(out, uint64(math.Float32bits(x)))
		}
	case []float64:
		for _, x := range s {
			out = append(out, math.Float64bits(x))
		}
	}
	return out
}

// Asynchronous operations, issued all at once and then awaited, give the
// blocking calls' results bit for bit, and complete in issue order; mixing
// blocking calls in keeps the order.
func TestAsyncMatchesBlocking(t *testing.T) {
	const world = 3
	ctx := asyncCtx(t)
	ref := make([]*rankBuffers, world)
	noErr(t, "blocking", onEveryRank(asyncGroup(t, world), func(r int, c *Communicator) error {
		ref[r] = newRankBuffers(r, world)
		_, err := script(ctx, c, ref[r], false, nil)
		return err
	}))
	for _, mixed := range []map[int]bool{nil, {2: true, 3: true, 7: true}, {0: true, 9: true}} {
		t.Run(fmt.Sprintf("blocking at %v", mixed), func(t *testing.T) {
			got := make([]*rankBuffers, world)
			noErr(t, "async", onEveryRank(asyncGroup(t, world), func(r int, c *Communicator) error {
				got[r] = newRankBuffers(r, world)
				futs, err := script(ctx, c, got[r], true, mixed)
				if err != nil {
					return err
				}
				for k, f := range futs {
					if err := f.Wait(ctx); err != nil {
						return fmt.Errorf("future %d: %w", k, err)
					}
					for j := range k {
						if futs[j].Err() != nil || !isDone(futs[j]) {
							return fmt.Errorf("future %d completed before future %d", k, j)
						}
					}
				}
				return nil
			}))
			for r := range world {
				g, w := got[r], ref[r]
				sameBits(t, "a", r, g.a, w.a)
				sameBits(t, "b", r, g.b, w.b)
				sameBits(t, "ReduceScatter", r, g.rsDst, w.rsDst)
				sameBits(t, "AllGather", r, g.agDst, w.agDst)
				sameBits(t, "Reduce", r, g.redDst, w.redDst)
				sameBits(t, "Gather", r, g.gatDst, w.gatDst)
			}
		})
	}
}

func isDone(f *Work) bool {
	select {
	case <-f.Done():
		return true
	default:
		return false
	}
}

// waitExecutor waits until c's queue goroutine has returned.
func waitExecutor(ctx context.Context, c *Communicator) error {
	_, exited := c.queue.Pending()
	if exited == nil {
		return nil
	}
	select {
	case <-exited:
		return nil
	case <-ctx.Done():
		return errors.New("the queue's goroutine did not return once the queue was empty")
	}
}

// The executor goroutine exists only while operations are queued.
func TestAsyncExecutorExits(t *testing.T) {
	ctx := asyncCtx(t)
	comms := asyncGroup(t, 2)
	noErr(t, "rounds", onEveryRank(comms, func(r int, c *Communicator) error {
		buf := []float32{float32(r + 1)}
		for round := range 3 {
			futs := []*Work{c.AllReduceAsync(ctx, buf, Sum), c.BarrierAsync(ctx)}
			if err := WaitAll(ctx, futs...); err != nil {
				return err
			}
			if err := waitExecutor(ctx, c); err != nil {
				return err
			}
			pending, _ := c.queue.Pending()
			if pending != 0 {
				return fmt.Errorf("round %d: %d operations still counted pending", round, pending)
			}
		}
		if want := float32(12); buf[0] != want { // 1+2, then doubled by each later round
			return fmt.Errorf("buf = %v, want %v", buf[0], want)
		}
		return nil
	}))
}

// A failed asynchronous operation poisons the communicator: those queued
// behind it fail with ErrPoisoned, on every rank.
func TestAsyncPoison(t *testing.T) {
	ctx := asyncCtx(t)
	comms := asyncGroup(t, 2)
	errs := onEveryRank(comms, func(r int, c *Communicator) error {
		first := c.AllReduceAsync(ctx, make([]float32, 8*(r+1)), Sum) // counts differ
		second := c.AllReduceAsync(ctx, make([]float32, 8), Sum)
		if err := first.Wait(ctx); !errors.Is(err, ErrMismatch) {
			return fmt.Errorf("first: %v", err)
		}
		if err := second.Wait(ctx); !errors.Is(err, ErrPoisoned) || !errors.Is(err, ErrMismatch) {
			return fmt.Errorf("queued behind a failure: %v", err)
		}
		var oe *OpError
		if err := second.Wait(ctx); !errors.As(err, &oe) {
			return fmt.Errorf("not an *OpError: %v", err)
		}
		if err := c.Barrier(ctx); !errors.Is(err, ErrPoisoned) {
			return fmt.Errorf("blocking call after: %v", err)
		}
		return nil
	})
	noErr(t, "poison", errs)
}

// Bad arguments fail the operation, in its turn, without poisoning.
func TestAsyncInvalid(t *testing.T) {
	ctx := asyncCtx(t)
	comms := asyncGroup(t, 2)
	noErr(t, "invalid", onEveryRank(comms, func(r int, c *Communicator) error {
		bad := c.AllReduceAsync(ctx, []int{1}, Sum)
		var nilCtx context.Context
		noCtx := c.BarrierAsync(nilCtx)
		buf := []float64{1}
		good := c.AllReduceAsync(ctx, buf, Sum)
		if err := bad.Wait(ctx); !errors.Is(err, ErrInvalid) {
			return fmt.Errorf("bad buffer: %v", err)
		}
		if err := noCtx.Wait(ctx); !errors.Is(err, ErrInvalid) {
			return fmt.Errorf("nil context: %v", err)
		}
		if err := good.Wait(ctx); err != nil || buf[0] != 2 {
			return fmt.Errorf("after invalid calls: %v %v", buf, err)
		}
		return nil
	}))
}

// An operation cancelled (or whose context ends) while queued fails at once
// without touching its buffer; at its turn it poisons the communicator.
func TestAsyncCancelQueued(t *testing.T) {
	ctx := asyncCtx(t)
	comms := asyncGroup(t, 2)
	c0, c1 := comms[0], comms[1]
	a0 := []float32{1, 2}
	first := c0.AllReduceAsync(ctx, a0, Sum) // waits for rank 1
	b0 := []float32{5, 5}
	second := c0.AllReduceAsync(ctx, b0, Sum)
	second.Cancel()
	if err := second.Wait(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled while queued: %v", err)
	}
	short, cancel := context.WithTimeout(ctx, time.Millisecond)
	defer cancel()
	third := c0.AllReduceAsync(short, b0, Sum)
	if err := third.Wait(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("deadline while queued: %v", err)
	}
	// A blocking call whose context ends while it waits behind them.
	short2, cancel2 := context.WithTimeout(ctx, time.Millisecond)
	defer cancel2()
	if err := c0.AllReduce(short2, b0, Sum); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("blocking call waiting behind async ones: %v", err)
	}

	// Rank 1 takes part in the first; it completes normally.
	a1 := []float32{10, 20}
	if err := c1.AllReduce(ctx, a1, Sum); err != nil {
		t.Fatal(err)
	}
	if err := first.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	if a0[0] != 11 || a0[1] != 22 || b0[0] != 5 || b0[1] != 5 {
		t.Fatalf("a0 %v (want [11 22]), b0 %v (want untouched)", a0, b0)
	}
	// Then the abandoned ones poison rank 0, and rank 1 hears of it.
	if err := c0.Barrier(ctx); !errors.Is(err, ErrPoisoned) || !errors.Is(err, context.Canceled) {
		t.Fatalf("rank 0 after the abandoned operations: %v", err)
	}
	if err := c1.Barrier(ctx); err == nil {
		t.Fatal("rank 1 completed a barrier that rank 0 abandoned")
	}
}

// Close fails the queued operations and stops the queue's goroutine.
func TestAsyncClose(t *testing.T) {
	ctx := asyncCtx(t)
	comms := asyncGroup(t, 2)
	c0 := comms[0]
	futs := []*Work{
		c0.AllReduceAsync(ctx, []float32{1}, Sum), // waits for rank 1, which never calls
		c0.BroadcastAsync(ctx, []float32{1}, 0),
		c0.BarrierAsync(ctx),
	}
	if err := c0.Close(); err != nil {
		t.Fatal(err)
	}
	for k, f := range futs {
		if err := f.Wait(ctx); !errors.Is(err, ErrClosed) && !errors.Is(err, ErrPoisoned) {
			t.Fatalf("future %d after Close: %v", k, err)
		}
	}
	if err := c0.BarrierAsync(ctx).Wait(ctx); !errors.Is(err, ErrClosed) {
		t.Fatalf("after Close: %v", err)
	}
	_, exited := c0.queue.Pending()
	if exited != nil {
		t.Fatal("the queue's goroutine outlived Close")
	}
}

// BenchmarkOverlap measures what asynchronous collectives buy a training
// step: per layer, a backward computation produces a gradient that is then
// averaged over 2 in-process ranks. "sequential" waits for each AllReduce
// before computing the next layer; "overlapped" issues AllReduceAsync and
// computes the next layer meanwhile, waiting for all at the end of the
// step. "compute" and "comm" time each half alone: sequential is about
// their sum, overlapped approaches the larger of the two when there are
// cores to spare. Compute is either CPU work on the rank's goroutine
// ("cpu", competing with communication for this machine's cores) or a
// wait standing for a kernel on an accelerator ("device", the host idle
// meanwhile).
//
//	go test -run='^$' -bench=Overlap ./collective
func BenchmarkOverlap(b *testing.B) {
	const (
		world  = 2
		layers = 8
		floats = 64 << 10 // 256 KiB of float32 per layer's gradient
	)
	for _, kind := range []string{"cpu", "device"} {
		for _, mode := range []string{"compute", "comm", "sequential", "overlapped"} {
			b.Run(kind+"/"+mode, func(b *testing.B) {
				ctx := context.Background()
				comms := asyncGroup(b, world)
				grads := make([][][]float32, world)
				work := make([][]float32, world)
				for r := range world {
					work[r] = make([]float32, floats)
					grads[r] = make([][]float32, layers)
					for l := range grads[r] {
						grads[r][l] = make([]float32, floats)
					}
				}
				compute := func(r, l int) {
					if kind == "device" {
						time.Sleep(500 * time.Microsecond)
						return
					}
					w, g := work[r], grads[r][l]
					for range 4 {
						for i := range w {
							w[i] = w[i]*0.5 + 1
						}
					}
					copy(g, w)
				}
				b.SetBytes(int64(layers * floats * 4))
				b.ResetTimer()
				for range b.N {
					errs := onEveryRank(comms, func(r int, c *Communicator) error {
						futs := make([]*Work, 0, layers)
						for l := range layers {
							if mode != "comm" {
								compute(r, l)
							}
							switch mode {
							case "comm", "sequential":
								if err := c.AllReduce(ctx, grads[r][l], Avg); err != nil {
									return err
								}
							case "overlapped":
								futs = append(futs, c.AllReduceAsync(ctx, grads[r][l], Avg))
							}
						}
						err := WaitAll(ctx, futs...)
						return err
					})
					for _, err := range errs {
						if err != nil {
							b.Fatal(err)
						}
					}
				}
			})
		}
	}
}

// Two ranks average three layers' gradients while they go on computing:
// the operations run in the order they were issued.
func ExampleCommunicator_AllReduceAsync() {
	ctx := context.Background()
	comms, err := NewInProc(ctx, 2, Config{})
	if err != nil {
		panic(err)
	}
	grads := make([][][]float32, len(comms))
	var wg sync.WaitGroup
	for r, c := range comms {
		wg.Add(1)
		go func() {
			defer wg.Done()
			futs := make([]*Work, 3)
			grads[r] = make([][]float32, 3)
			for l := range 3 {
				grads[r][l] = []float32{float32(10*l + r)} // "backward" of layer l
				futs[l] = c.AllReduceAsync(ctx, grads[r][l], Avg)
			}
			if err := WaitAll(ctx, futs...); err != nil {
				panic(err)
			}
		}()
	}
	wg.Wait()
	for _, c := range comms {
		c.Close()
	}
	fmt.Println(grads[0], grads[1])
	// Output: [[0.5] [10.5] [20.5]] [[0.5] [10.5] [20.5]]
}
