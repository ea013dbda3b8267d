package collective

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"

	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ringo-ml/ringo/internal/engine"
	"github.com/ringo-ml/ringo/internal/netem"
	"github.com/ringo-ml/ringo/internal/race"
)

// betweenHosts configures ranks as if each were on a host of its own:
// TransportAuto, with shared memory ruled out.
func betweenHosts(algo Algorithm) func(r int, cfg *Config) {
	return func(r int, cfg *Config) {
		cfg.Transport, cfg.noShm, cfg.Algorithm = TransportAuto, true, algo
	}
}

// TestAutoBetweenHosts: between hosts the default transport has two data
// paths, TLS lanes and QUIC, calibrated each; every call takes one (the
// choice and its reason visible in Explain), gives the exact result on
// either when forced, and a call that asks for a path the communicator
// lacks fails before anything moves.
func TestAutoBetweenHosts(t *testing.T) {
	comms := pinnedGroupWith(t, 4, nil, betweenHosts(Auto))
	c0 := comms[0]
	if got := c0.DataPath(); got != "TLS lanes or QUIC per call" {
		t.Fatalf("DataPath %q", got)
	}
	if c0.LaneAddr() == "" {
		t.Fatal("no lane listener")
	}
	if k := c0.Costs(); k.Transport != TransportTLS || k.Alpha <= 0 {
		t.Fatalf("Costs %+v: want the TLS lanes' figures", k)
	}
	kq, ok := c0.CostsOver(TransportQUIC)
	if !ok || kq.Transport != TransportQUIC || kq.Alpha <= 0 {
		t.Fatalf("CostsOver(quic) %+v %v", kq, ok)
	}
	for _, c := range comms[1:] {
		if c.Costs() != c0.Costs() {
			t.Fatal("the ranks hold different models")
		}
	}
	if _, ok := c0.CostsOver(TransportTCP); ok {
		t.Fatal("costs of a TCP path this communicator does not have")
	}
	for _, n := range []int{1 << 10, 1 << 20, 16 << 20} {
		ch, err := c0.Explain(OpAllReduce, 4, n/4)
		if err != nil {
			t.Fatal(err)
		}
		if ch.Transport != TransportTLS && ch.Transport != TransportQUIC || !strings.Contains(ch.Reason, "tls: ") || !strings.Contains(ch.Reason, "quic: ") {
			t.Fatalf("%d bytes: %+v", n, ch)
		}
		t.Logf("%d bytes: %s over %s: %s", n, ch.Schedule, ch.Transport, ch.Reason)
		forced, err := c0.Explain(OpAllReduce, 4, n/4, Over(TransportQUIC), Using(Ring))
		if err != nil || forced.Transport != TransportQUIC || forced.Schedule != ScheduleRing {
			t.Fatalf("forced: %+v %v", forced, err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, opts := range [][]CallOption{nil, {Over(TransportTLS)}, {Over(TransportQUIC)}, {Over(TransportTLS), Using(Tree)}} {
		for _, n := range []int{3, 1000, 300_001} {
			bufs := make([][]float32, len(comms))
			errs := onEveryRank(comms, func(r int, c *Communicator) error {
				bufs[r] = make([]float32, n)
				for i := range bufs[r] {
					bufs[r][i] = float32((r + 1) * (i%7 + 1))
				}
				return c.AllReduce(ctx, bufs[r], Sum, opts...)
			})
			if err := errors.Join(errs...); err != nil {
				t.Fatalf("%v n=%d: %v", opts, n, err)
			}
			for r := range bufs {
				for i, v := range bufs[r] {
					if v != float32(10*(i%7+1)) {
						t.Fatalf("%v n=%d rank %d [%d] = %v", opts, n, r, i, v)
					}
				}
			}
		}
	}
	for _, tr := range []Transport{TransportTCP, TransportShm, 9} {
		err := c0.AllReduce(ctx, make([]float32, 10), Sum, Over(tr))
		if !errors.Is(err, ErrInvalid) {
			t.Fatalf("Over(%v): %v; want ErrInvalid", tr, err)
		}
	}
}

// TestTLSOnly: TransportTLS has the lanes alone; its QUIC links carry
// control frames, and asking for QUIC data fails.
func TestTLSOnly(t *testing.T) {
	comms := pinnedGroupWith(t, 3, nil, func(r int, cfg *Config) { cfg.Transport, cfg.Algorithm = TransportTLS, Auto })
	if got := comms[0].DataPath(); got != "TLS lanes" {
		t.Fatalf("DataPath %q", got)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := comms[0].AllReduce(ctx, make([]float32, 4), Sum, Over(TransportQUIC)); !errors.Is(err, ErrInvalid) {
		t.Fatalf("Over(quic) on TLS lanes: %v", err)
	}
	errs := onEveryRank(comms, func(r int, c *Communicator) error {
		b := []float64{float64(r), 1}
		if err := c.AllReduce(ctx, b, Sum); err != nil {
			return err
		}
		if b[0] != 3 || b[1] != 3 {
			return fmt.Errorf("got %v", b)
		}
		return nil
	})
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
}

// wireRuns indexes every 64-byte run of some tensors that starts at an
// element (4-byte) boundary, by a rolling hash, to find any of them in
// bytes captured on the wire.
type wireRuns struct {
	runs map[uint64][]byte
}

const runLen, runBase = 64, 1099511628211

var runTop = func() uint64 { // runBase^(runLen-1)
	p := uint64(1)
	for range runLen - 1 {
		p *= runBase
	}
	return p
}()

func (w *wireRuns) add(b []byte) {
	for i := 0; i+runLen <= len(b); i += 4 {
		var h uint64
		for _, x := range b[i : i+runLen] {
			h = h*runBase + uint64(x)
		}
		w.runs[h] = b[i : i+runLen]
	}
}

// find returns the offset of the first run found in wire, or -1.
func (w *wireRuns) find(wire []byte) int {
	if len(wire) < runLen {
		return -1
	}
	var h uint64
	for _, x := range wire[:runLen] {
		h = h*runBase + uint64(x)
	}
	for i := 0; ; i++ {
		if r, ok := w.runs[h]; ok && string(r) == string(wire[i:i+runLen]) {
			return i
		}
		if i+runLen >= len(wire) {
			return -1
		}
		h = (h-uint64(wire[i])*runTop)*runBase + uint64(wire[i+runLen])
	}
}

// relayed is a group of two whose rank 1 is reached through relays that
// record every byte: its QUIC socket through a UDP relay, its lanes
// through a TCP one. mutate, when set, may alter the lane bytes.
type relayed struct {
	comms []*Communicator
	mu    sync.Mutex
	udp   []byte
	tcp   []byte
}

func newRelayed(t *testing.T, tr Transport, mutate func(toTarget bool, b []byte)) *relayed {
	t.Helper()
	g := &relayed{}
	var laneAddr string
	place := func(members []Member, conns []*net.UDPConn) {
		target := conns[1].LocalAddr().String()
		u, err := netem.NewRelay("127.0.0.1:0", target, netem.Config{Tap: func(_ bool, b []byte) { g.keep(&g.udp, b) }})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = u.Close() })
		members[1].Addr = u.Addr()
		// Rank 1's lane listener takes its UDP port's number over TCP.
		tr, err := netem.NewTCPRelay("127.0.0.1:0", func() string { return target }, netem.TCPConfig{
			Mutate: func(_ int, toTarget bool, b []byte) {
				if mutate != nil {
					mutate(toTarget, b)
				}
			},
			Tap: func(_ int, _ bool, b []byte) { g.keep(&g.tcp, b) }})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = tr.Close() })
		laneAddr = tr.Addr()
	}
	g.comms = pinnedGroupWith(t, 2, place, func(r int, cfg *Config) {
		betweenHosts(Auto)(r, cfg)
		cfg.Transport = tr
		if r == 1 {
			cfg.laneAdvertise = laneAddr
		}
	})
	if tr != TransportQUIC {
		_, port, _ := net.SplitHostPort(g.comms[1].LaneAddr())
		if _, want, _ := net.SplitHostPort(g.comms[1].selfAddrUDP()); port != want {
			t.Skipf("rank 1's lanes listen on port %s, not its UDP port %s (taken): the relay cannot reach them", port, want)
		}
	}
	return g
}

// selfAddrUDP is the address of this rank's UDP socket, for tests.
func (c *Communicator) selfAddrUDP() string {
	if m, ok := c.mesh.(interface{ Addr() net.Addr }); ok {
		return m.Addr().String()
	}
	return ""
}

// keep appends bytes a relay saw to one of the captures.
func (g *relayed) keep(dst *[]byte, b []byte) {
	g.mu.Lock()
	*dst = append(*dst, b...)
	g.mu.Unlock()
}

func (g *relayed) captured() []byte {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append(append([]byte{}, g.tcp...), g.udp...)
}

// sweep runs AllReduce on random tensors of several sizes and returns
// every input and result.
func (g *relayed) sweep(t *testing.T, opts ...CallOption) [][]float32 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var all [][]float32
	for _, n := range []int{1 << 10, 1 << 14, 1 << 17} {
		bufs := make([][]float32, 2)
		for r := range bufs {
			rng := rand.New(rand.NewPCG(uint64(n), uint64(r)))
			bufs[r] = make([]float32, n)
			for i := range bufs[r] {
				bufs[r][i] = float32(rng.NormFloat64())
			}
			all = append(all, append([]float32(nil), bufs[r]...))
		}
		if ch, err := g.comms[0].Explain(OpAllReduce, 4, n, opts...); err == nil {
			t.Logf("%d bytes: %s over %s", 4*n, ch.Schedule, ch.Transport)
		}
		errs := onEveryRank(g.comms, func(r int, c *Communicator) error { return c.AllReduce(ctx, bufs[r], Sum, opts...) })
		if err := errors.Join(errs...); err != nil {
			t.Fatal(err)
		}
		all = append(all, bufs[0])
	}
	return all
}

// TestDefaultTransportOnTheWire: between hosts, the default transport
// puts no 64-byte run of any tensor's plaintext (inputs and results) on
// the wire, on either path; the same check finds the plaintext when the
// data moves over TCP, so it can fail.
func TestDefaultTransportOnTheWire(t *testing.T) {
	for _, tc := range []struct {
		tr    Transport
		plain bool
	}{{TransportAuto, false}, {TransportTCP, true}} {
		t.Run(tc.tr.String(), func(t *testing.T) {
			g := newRelayed(t, tc.tr, nil)
			var opts []CallOption
			tensors := g.sweep(t, opts...)
			if tc.tr == TransportAuto { // and both paths forced, so that both carry tensors
				tensors = append(tensors, g.sweep(t, Over(TransportQUIC))...)
				tensors = append(tensors, g.sweep(t, Over(TransportTLS))...)
			}
			w := &wireRuns{runs: map[uint64][]byte{}}
			for _, x := range tensors {
				w.add(engine.Bytes(x))
			}
			wire := g.captured()
			g.mu.Lock()
			nt, nu := len(g.tcp), len(g.udp)
			g.mu.Unlock()
			t.Logf("captured %d bytes of lanes, %d of QUIC datagrams", nt, nu)
			if tc.tr == TransportAuto && (nt < 1<<20 || nu < 1<<20) {
				t.Fatalf("too little crossed the relays (%d, %d bytes): the tensors went elsewhere", nt, nu)
			}
			at := w.find(wire)
			switch {
			case tc.plain && at < 0:
				t.Fatal("plaintext TCP: no tensor bytes found on the wire; the check is blind")
			case !tc.plain && at >= 0:
				t.Fatalf("tensor plaintext on the wire at byte %d", at)
			}
		})
	}
}

// TestTamperedLane: one byte flipped on a TLS lane, on the way from
// rank 0 to rank 1, fails rank 1's operation with ErrProtocol, naming the
// link and the cause — never a wrong result. Rank 0 fails the same call
// when it still needed rank 1's data (the ring, flipped in its first
// step); where it already had everything (recursive doubling: one
// exchange) it holds the exact result, as the promise is per rank (see
// docs/failure-semantics.md), and its next call fails with the cause.
func TestTamperedLane(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts []CallOption
		both bool // both ranks fail the call itself
	}{
		{"ring", []CallOption{Over(TransportTLS), Using(Ring)}, true},
		{"auto", nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var armed atomic.Int64 // bytes to let through before the flip; 0: off
			g := newRelayed(t, TransportAuto, func(toTarget bool, b []byte) {
				if !toTarget {
					return
				}
				for i := range b {
					if n := armed.Load(); n > 0 && armed.Add(-1) == 0 {
						b[i] ^= 0x10
					}
				}
			})
			const n = 1 << 18 // 1 MiB
			if ch, _ := g.comms[0].Explain(OpAllReduce, 4, n, tc.opts...); ch.Transport != TransportTLS {
				t.Skipf("Auto sends 1 MiB over %s here; the flip is on the lanes", ch.Transport)
			}
			armed.Store(5000)
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			bufs := [][]float32{make([]float32, n), make([]float32, n)}
			for r := range bufs {
				for i := range bufs[r] {
					bufs[r][i] = float32(r + 1)
				}
			}
			errs := onEveryRank(g.comms, func(r int, c *Communicator) error { return c.AllReduce(ctx, bufs[r], Sum, tc.opts...) })
			named := func(r int, err error) {
				t.Helper()
				t.Logf("rank %d: %v", r, err)
				if msg := err.Error(); !strings.Contains(msg, "from rank 0") || !strings.Contains(msg, "authentication") {
					t.Errorf("rank %d: the error does not name the link (rank 0 to rank 1) and the cause: %v", r, err)
				}
			}
			if errs[1] == nil || !errors.Is(errs[1], ErrProtocol) {
				t.Fatalf("rank 1, the receiver: %v; want ErrProtocol", errs[1])
			}
			named(1, errs[1])
			switch {
			case errs[0] != nil:
				named(0, errs[0])
			case tc.both:
				t.Fatal("rank 0 finished the ring's call; it needed rank 1's data after the flip")
			default:
				for i, v := range bufs[0] {
					if v != 3 {
						t.Fatalf("rank 0 returned nil with [%d] = %v", i, v)
					}
				}
				err := g.comms[0].AllReduce(ctx, bufs[0], Sum, tc.opts...)
				if err == nil {
					t.Fatal("rank 0's next call succeeded after its peer found the link tampered with")
				}
				named(0, err)
			}
		})
	}
}

// TestZeroAllocsTLS: an AllReduce of 1 MiB over TLS lanes allocates
// nothing once warm.
func TestZeroAllocsTLS(t *testing.T) {
	if race.Enabled {
		t.Skip("the race detector allocates on its own")
	}
	comms := pinnedGroup(t, 2, TransportTLS)
	expectNoAllocs(t, comms, 1<<18, 200)
}

// TestLanesUnreachable: where lanes cannot be made (here rank 1 advertises
// a lane address where nothing listens), TransportAuto goes on over QUIC
// alone on every rank.
func TestLanesUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	nowhere := ln.Addr().String()
	ln.Close()
	comms := pinnedGroupWith(t, 3, nil, func(r int, cfg *Config) {
		betweenHosts(Ring)(r, cfg)
		cfg.laneTimeout = time.Second
		if r == 1 {
			cfg.laneAdvertise = nowhere
		}
	})
	for r, c := range comms {
		if got := c.DataPath(); got != "QUIC" || c.LaneAddr() != "" {
			t.Fatalf("rank %d: %q, lanes at %q; want QUIC alone", r, got, c.LaneAddr())
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	errs := onEveryRank(comms, func(r int, c *Communicator) error {
		b := []float32{float32(r)}
		if err := c.AllReduce(ctx, b, Sum); err != nil {
			return err
		}
		if b[0] != 3 {
			return fmt.Errorf("got %v", b[0])
		}
		return nil
	})
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
}
