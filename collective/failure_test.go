package collective_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/ringo-ml/ringo/collective"
	"github.com/ringo-ml/ringo/internal/launch"
)

type starter func(ctx context.Context, n int, cfg collective.Config) (*launch.Group, error)

var transports = map[string]starter{"inproc": launch.InProc, "quic": quicOnly, "shm": shmOnly, "tcp": tcpOnly, "tls": tlsOnly}

func TestMismatch(t *testing.T) {
	type call func(ctx context.Context, r int, c *collective.Communicator) error
	allreduce := func(n int) call {
		return func(ctx context.Context, r int, c *collective.Communicator) error {
			return c.AllReduce(ctx, make([]float32, n), collective.Sum)
		}
	}
	cases := []struct {
		name  string
		odd   call     // what rank 3 calls; the others call allreduce(1000)
		words []string // the error names both calls
	}{
		{"op", func(ctx context.Context, r int, c *collective.Communicator) error {
			return c.Broadcast(ctx, make([]float32, 1000), 0)
		}, []string{"AllReduce(float32[1000], sum) #1", "Broadcast(float32[1000], root 0) #1"}},
		{"count", allreduce(2000), []string{"AllReduce(float32[1000], sum) #1", "AllReduce(float32[2000], sum) #1"}},
		{"dtype", func(ctx context.Context, r int, c *collective.Communicator) error {
			return c.AllReduce(ctx, make([]float64, 1000), collective.Sum)
		}, []string{"AllReduce(float32[1000], sum) #1", "AllReduce(float64[1000], sum) #1"}},
		{"redop", func(ctx context.Context, r int, c *collective.Communicator) error {
			return c.AllReduce(ctx, make([]float32, 1000), collective.Max)
		}, []string{"AllReduce(float32[1000], sum) #1", "AllReduce(float32[1000], max) #1"}},
	}
	for tname, start := range transports {
		for _, tc := range cases {
			t.Run(tname+"/"+tc.name, func(t *testing.T) {
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				g := startGroup(t, ctx, start, 4, collective.Config{ChunkBytes: 1024})
				opCtx, opCancel := context.WithTimeout(ctx, 10*time.Second)
				defer opCancel()
				t0 := time.Now()
				errs := launch.OnEveryRank(g.Comms, func(r int, c *collective.Communicator) error {
					if r == 3 {
						return tc.odd(opCtx, r, c)
					}
					return allreduce(1000)(opCtx, r, c)
				})
				if d := time.Since(t0); d > 5*time.Second {
					t.Errorf("took %v to fail", d)
				}
				for r, err := range errs {
					if !errors.Is(err, collective.ErrMismatch) {
						t.Errorf("rank %d: got %v, want ErrMismatch", r, err)
						continue
					}
					for _, w := range tc.words {
						if !strings.Contains(err.Error(), w) {
							t.Errorf("rank %d: %q does not name %q", r, err, w)
						}
					}
				}
				// Later calls fail fast.
				t1 := time.Now()
				for r, c := range g.Comms {
					err := c.Barrier(ctx)
					if !errors.Is(err, collective.ErrPoisoned) || !errors.Is(err, collective.ErrMismatch) {
						t.Errorf("rank %d: later call: %v", r, err)
					}
				}
				if d := time.Since(t1); d > time.Second {
					t.Errorf("later calls took %v", d)
				}
			})
		}
	}
}

// TestCloseMidOp closes one rank while the others are inside an AllReduce
// that needs it: they must all fail within far less than their deadline.
func TestCloseMidOp(t *testing.T) {
	for tname, start := range transports {
		for _, inFlight := range []bool{false, true} {
			name := tname + "/idle"
			if inFlight {
				name = tname + "/inflight"
			}
			t.Run(name, func(t *testing.T) {
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				g := startGroup(t, ctx, start, 4, collective.Config{})
				opCtx, opCancel := context.WithTimeout(ctx, 2*time.Second)
				defer opCancel()
				closedAt := make(chan time.Time, 1)
				closed := make(chan struct{})
				var ended [4]time.Time
				errs := launch.OnEveryRank(g.Comms, func(r int, c *collective.Communicator) error {
					if r == 3 {
						if inFlight {
							// Rank 3's AllReduce cannot finish: rank 2 joins
							// only after the Close.
							go func() {
								time.Sleep(100 * time.Millisecond)
								closedAt <- time.Now()
								_ = c.Close()
								close(closed)
							}()
							return c.AllReduce(opCtx, make([]float32, 1<<20), collective.Sum)
						}
						time.Sleep(100 * time.Millisecond)
						closedAt <- time.Now()
						err := c.Close()
						close(closed)
						return err
					}
					if r == 2 && inFlight {
						<-closed
					}
					err := c.AllReduce(opCtx, make([]float32, 1<<20), collective.Sum)
					ended[r] = time.Now()
					return err
				})
				at := <-closedAt
				var took time.Duration
				for _, e := range ended[:3] {
					took = max(took, e.Sub(at))
				}
				for r, err := range errs[:3] {
					if !errors.Is(err, collective.ErrPeerLost) {
						t.Errorf("rank %d: got %v, want ErrPeerLost", r, err)
					} else {
						t.Logf("rank %d: %v", r, err)
					}
				}
				if inFlight && !errors.Is(errs[3], collective.ErrClosed) {
					t.Errorf("rank 3: got %v, want ErrClosed", errs[3])
				}
				if took > time.Second {
					t.Errorf("survivors took %v after the close to fail", took)
				}
				for r, c := range g.Comms[:3] {
					if err := c.Barrier(ctx); !errors.Is(err, collective.ErrPoisoned) {
						t.Errorf("rank %d: later call: %v", r, err)
					}
				}
			})
		}
	}
}

// TestDeathMidOp makes a QUIC rank vanish (its socket closes, nothing more
// is sent, as when its process is killed) during an AllReduce: the others
// fail by their 2 s deadline, naming the rank they waited for.
func TestDeathMidOp(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	g, err := quicOnly(ctx, 4, collective.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	opCtx, opCancel := context.WithTimeout(ctx, 2*time.Second)
	defer opCancel()
	t0 := time.Now()
	errs := launch.OnEveryRank(g.Comms, func(r int, c *collective.Communicator) error {
		if r == 3 {
			time.Sleep(100 * time.Millisecond)
			g.Kill(3)
			return nil
		}
		return c.AllReduce(opCtx, make([]float32, 1<<22), collective.Sum)
	})
	took := time.Since(t0)
	for r, err := range errs[:3] {
		if err == nil {
			t.Fatalf("rank %d: succeeded without rank 3", r)
		}
		t.Logf("rank %d: %v", r, err)
	}
	if !strings.Contains(errs[2].Error(), "rank 3") && !strings.Contains(errs[0].Error(), "rank 3") {
		t.Errorf("neither neighbour of rank 3 names it: %v / %v", errs[0], errs[2])
	}
	if took > 3*time.Second {
		t.Errorf("survivors took %v, deadline was 2 s", took)
	}
}

var _ = net.IPv4

// TestMismatchAllWaiting: calls that disagree in a way where ranks wait to
// receive before they send (ranks disagreeing on the root of a Broadcast;
// a tree AllReduce beside a ring Broadcast) still fail with ErrMismatch at
// once, on every rank: each operation opens with a frame to the ring
// successor, sent and read at once, carrying the call's fingerprint
// (a schedule's first transfer where that waits for nothing, else an
// empty frame ahead of it).
func TestMismatchAllWaiting(t *testing.T) {
	ring, tree := collective.Using(collective.Ring), collective.Using(collective.Tree)
	bcast := func(root int, o collective.CallOption) func(ctx context.Context, c *collective.Communicator) error {
		return func(ctx context.Context, c *collective.Communicator) error {
			return c.Broadcast(ctx, make([]float32, 64), root, o)
		}
	}
	allreduce := func(n int, o collective.CallOption) func(ctx context.Context, c *collective.Communicator) error {
		return func(ctx context.Context, c *collective.Communicator) error {
			return c.AllReduce(ctx, make([]float32, n), collective.Sum, o)
		}
	}
	reduce := func(root int, o collective.CallOption) func(ctx context.Context, c *collective.Communicator) error {
		return func(ctx context.Context, c *collective.Communicator) error {
			return c.Reduce(ctx, make([]float32, 64), make([]float32, 64), collective.Sum, root, o)
		}
	}
	type call = func(ctx context.Context, c *collective.Communicator) error
	cases := []struct {
		name  string
		world int
		calls func(r int) call // rank r's call
		algo  bool             // the calls differ only in the algorithm
	}{
		{"ring broadcast roots", 3, func(r int) call { return bcast(map[bool]int{true: 0, false: 2}[r == 2], ring) }, false},
		{"tree broadcast roots", 4, func(r int) call { return bcast(map[bool]int{true: 0, false: 2}[r == 2], tree) }, false},
		{"tree allreduce beside ring broadcast", 4, func(r int) call {
			if r < 2 {
				return allreduce(64, tree)
			}
			return bcast(3, ring)
		}, false},
		{"tree allreduce beside tree reduce", 4, func(r int) call {
			if r%2 == 0 {
				return allreduce(64, tree)
			}
			return reduce(1, tree)
		}, false},
		{"tree allreduce counts", 4, func(r int) call { return allreduce(64+r/2, tree) }, false},
		{"ring allreduce beside tree allreduce", 5, func(r int) call {
			if r == 3 {
				return allreduce(64, ring)
			}
			return allreduce(64, tree)
		}, true},
	}
	for tname, start := range transports {
		t.Run(tname, func(t *testing.T) {
			for _, tc := range cases {
				t.Run(tc.name, func(t *testing.T) {
					if tc.algo && tname == "shm" {
						t.Skip("shared memory has one AllReduce whatever the algorithm: the calls agree")
					}
					ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
					defer cancel()
					g := startGroup(t, ctx, start, tc.world, collective.Config{Algorithm: collective.Tree})
					opCtx, opCancel := context.WithTimeout(ctx, 10*time.Second)
					defer opCancel()
					t0 := time.Now()
					errs := launch.OnEveryRank(g.Comms, func(r int, c *collective.Communicator) error { return tc.calls(r)(opCtx, c) })
					if d := time.Since(t0); d > 5*time.Second {
						t.Errorf("took %v to fail", d)
					}
					for r, err := range errs {
						if !errors.Is(err, collective.ErrMismatch) {
							t.Errorf("rank %d: got %v, want ErrMismatch", r, err)
						}
					}
				})
			}
		})
	}
}
