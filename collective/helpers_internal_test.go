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

	"github.com/ringo-ml/ringo/internal/pki"
)

// The helpers of this package's internal tests. (The external tests use
// internal/launch, which this package's own tests cannot import: launch
// imports collective.)

// onEveryRank runs f on every rank concurrently and returns the errors by
// rank.
func onEveryRank(comms []*Communicator, f func(r int, c *Communicator) error) []error {
	errs := make([]error, len(comms))
	var wg sync.WaitGroup
	for r, c := range comms {
		wg.Go(func() { errs[r] = f(r, c) })
	}
	wg.Wait()
	return errs
}

// allRanks runs f on every rank at once and joins the errors.
func allRanks(comms []*Communicator, f func(r int, c *Communicator) error) error {
	return errors.Join(onEveryRank(comms, f)...)
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

// asyncGroup starts world in-process ranks and closes them at the end.
func asyncGroup(t testing.TB, world int) []*Communicator {
	t.Helper()
	comms, err := NewInProc(context.Background(), world, Config{Algorithm: Ring})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, c := range comms {
			_ = c.Close()
		}
	})
	return comms
}

func asyncCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func noErr(t *testing.T, what string, errs []error) {
	t.Helper()
	for r, err := range errs {
		if err != nil {
			t.Fatalf("%s: rank %d: %v", what, r, err)
		}
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
