package collective

import (
	"context"
	"errors"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/ringo-ml/ringo/internal/engine/shmem"
)

// regInput is rank r's element i: values whose float32 sums round, so
// that the order of the additions shows in the bits.
func regInput(r, i int) float64 { return float64((i*7+r*13)%1000)/3 + float64(r)*1e-3 }

// TestRegistered runs AllReduce on buffers from AllocFloat32/64 over
// shared memory: every rank's share reduced in place from the others'
// buffers, the result in all of them, with the bits of the windows' path
// (the same inputs in rank order), for sums, averages and maxima, on
// offsets into a region; a rank with ordinary memory sends everyone back
// to the windows; Free and Close leave what they promise.
func TestRegistered(t *testing.T) {
	comms := pinnedGroup(t, 3, TransportShm)
	if comms[0].shm == nil {
		t.Fatal("not on shared memory")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	const n = 3<<18 + 5 // 3 MiB and a bit of float32
	b32 := make([][]float32, 3)
	b64 := make([][]float64, 3)
	for r, c := range comms {
		var err error
		if b32[r], err = c.AllocFloat32(n + 100); err != nil {
			t.Fatal(err)
		}
		if b64[r], err = c.AllocFloat64(n); err != nil {
			t.Fatal(err)
		}
	}
	zc := func() int64 {
		var s int64
		for _, c := range comms {
			s += c.shm.ZeroCopies()
		}
		return s
	}
	check32 := func(name string, op ReduceOp, off int, plain int, wantZero bool) {
		t.Helper()
		bufs := make([][]float32, 3)
		for r := range comms {
			bufs[r] = b32[r][off : off+n]
			if r == plain {
				bufs[r] = make([]float32, n)
			}
			for i := range bufs[r] {
				bufs[r][i] = float32(regInput(r, i))
			}
		}
		want := make([]float32, n)
		for i := range want {
			v := bufs[0][i]
			for r := 1; r < 3; r++ {
				switch op {
				case Max:
					v = max(v, bufs[r][i])
				default:
					v += bufs[r][i]
				}
			}
			if op == Avg {
				v /= 3
			}
			want[i] = v
		}
		before := zc()
		if err := allRanks(comms, func(r int, c *Communicator) error { return c.AllReduce(ctx, bufs[r], op) }); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		for r := range comms {
			for i := range want {
				if math.Float32bits(bufs[r][i]) != math.Float32bits(want[i]) {
					t.Fatalf("%s: rank %d element %d: %v, want %v", name, r, i, bufs[r][i], want[i])
				}
			}
		}
		if got := zc() - before; wantZero != (got == 3) {
			t.Errorf("%s: %d ranks took the zero-copy path, want all: %v", name, got, wantZero)
		}
	}
	check32("sum", Sum, 0, -1, true)
	check32("avg at an offset", Avg, 37, -1, true)
	check32("max", Max, 100, -1, true)
	check32("one rank's buffer is ordinary memory", Sum, 0, 1, false)

	// float64, and a tensor below shmem.ZeroCopyMin takes the windows.
	for _, count := range []int{n, 1000} {
		before := zc()
		if err := allRanks(comms, func(r int, c *Communicator) error {
			for i := range count {
				b64[r][i] = regInput(r, i)
			}
			return c.AllReduce(ctx, b64[r][:count], Sum)
		}); err != nil {
			t.Fatal(err)
		}
		for r := range comms {
			for i := range count {
				if want := (regInput(0, i) + regInput(1, i)) + regInput(2, i); b64[r][i] != want {
					t.Fatalf("float64 %d: rank %d element %d: %v, want %v", count, r, i, b64[r][i], want)
				}
			}
		}
		if got, want := zc()-before, map[bool]int64{true: 3, false: 0}[count*8 >= shmem.ZeroCopyMin]; got != want {
			t.Errorf("float64 %d: %d zero-copy ranks, want %d", count, got, want)
		}
	}

	// Free: a freed region is gone for good; a new one works.
	for r, c := range comms {
		if err := c.Free(b64[r]); err != nil {
			t.Fatal(err)
		}
		if err := c.Free(make([]float64, 3)); err != nil {
			t.Errorf("Free of ordinary memory: %v", err)
		}
		if err := c.Free("x"); !errors.Is(err, ErrInvalid) {
			t.Errorf("Free of a string: %v", err)
		}
		var err error
		if b64[r], err = c.AllocFloat64(n); err != nil {
			t.Fatal(err)
		}
	}
	before := zc()
	if err := allRanks(comms, func(r int, c *Communicator) error { return c.AllReduce(ctx, b64[r], Sum) }); err != nil {
		t.Fatal(err)
	}
	if got := zc() - before; got != 3 {
		t.Errorf("after Free and Alloc: %d zero-copy ranks, want 3", got)
	}
	if _, err := comms[0].AllocFloat32(-1); !errors.Is(err, ErrInvalid) {
		t.Errorf("Alloc of -1: %v", err)
	}

	// A peer that frees and allocates again many times does not leave
	// its old regions mapped here.
	for range 5 {
		if err := comms[1].Free(b64[1]); err != nil {
			t.Fatal(err)
		}
		var err error
		if b64[1], err = comms[1].AllocFloat64(n); err != nil {
			t.Fatal(err)
		}
		if err := allRanks(comms, func(r int, c *Communicator) error { return c.AllReduce(ctx, b64[r], Sum) }); err != nil {
			t.Fatal(err)
		}
	}
	for r, c := range comms {
		mapped := c.shm.Mappings(1)
		if r != 1 && mapped != 2 { // b32[1] and the last b64[1]
			t.Errorf("rank %d holds %d mappings of rank 1's regions, want 2", r, mapped)
		}
	}

	// Close keeps the caller's memory mapped; Alloc then fails, Free works.
	for _, c := range comms {
		c.Close()
	}
	b32[0][5] = 1
	if b32[0][5] != 1 || b64[2][n-1] != b64[2][n-1] {
		t.Fatal("memory after Close")
	}
	if _, err := comms[0].AllocFloat32(1 << 20); !errors.Is(err, ErrClosed) {
		t.Errorf("Alloc after Close: %v", err)
	}
	for r, c := range comms {
		if err := c.Free(b32[r]); err != nil {
			t.Errorf("Free after Close: %v", err)
		}
	}
}

// TestRegisteredElsewhere: on a data path without shared memory, Alloc
// gives ordinary memory and AllReduce works on it.
func TestRegisteredElsewhere(t *testing.T) {
	ctx := context.Background()
	comms, err := NewInProc(ctx, 2, Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		for _, c := range comms {
			c.Close()
		}
	}()
	bufs := make([][]float32, 2)
	for r, c := range comms {
		if bufs[r], err = c.AllocFloat32(1 << 19); err != nil {
			t.Fatal(err)
		}
		for i := range bufs[r] {
			bufs[r][i] = float32(r + 1)
		}
	}
	if err := allRanks(comms, func(r int, c *Communicator) error { return c.AllReduce(ctx, bufs[r], Sum) }); err != nil {
		t.Fatal(err)
	}
	for r := range comms {
		if bufs[r][0] != 3 || bufs[r][len(bufs[r])-1] != 3 {
			t.Fatalf("rank %d: %v", r, bufs[r][:2])
		}
		if err := comms[r].Free(bufs[r]); err != nil {
			t.Fatal(err)
		}
	}
}

// TestRegisteredOthers: Broadcast from a registered root buffer, and
// AllGather and ReduceScatter from registered inputs, take the zero-copy
// path (the other buffers may be ordinary memory) and give the windows'
// results; one rank's ordinary input sends all back to the windows.
func TestRegisteredOthers(t *testing.T) {
	comms := pinnedGroup(t, 3, TransportShm)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	const count = 1<<18 + 3 // per rank: just over 1 MiB of float32
	zc := func() int64 {
		var s int64
		for _, c := range comms {
			s += c.shm.ZeroCopies()
		}
		return s
	}
	alloc := func(r, n int, registered bool) []float32 {
		if !registered {
			return make([]float32, n)
		}
		b, err := comms[r].AllocFloat32(n)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = comms[r].Free(b) })
		return b
	}
	expect := func(name string, before int64, zero bool) {
		t.Helper()
		if got := zc() - before; (got == 3) != zero || (got != 0 && got != 3) {
			t.Errorf("%s: %d ranks took the zero-copy path, want all: %v", name, got, zero)
		}
	}

	// Broadcast from rank 1: only the root's buffer is registered.
	bufs := make([][]float32, 3)
	for r := range 3 {
		bufs[r] = alloc(r, count, r == 1)
		for i := range bufs[r] {
			bufs[r][i] = float32(regInput(r, i))
		}
	}
	before := zc()
	if err := allRanks(comms, func(r int, c *Communicator) error { return c.Broadcast(ctx, bufs[r], 1) }); err != nil {
		t.Fatal(err)
	}
	for r := range 3 {
		for i := range bufs[r] {
			if bufs[r][i] != float32(regInput(1, i)) {
				t.Fatalf("broadcast: rank %d element %d: %v", r, i, bufs[r][i])
			}
		}
	}
	expect("broadcast", before, true)

	for _, allRegistered := range []bool{true, false} {
		// AllGather: registered inputs, ordinary outputs.
		srcs, dsts := make([][]float32, 3), make([][]float32, 3)
		for r := range 3 {
			srcs[r] = alloc(r, count, allRegistered || r != 2)
			dsts[r] = make([]float32, 3*count)
			for i := range srcs[r] {
				srcs[r][i] = float32(regInput(r, i))
			}
		}
		before = zc()
		if err := allRanks(comms, func(r int, c *Communicator) error { return c.AllGather(ctx, dsts[r], srcs[r]) }); err != nil {
			t.Fatal(err)
		}
		for r := range 3 {
			for i, v := range dsts[r] {
				if v != float32(regInput(i/count, i%count)) {
					t.Fatalf("allgather (all registered: %v): rank %d element %d: %v", allRegistered, r, i, v)
				}
			}
		}
		expect(fmt.Sprintf("allgather (all registered: %v)", allRegistered), before, allRegistered)

		// ReduceScatter: registered inputs of 3 blocks, ordinary outputs.
		for r := range 3 {
			srcs[r] = alloc(r, 3*count, allRegistered || r != 0)
			dsts[r] = make([]float32, count)
			for i := range srcs[r] {
				srcs[r][i] = float32(regInput(r, i))
			}
		}
		before = zc()
		if err := allRanks(comms, func(r int, c *Communicator) error { return c.ReduceScatter(ctx, dsts[r], srcs[r], Sum) }); err != nil {
			t.Fatal(err)
		}
		for r := range 3 {
			for i, v := range dsts[r] {
				j := r*count + i
				want := (srcs[0][j] + srcs[1][j]) + srcs[2][j]
				if math.Float32bits(v) != math.Float32bits(want) {
					t.Fatalf("reducescatter (all registered: %v): rank %d element %d: %v, want %v", allRegistered, r, i, v, want)
				}
			}
		}
		expect(fmt.Sprintf("reducescatter (all registered: %v)", allRegistered), before, allRegistered)
	}
}

// TestCalibrateBudget: when the probes predict that timing the schedules
// would take longer than calBudget (slow or lossy links), every rank skips
// it alike and chooses from alpha, beta and gamma alone.
func TestCalibrateBudget(t *testing.T) {
	saved := calBudget
	calBudget = 0
	defer func() { calBudget = saved }()
	comms := pinnedGroup(t, 3, TransportQUIC)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := allRanks(comms, func(_ int, c *Communicator) error { return c.Calibrate(ctx) }); err != nil {
		t.Fatal(err)
	}
	for r, c := range comms {
		k := c.Costs()
		if k.AllReduce[0].PerByte != 0 || k.Alpha <= 0 || k.Beta <= 0 || k != comms[0].Costs() {
			t.Errorf("rank %d: costs %+v; want the probes' alone, the same on every rank", r, k)
		}
		ch, err := c.Explain(OpAllReduce, 4, 1<<20, Using(Auto))
		if err != nil || ch.Schedule == 0 {
			t.Errorf("rank %d: Explain: %+v, %v", r, ch, err)
		}
	}
	bufs := [][]float32{{1}, {2}, {3}}
	if err := allRanks(comms, func(r int, c *Communicator) error { return c.AllReduce(ctx, bufs[r], Sum, Using(Auto)) }); err != nil {
		t.Fatal(err)
	}
	if bufs[0][0] != 6 || bufs[2][0] != 6 {
		t.Errorf("AllReduce after a probes-only calibration: %v", bufs)
	}
}
