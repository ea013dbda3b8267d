package collective_test

import (
	"context"
	"crypto/tls"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/ringo-ml/ringo/collective"
	"github.com/ringo-ml/ringo/internal/launch"
	"github.com/ringo-ml/ringo/internal/netem"
	"github.com/ringo-ml/ringo/internal/pki"
	"github.com/ringo-ml/ringo/internal/transport"
	"github.com/ringo-ml/ringo/rendezvous"
)

// joinAll starts n workers that know only the first one's gossip address,
// the group, the sizes and the key, and returns their communicators.
func joinAll(t *testing.T, ctx context.Context, n int, cfg collective.JoinConfig) []*collective.Communicator {
	t.Helper()
	return joinAllWith(t, ctx, n, cfg, nil)
}

// joinAllWith is joinAll with mod, when not nil, adjusting worker i's
// configuration.
func joinAllWith(t *testing.T, ctx context.Context, n int, cfg collective.JoinConfig, mod func(i int, c *collective.JoinConfig)) []*collective.Communicator {
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
			if mod != nil {
				mod(i, &c)
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
	errs := launch.OnEveryRank(comms, func(i int, c *collective.Communicator) error {
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
// epoch without it, in the same processes, and carry on — through shared
// memory (the default here) and over TLS lanes, which the next epoch's
// communicators make anew on the same sockets.
func TestJoinReform(t *testing.T) {
	for _, tr := range []collective.Transport{collective.TransportAuto, collective.TransportTLS} {
		t.Run(tr.String(), func(t *testing.T) { joinReform(t, tr) })
	}
}

func joinReform(t *testing.T, tr collective.Transport) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	comms := joinAll(t, ctx, 4, collective.JoinConfig{Group: "reform-test", Min: 3, Max: 4, Key: testKey(t),
		Comm: collective.Config{Transport: tr}})
	gone := comms[3]
	survivors := comms[:3]
	if err := gone.Close(); err != nil {
		t.Fatal(err)
	}
	errs := launch.OnEveryRank(survivors, func(i int, c *collective.Communicator) error {
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
	errs = launch.OnEveryRank(survivors, func(i int, c *collective.Communicator) error {
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
		if tr == collective.TransportTLS && c.DataPath() != "TLS lanes" {
			t.Fatalf("re-formed over %s", c.DataPath())
		}
	}
	bufs := make([][]float64, 3)
	errs = launch.OnEveryRank(next, func(i int, c *collective.Communicator) error {
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

// allReduceExact runs an AllReduce of each rank's (rank+1) on every
// communicator and checks the sum.
func allReduceExact(t *testing.T, ctx context.Context, comms []*collective.Communicator) {
	t.Helper()
	bufs := make([][]float64, len(comms))
	errs := launch.OnEveryRank(comms, func(i int, c *collective.Communicator) error {
		bufs[i] = []float64{float64(c.Rank() + 1), 1}
		return c.AllReduce(ctx, bufs[i], collective.Sum)
	})
	noErrors(t, "AllReduce", errs)
	n := float64(len(comms))
	for i, b := range bufs {
		if b[0] != n*(n+1)/2 || b[1] != n {
			t.Fatalf("worker %d: %v", i, b)
		}
	}
}

// TestJoinDataAdvertise: each worker's QUIC socket sits behind a relay (as
// behind NAT or a port forward) and publishes the relay's address
// (DataAdvertise); the group forms and reduces exactly, every byte of it
// through the relays, delayed there.
func TestJoinDataAdvertise(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	const n = 3
	binds := freeUDPAddrs(t, n)
	relays := make([]*netem.Relay, n)
	for i := range n {
		r, err := netem.NewRelay("127.0.0.1:0", binds[i], netem.Config{Delay: 2 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		relays[i] = r
	}
	comms := joinAllWith(t, ctx, n, collective.JoinConfig{Group: "advertise-test", World: n, Key: testKey(t),
		Comm: collective.Config{Algorithm: collective.Ring}}, func(i int, c *collective.JoinConfig) {
		c.DataBind, c.DataAdvertise = binds[i], relays[i].Addr()
	})
	defer closeAllComms(comms)
	allReduceExact(t, ctx, comms)
	var forwarded uint64
	for _, r := range relays {
		st := r.Stats()
		forwarded += st.Forwarded
		if st.Delayed < st.Forwarded { // Delayed counts datagrams when they are queued
			t.Errorf("relay stats %+v: every datagram should have been delayed", st)
		}
	}
	if forwarded == 0 {
		t.Fatal("no datagram went through the advertised relays")
	}
}

// TestJoinAdvertiseInvalid: a DataAdvertise peers could not dial is
// refused with an error that names it, as is one off loopback without a
// key, and a wildcard DataBind with nothing to advertise.
func TestJoinAdvertiseInvalid(t *testing.T) {
	t.Setenv(rendezvous.KeyEnv, "")
	key := testKey(t)
	for _, tc := range []struct {
		cfg  collective.JoinConfig
		want string
	}{
		{collective.JoinConfig{DataAdvertise: "no-port", Key: key}, "DataAdvertise"},
		{collective.JoinConfig{DataAdvertise: ":7000", Key: key}, "no host"},
		{collective.JoinConfig{DataAdvertise: "0.0.0.0:7000", Key: key}, "wildcard"},
		{collective.JoinConfig{DataAdvertise: "10.0.0.1:0", Key: key}, "port"},
		{collective.JoinConfig{DataAdvertise: "10.0.0.1:99999", Key: key}, "port"},
		{collective.JoinConfig{DataAdvertise: "10.0.0.1:7000"}, "RINGO_CLUSTER_KEY"},
		{collective.JoinConfig{DataBind: "0.0.0.0:0", Key: key}, "DataAdvertise"},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		tc.cfg.Group, tc.cfg.World = "g", 2
		c, err := collective.Join(ctx, tc.cfg)
		cancel()
		if err == nil {
			c.Close()
			t.Errorf("%+v: joined", tc.cfg)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("DataBind %q DataAdvertise %q: %v; want it to name %q", tc.cfg.DataBind, tc.cfg.DataAdvertise, err, tc.want)
		}
	}
}

// TestJoinStrangerCannotOpenDataStream: a worker outside the group (it has
// another key or none, so it never saw the view's fingerprints) dials the
// group's QUIC sockets with a certificate of its own, or with none: every
// handshake is refused before a frame is read, and the group carries on.
func TestJoinStrangerCannotOpenDataStream(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	const n = 3
	binds := freeUDPAddrs(t, n)
	comms := joinAllWith(t, ctx, n, collective.JoinConfig{Group: "stranger-test", World: n, Key: testKey(t)},
		func(i int, c *collective.JoinConfig) { c.DataBind = binds[i] })
	defer closeAllComms(comms)
	stranger, _, err := pki.Ephemeral("w-0123456789ab.ringo", 0)
	if err != nil {
		t.Fatal(err)
	}
	for name, certs := range map[string][]tls.Certificate{"own certificate": {stranger}, "no certificate": nil} {
		for _, addr := range binds {
			err := dialData(ctx, addr, certs)
			var te *quic.TransportError
			if !errors.As(err, &te) || !te.ErrorCode.IsCryptoError() {
				t.Errorf("%s, dialing %s: got %v, want a TLS handshake failure", name, addr, err)
			}
		}
	}
	allReduceExact(t, ctx, comms)
}

// dialData dials a worker's QUIC socket as a member would, opens a stream
// and writes to it, and returns the error that ends the attempt: the
// listener closes a connection it refuses.
func dialData(ctx context.Context, addr string, certs []tls.Certificate) error {
	tc := &tls.Config{Certificates: certs, InsecureSkipVerify: true, NextProtos: []string{transport.ALPN}, MinVersion: tls.VersionTLS13}
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	conn, err := quic.DialAddr(dctx, addr, tc, &quic.Config{HandshakeIdleTimeout: 5 * time.Second})
	if err != nil {
		return err
	}
	defer conn.CloseWithError(0, "")
	s, err := conn.OpenStreamSync(dctx)
	if err != nil {
		return err
	}
	if _, err := s.Write([]byte("not a frame")); err != nil {
		return err
	}
	_ = s.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, err = s.Read(make([]byte, 1))
	return err
}

// TestJoinReplace: in a group of fixed size, a worker goes; the survivors'
// Rejoin waits for a replacement, and a new worker (a restarted one: a new
// process, a new name) that joins makes the next epoch with them.
func TestJoinReplace(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	key := testKey(t)
	cfg := collective.JoinConfig{Group: "replace-test", World: 3, Key: key}
	var seed string
	comms := joinAllWith(t, ctx, 3, cfg, func(i int, c *collective.JoinConfig) {
		if i == 1 {
			seed = c.Join[0]
		}
	})
	if err := comms[2].Close(); err != nil {
		t.Fatal(err)
	}
	survivors := comms[:2]
	errs := launch.OnEveryRank(survivors, func(i int, c *collective.Communicator) error {
		return c.AllReduce(ctx, make([]float32, 8), collective.Sum)
	})
	for _, err := range errs {
		if err != nil && !errors.Is(err, collective.ErrPeerLost) {
			t.Fatalf("got %v, want nil or ErrPeerLost", err)
		}
	}
	next := make([]*collective.Communicator, 3)
	errs = make([]error, 3)
	var wg sync.WaitGroup
	for i, c := range survivors {
		wg.Add(1)
		go func() {
			defer wg.Done()
			next[i], errs[i] = c.Rejoin(ctx)
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		c := cfg
		c.Join = []string{seed}
		next[2], errs[2] = collective.Join(ctx, c)
	}()
	wg.Wait()
	defer closeAllComms(nonNil(next))
	noErrors(t, "Rejoin and Join", errs)
	for i, c := range next {
		if c.Epoch() != 2 || c.Size() != 3 {
			t.Fatalf("worker %d: epoch %d, %d ranks; want epoch 2 with 3", i, c.Epoch(), c.Size())
		}
	}
	allReduceExact(t, ctx, next)
}
