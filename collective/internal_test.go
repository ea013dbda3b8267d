package collective

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/ringo-ml/ringo/internal/engine/stream"
	"github.com/ringo-ml/ringo/internal/pki"
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
	if raceEnabled {
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

// pinnedGroup starts n ranks over QUIC on loopback with pinned ephemeral
// certificates (no CA), with transport t.
func pinnedGroup(t *testing.T, n int, tr Transport) []*Communicator {
	t.Helper()
	return pinnedGroupWith(t, n, nil, func(r int, cfg *Config) { cfg.Transport = tr })
}

// pinnedGroupWith is pinnedGroup with the Ring algorithm unless mod
// changes it: members, once made (their addresses on their sockets), go
// through place, and each rank's Config through mod.
func pinnedGroupWith(t *testing.T, n int, place func(members []Member, conns []*net.UDPConn), mod func(r int, cfg *Config)) []*Communicator {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	members := make([]Member, n)
	certs := make([]tls.Certificate, n)
	conns := make([]*net.UDPConn, n)
	for r := range n {
		conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		conns[r] = conn
		name := fmt.Sprintf("rank-%d.test", r)
		cert, sum, err := pki.Ephemeral(name, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		certs[r] = cert
		members[r] = Member{Addr: conn.LocalAddr().String(), Name: name, CertSHA256: sum[:]}
	}
	if place != nil {
		place(members, conns)
	}
	comms := make([]*Communicator, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for r := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cfg := Config{View: View{Group: "pinned", Rank: r, Members: members},
				TLS: &tls.Config{Certificates: []tls.Certificate{certs[r]}}, Conn: conns[r], Algorithm: Ring}
			if mod != nil {
				mod(r, &cfg)
			}
			comms[r], errs[r] = New(ctx, cfg)
		}()
	}
	wg.Wait()
	t.Cleanup(func() {
		for _, c := range comms {
			if c != nil {
				c.Close()
			}
		}
	})
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	return comms
}

// TestZeroAllocsShm: on shared memory, an AllReduce of several windows
// allocates nothing once warm.
func TestZeroAllocsShm(t *testing.T) {
	if raceEnabled {
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

// expectNoAllocs runs a float32 sum AllReduce of n elements on two ranks
// and fails if it allocates once warm. The count is process-wide and
// averaged over runs calls: the QUIC control links' own background work
// (acknowledgements, path-MTU probes in their first seconds) and the
// runtime's occasional allocations (a new thread) stay below one per call
// over enough calls, while one allocation per call would not.
func expectNoAllocs(t *testing.T, comms []*Communicator, n, runs int) {
	t.Helper()
	expectNoAllocsOn(t, comms, [][]float32{make([]float32, n), make([]float32, n)}, runs)
}

// expectNoAllocsOn is expectNoAllocs on the given buffers.
func expectNoAllocsOn(t *testing.T, comms []*Communicator, bufs [][]float32, runs int) {
	t.Helper()
	ctx := context.Background()
	start, done := make(chan struct{}), make(chan error)
	go func() {
		for range start {
			done <- comms[1].AllReduce(ctx, bufs[1], Sum)
		}
	}()
	defer close(start)
	op := func() {
		start <- struct{}{}
		if err := comms[0].AllReduce(ctx, bufs[0], Sum); err != nil {
			t.Fatal(err)
		}
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	op() // warm
	if a := testing.AllocsPerRun(runs, op); a > 0 {
		t.Errorf("%v allocations per AllReduce", a)
	}
}
