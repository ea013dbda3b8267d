package collective

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/ringo-ml/ringo/internal/engine/stream"
	"github.com/ringo-ml/ringo/internal/race"
	"github.com/ringo-ml/ringo/internal/wire"
)

// TestRecursiveDoublingBigChunks runs recursive doubling with chunks larger
// than the in-process links buffer (4 MiB): both partners of an exchange
// send at once, so a receiver must take a chunk in before it waits for its
// own send to finish, or both would wait forever.
func TestRecursiveDoublingBigChunks(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, world := range []int{2, 3, 4} {
		comms, err := NewInProc(ctx, world, Config{ChunkBytes: 16 << 20, Algorithm: Tree})
		if err != nil {
			t.Fatal(err)
		}
		const n = 3 << 20 // 12 MiB of float32
		bufs := make([][]float32, world)
		var wg sync.WaitGroup
		errs := make([]error, world)
		for r, c := range comms {
			c.pathCosts[stream.QUIC] = Costs{Alpha: time.Second, Beta: 1e-12, Gamma: 1e-12} // latency-bound: recursive doubling
			if ch, _, _ := c.choose(wire.OpAllReduce, Auto, TransportAuto, 4*n, 0); ch.Schedule != ScheduleRecursiveDoubling {
				t.Fatalf("the model chose %s", ch.Schedule)
			}
			bufs[r] = make([]float32, n)
			for i := range bufs[r] {
				bufs[r][i] = float32(r + 1)
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs[r] = c.AllReduce(ctx, bufs[r], Sum)
			}()
		}
		wg.Wait()
		want := float32(world * (world + 1) / 2)
		for r := range comms {
			if errs[r] != nil {
				t.Fatalf("world %d rank %d: %v", world, r, errs[r])
			}
			if bufs[r][0] != want || bufs[r][n-1] != want {
				t.Fatalf("world %d rank %d: got %v, want %v", world, r, bufs[r][0], want)
			}
		}
		for _, c := range comms {
			c.Close()
		}
	}
}

// TestZeroAllocs: an in-process AllReduce allocates nothing once warm, on
// any rank's goroutines (the counter is process-wide).
func TestZeroAllocs(t *testing.T) {
	if race.Enabled {
		t.Skip("the race detector allocates on its own")
	}
	ctx := context.Background()
	comms, err := NewInProc(ctx, 2, Config{ChunkBytes: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		for _, c := range comms {
			c.Close()
		}
	}()
	expectNoAllocs(t, comms, 100_000, 20)
}

// TestZeroAllocsShm: on shared memory, an AllReduce of several windows
// allocates nothing once warm.
func TestZeroAllocsShm(t *testing.T) {
	if race.Enabled {
		t.Skip("the race detector allocates on its own")
	}
	comms := pinnedGroup(t, 2, TransportShm)
	if comms[0].shm == nil {
		t.Fatal("not on shared memory")
	}
	expectNoAllocs(t, comms, 1<<20, 1000)
	// Registered buffers: the zero-copy path allocates nothing either.
	bufs := make([][]float32, 2)
	for r, c := range comms {
		var err error
		if bufs[r], err = c.AllocFloat32(1 << 20); err != nil {
			t.Fatal(err)
		}
	}
	before := comms[0].shm.ZeroCopies()
	expectNoAllocsOn(t, comms, bufs, 200)
	if comms[0].shm.ZeroCopies() == before {
		t.Error("the registered buffers did not take the zero-copy path")
	}
}
