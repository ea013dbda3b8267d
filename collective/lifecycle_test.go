package collective_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/ringo-ml/ringo/collective"
	"github.com/ringo-ml/ringo/internal/launch"
)

// TestLateNeighbourAfterBye: a rank that finishes an operation and closes
// before its neighbour has started that operation must not make the
// neighbour fail: what it sent is buffered, and its bye names the last
// operation it finished.
func TestLateNeighbourAfterBye(t *testing.T) {
	for tname, start := range transports {
		for _, algo := range []collective.Algorithm{collective.Ring, collective.Tree} {
			t.Run(tname+"/"+algo.String(), func(t *testing.T) {
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				g, err := start(ctx, 3, collective.Config{})
				if err != nil {
					t.Fatal(err)
				}
				defer g.Close()
				errs := launch.OnEveryRank(g.Comms, func(r int, c *collective.Communicator) error {
					if r == 1 {
						time.Sleep(150 * time.Millisecond) // late, on purpose
					}
					buf := make([]float32, 100)
					if err := c.Broadcast(ctx, buf, 2, collective.Using(algo)); err != nil {
						return err
					}
					return c.Close()
				})
				noErrors(t, "Broadcast then Close", errs)
			})
		}
	}
}

// TestLinkDuringOpIsBounded: a Tree call on a communicator made for the
// Ring must link on demand; when the peer never asks for that link the
// call ends at its bound with an error (no hang, no panic).
func TestLinkDuringOpIsBounded(t *testing.T) {
	ctx := context.Background()
	g, err := launch.InProc(ctx, 8, collective.Config{Algorithm: collective.Ring, Timeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	var wg sync.WaitGroup
	var got error
	wg.Add(1)
	go func() {
		defer wg.Done()
		got = g.Comms[6].Broadcast(ctx, make([]float32, 8), 0, collective.Using(collective.Tree))
	}()
	wg.Wait()
	if got == nil || !errors.Is(got, collective.ErrPeerLost) {
		t.Fatalf("got %v", got)
	}
	dctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	if err := g.Comms[5].Broadcast(dctx, make([]float32, 8), 0, collective.Using(collective.Tree)); err == nil {
		t.Fatal("a lone tree call succeeded")
	}
}
