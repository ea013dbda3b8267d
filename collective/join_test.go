package collective_test

import (
	"context"
	"encoding/base64"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ringo-ml/ringo/collective"
	"github.com/ringo-ml/ringo/rendezvous"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func testKey(t *testing.T) []byte {
	t.Helper()
	s, err := rendezvous.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	k, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// joinAll starts n workers that know only the first one's gossip address,
// the group, the sizes and the key, and returns their communicators.
func joinAll(t *testing.T, ctx context.Context, n int, cfg collective.JoinConfig) []*collective.Communicator {
	t.Helper()
	seed := freeAddr(t)
	comms := make([]*collective.Communicator, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := cfg
			if i == 0 {
				c.Bind = seed
			} else {
				c.Join = []string{seed}
			}
			comms[i], errs[i] = collective.Join(ctx, c)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			closeAllComms(nonNil(comms))
			t.Fatalf("worker %d: %v", i, err)
		}
	}
	return comms
}

func nonNil(cs []*collective.Communicator) []*collective.Communicator {
	var out []*collective.Communicator
	for _, c := range cs {
		if c != nil {
			out = append(out, c)
		}
	}
	return out
}

// TestJoin: four workers told only a seed address, the world size and the
// key form one group (ranks 0..3, each once) and allreduce exactly over
// QUIC with certificates pinned by the agreed view.
func TestJoin(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	comms := joinAll(t, ctx, 4, collective.JoinConfig{Group: "join-test", World: 4, Key: testKey(t)})
	defer closeAllComms(comms)
	seen := map[int]bool{}
	for _, c := range comms {
		if c.Size() != 4 || seen[c.Rank()] {
			t.Fatalf("rank %d of %d (seen %v)", c.Rank(), c.Size(), seen)
		}
		seen[c.Rank()] = true
	}
	bufs := make([][]float32, 4)
	errs := runAll(comms, func(i int, c *collective.Communicator) error {
		bufs[i] = []float32{float32(c.Rank() + 1), 2}
		return c.AllReduce(ctx, bufs[i], collective.Sum)
	})
	noErrors(t, "AllReduce", errs)
	for i := range bufs {
		if bufs[i][0] != 10 || bufs[i][1] != 8 {
			t.Fatalf("worker %d: %v", i, bufs[i])
		}
	}
}

// TestJoinReform: a worker of an elastic group (3..4) closes; the others'
// next operation fails with ErrPeerLost, and they re-form at the next
// epoch without it, in the same processes, and carry on.
func TestJoinReform(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	comms := joinAll(t, ctx, 4, collective.JoinConfig{Group: "reform-test", Min: 3, Max: 4, Key: testKey(t)})
	gone := comms[3]
	survivors := comms[:3]
	if err := gone.Close(); err != nil {
		t.Fatal(err)
	}
	errs := runAll(survivors, func(i int, c *collective.Communicator) error {
		return c.AllReduce(ctx, make([]float32, 8), collective.Sum)
	})
	lost := 0
	for _, err := range errs {
		if errors.Is(err, collective.ErrPeerLost) {
			lost++
		} else if err != nil {
			t.Fatalf("got %v, want nil or ErrPeerLost", err)
		}
	}
	if lost == 0 {
		t.Fatal("no survivor noticed the worker that left")
	}
	next := make([]*collective.Communicator, 3)
	errs = runAll(survivors, func(i int, c *collective.Communicator) error {
		var err error
		next[i], err = c.Rejoin(ctx)
		return err
	})
	noErrors(t, "Rejoin", errs)
	defer closeAllComms(next)
	for _, c := range next {
		if c.Size() != 3 {
			t.Fatalf("re-formed with %d members", c.Size())
		}
	}
	bufs := make([][]float64, 3)
	errs = runAll(next, func(i int, c *collective.Communicator) error {
		bufs[i] = []float64{1}
		return c.AllReduce(ctx, bufs[i], collective.Sum)
	})
	noErrors(t, "AllReduce at epoch 2", errs)
	if bufs[0][0] != 3 {
		t.Fatalf("got %v", bufs[0])
	}
}

// TestJoinNeedsKeyOffLoopback: without a key a worker refuses to serve on
// a non-loopback address, and says how to make a key.
func TestJoinNeedsKeyOffLoopback(t *testing.T) {
	t.Setenv(rendezvous.KeyEnv, "")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := collective.Join(ctx, collective.JoinConfig{Group: "g", World: 2, Bind: "127.0.0.1:0", DataBind: "192.0.2.1:0"})
	if err == nil || !strings.Contains(err.Error(), "RINGO_CLUSTER_KEY") {
		t.Fatalf("got %v", err)
	}
}
