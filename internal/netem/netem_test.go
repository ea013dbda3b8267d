package netem

import (
	"encoding/binary"
	"math"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// peer is a UDP socket on loopback that records what it receives and,
// when echo is set, sends every datagram back to where it came from.
type peer struct {
	conn *net.UDPConn
	got  chan recv
	wg   sync.WaitGroup

	mu      sync.Mutex
	sources map[string]bool
}

type recv struct {
	seq uint32
	at  time.Time
}

func newPeer(t *testing.T, echo bool) *peer {
	t.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadBuffer(socketBuffer)
	forceBuffers(c, socketBuffer)
	p := &peer{conn: c, got: make(chan recv, 1<<14), sources: map[string]bool{}}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		buf := make([]byte, maxDatagram)
		for {
			n, from, err := c.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			p.mu.Lock()
			p.sources[from.String()] = true
			p.mu.Unlock()
			if echo {
				_, _ = c.WriteToUDPAddrPort(buf[:n], from)
			}
			if n >= 4 {
				p.got <- recv{seq: binary.BigEndian.Uint32(buf), at: time.Now()}
			}
		}
	}()
	t.Cleanup(func() { c.Close(); p.wg.Wait() })
	return p
}

func (p *peer) addr() string { return p.conn.LocalAddr().String() }

func (p *peer) sourceCount() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.sources)
}

// sendSeq sends datagrams numbered from..to-1 to addr, padded to size bytes.
func (p *peer) sendSeq(t *testing.T, addr string, from, to uint32, size int) {
	t.Helper()
	ua, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, max(size, 4))
	for i := from; i < to; i++ {
		binary.BigEndian.PutUint32(buf, i)
		if _, err := p.conn.WriteToUDP(buf, ua); err != nil {
			t.Fatal(err)
		}
	}
}

// collect reads n datagrams from p, failing after a generous timeout.
func (p *peer) collect(t *testing.T, n int) []recv {
	t.Helper()
	out := make([]recv, 0, n)
	timeout := time.NewTimer(30 * time.Second)
	defer timeout.Stop()
	for len(out) < n {
		select {
		case r := <-p.got:
			out = append(out, r)
		case <-timeout.C:
			t.Fatalf("received %d of %d datagrams", len(out), n)
		}
	}
	return out
}

func newRelay(t *testing.T, target string, cfg Config) *Relay {
	t.Helper()
	r, err := NewRelay("127.0.0.1:0", target, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := r.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return r
}

// waitStats polls the relay's counters until cond holds (the relay works
// in its own goroutines; there is nothing else to wait on).
func waitStats(t *testing.T, r *Relay, what string, cond func(Stats) bool) Stats {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		s := r.Stats()
		if cond(s) {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s: %+v", what, s)
		}
		time.Sleep(time.Millisecond)
	}
}

func seqs(rs []recv) []uint32 {
	out := make([]uint32, len(rs))
	for i, r := range rs {
		out[i] = r.seq
	}
	return out
}

func inOrder(t *testing.T, got []uint32, n int) {
	t.Helper()
	if len(got) != n {
		t.Fatalf("%d datagrams, want %d", len(got), n)
	}
	for i, s := range got {
		if s != uint32(i) {
			t.Fatalf("datagram %d is number %d: order not kept (%v...)", i, s, got[:min(len(got), i+5)])
		}
	}
}

// TestForward: with no impairment every datagram reaches the target and
// every reply comes back to its client, in order.
func TestForward(t *testing.T) {
	server := newPeer(t, true)
	client := newPeer(t, false)
	r := newRelay(t, server.addr(), Config{})
	client.sendSeq(t, r.Addr(), 0, 200, 1200)
	inOrder(t, seqs(client.collect(t, 200)), 200)
	s := waitStats(t, r, "400 forwarded", func(s Stats) bool { return s.Forwarded == 400 })
	if s.Dropped != 0 || s.Delayed != 0 || s.Flows != 1 {
		t.Fatalf("stats %+v", s)
	}
}

// TestDelay: datagrams are held for Delay, and order is kept even when Set
// shortens the delay while datagrams are held.
func TestDelay(t *testing.T) {
	const delay = 40 * time.Millisecond
	server := newPeer(t, true)
	client := newPeer(t, false)
	r := newRelay(t, server.addr(), Config{Delay: delay})
	t0 := time.Now()
	client.sendSeq(t, r.Addr(), 0, 150, 100)
	waitStats(t, r, "150 held", func(s Stats) bool { return s.Delayed == 150 })
	r.Set(Config{}) // the rest would overtake the first 150 if order were not kept
	client.sendSeq(t, r.Addr(), 150, 300, 100)
	got := client.collect(t, 300)
	inOrder(t, seqs(got), 300)
	if rtt := got[0].at.Sub(t0); rtt < delay {
		t.Errorf("first reply after %v, want at least %v (held on the way there)", rtt, delay)
	}
	s := waitStats(t, r, "600 forwarded", func(s Stats) bool { return s.Forwarded == 600 })
	if s.Delayed < 150 || s.Dropped != 0 {
		t.Fatalf("stats %+v", s)
	}
}

// TestJitter: with jitter every datagram still arrives, each no earlier
// than Delay-Jitter per direction, and datagrams sent back to back come
// out reordered.
func TestJitter(t *testing.T) {
	const delay, jitter = 20 * time.Millisecond, 15 * time.Millisecond
	server := newPeer(t, true)
	client := newPeer(t, false)
	r := newRelay(t, server.addr(), Config{Delay: delay, Jitter: jitter, Seed: 7})
	t0 := time.Now()
	client.sendSeq(t, r.Addr(), 0, 300, 64)
	got := client.collect(t, 300)
	seen := map[uint32]bool{}
	reordered := 0
	for i, g := range got {
		seen[g.seq] = true
		if i > 0 && g.seq < got[i-1].seq {
			reordered++
		}
	}
	if len(seen) != 300 {
		t.Fatalf("%d distinct datagrams of 300", len(seen))
	}
	if d := got[0].at.Sub(t0); d < 2*(delay-jitter) {
		t.Errorf("first reply after %v, want at least %v", d, 2*(delay-jitter))
	}
	if reordered == 0 {
		t.Error("300 datagrams with 15 ms of jitter all arrived in order")
	}
}

// TestLoss: Loss drops about that fraction, the same datagrams for the
// same seed, and Loss 1 drops everything.
func TestLoss(t *testing.T) {
	run := func(seed int64) map[uint32]bool {
		sink := newPeer(t, false)
		client := newPeer(t, false)
		r := newRelay(t, sink.addr(), Config{Loss: 0.3, Seed: seed})
		client.sendSeq(t, r.Addr(), 0, 2000, 32)
		s := waitStats(t, r, "2000 decisions", func(s Stats) bool { return s.Forwarded+s.Dropped == 2000 })
		if s.Dropped < 500 || s.Dropped > 700 {
			t.Errorf("Loss 0.3 dropped %d of 2000", s.Dropped)
		}
		got := map[uint32]bool{}
		for _, g := range sink.collect(t, int(s.Forwarded)) {
			got[g.seq] = true
		}
		return got
	}
	a, b := run(42), run(42)
	if len(a) != len(b) {
		t.Fatalf("same seed, %d and %d delivered", len(a), len(b))
	}
	for s := range a {
		if !b[s] {
			t.Fatalf("same seed, datagram %d delivered once of twice", s)
		}
	}

	sink := newPeer(t, false)
	client := newPeer(t, false)
	r := newRelay(t, sink.addr(), Config{Loss: 1})
	client.sendSeq(t, r.Addr(), 0, 50, 32)
	s := waitStats(t, r, "50 dropped", func(s Stats) bool { return s.Dropped == 50 })
	if s.Forwarded != 0 || s.Overflow != 0 {
		t.Fatalf("Loss 1: %+v", s)
	}
}

// TestPartition: Drop cuts both directions; clearing it heals.
func TestPartition(t *testing.T) {
	server := newPeer(t, true)
	client := newPeer(t, false)
	r := newRelay(t, server.addr(), Config{})
	client.sendSeq(t, r.Addr(), 0, 1, 16)
	client.collect(t, 1)

	r.Set(Config{Drop: true})
	client.sendSeq(t, r.Addr(), 1, 21, 16)
	s := waitStats(t, r, "20 dropped", func(s Stats) bool { return s.Dropped == 20 })
	if s.Forwarded != 2 {
		t.Fatalf("partitioned: %+v", s)
	}
	// The other direction: the server answers a client it knows.
	if _, err := server.conn.WriteToUDPAddrPort([]byte{0, 0, 0, 99}, mustAddrPort(t, r, client)); err != nil {
		t.Fatal(err)
	}
	waitStats(t, r, "the reply dropped", func(s Stats) bool { return s.Dropped == 21 })

	r.Set(Config{})
	client.sendSeq(t, r.Addr(), 100, 101, 16)
	if g := client.collect(t, 1); g[0].seq != 100 {
		t.Fatalf("after healing got datagram %d", g[0].seq)
	}
}

// mustAddrPort is the relay's upstream address for client (what the
// server sees).
func mustAddrPort(t *testing.T, r *Relay, client *peer) netip.AddrPort {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	for c, f := range r.flows {
		if c.String() == client.addr() {
			return f.upstream.LocalAddr().(*net.UDPAddr).AddrPort()
		}
	}
	t.Fatal("no flow for the client")
	return netip.AddrPort{}
}

// TestClients: each client gets its own upstream socket and only its own
// replies, as behind a NAT.
func TestClients(t *testing.T) {
	server := newPeer(t, true)
	a, b := newPeer(t, false), newPeer(t, false)
	r := newRelay(t, server.addr(), Config{Delay: time.Millisecond})
	a.sendSeq(t, r.Addr(), 0, 50, 8)
	b.sendSeq(t, r.Addr(), 1000, 1050, 8)
	for _, c := range []struct {
		p    *peer
		base uint32
	}{{a, 0}, {b, 1000}} {
		for i, g := range c.p.collect(t, 50) {
			if g.seq != c.base+uint32(i) {
				t.Fatalf("client %d got datagram %d at %d", c.base, g.seq, i)
			}
		}
	}
	if s := r.Stats(); s.Flows != 2 || server.sourceCount() != 2 {
		t.Fatalf("flows %d, server saw %d sources", s.Flows, server.sourceCount())
	}
}

// TestClose: Close returns at once with datagrams still held, stops every
// goroutine (goleak checks) and is idempotent.
func TestClose(t *testing.T) {
	server := newPeer(t, true)
	client := newPeer(t, false)
	r, err := NewRelay("127.0.0.1:0", server.addr(), Config{Delay: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	client.sendSeq(t, r.Addr(), 0, 10, 8)
	waitStats(t, r, "10 held", func(s Stats) bool { return s.Delayed == 10 })
	t0 := time.Now()
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(t0); d > 10*time.Second {
		t.Errorf("Close took %v", d)
	}
	if err := r.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if s := r.Stats(); s.Forwarded != 0 {
		t.Fatalf("forwarded after Close: %+v", s)
	}
}

func TestInvalid(t *testing.T) {
	for _, tc := range []struct {
		listen, target string
		cfg            Config
		want           string
	}{
		{"127.0.0.1:0", "127.0.0.1:9", Config{Delay: -1}, "Delay"},
		{"127.0.0.1:0", "127.0.0.1:9", Config{Jitter: -time.Second}, "Jitter"},
		{"127.0.0.1:0", "127.0.0.1:9", Config{Loss: 1.5}, "Loss"},
		{"127.0.0.1:0", "127.0.0.1:9", Config{Loss: math.NaN()}, "Loss"},
		{"127.0.0.1:0", "nonsense", Config{}, "target"},
		{"127.0.0.1:0", "127.0.0.1:0", Config{}, "target"},
		{"127.0.0.1:0", "0.0.0.0:53", Config{}, "target"},
		{"nonsense", "127.0.0.1:9", Config{}, "listen"},
	} {
		r, err := NewRelay(tc.listen, tc.target, tc.cfg)
		if err == nil {
			r.Close()
			t.Errorf("NewRelay(%q, %q, %+v) succeeded", tc.listen, tc.target, tc.cfg)
		} else if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("NewRelay(%q, %q, %+v): %v, want it to name %s", tc.listen, tc.target, tc.cfg, err, tc.want)
		}
	}
	r := newRelay(t, "127.0.0.1:9", Config{})
	defer func() {
		if v := recover(); v == nil || !strings.Contains(v.(error).Error(), "Loss") {
			t.Errorf("Set with Loss -1: recovered %v", v)
		}
	}()
	r.Set(Config{Loss: -1})
}

func TestPartitionSides(t *testing.T) {
	var p Partition
	if !p.Connected("a:1", "b:1") {
		t.Fatal("the zero Partition cuts")
	}
	p.Split([]string{"a:1", "b:1"}, []string{"c:1"})
	for _, c := range []struct {
		a, b string
		want bool
	}{{"a:1", "b:1", true}, {"a:1", "c:1", false}, {"c:1", "b:1", false}, {"c:1", "c:1", true}, {"d:1", "c:1", true}, {"a:1", "d:1", true}} {
		if got := p.Connected(c.a, c.b); got != c.want {
			t.Errorf("Connected(%s, %s) = %v", c.a, c.b, got)
		}
	}
	p.Heal()
	if !p.Connected("a:1", "c:1") {
		t.Error("Heal left a cut")
	}
}
