// Package netem is a UDP relay that injects delay, jitter, loss and
// partitions, for tests.
//
// A Relay listens on one UDP address and forwards every datagram it
// receives to a fixed target, from an upstream socket of its own per
// client address (as a UDP NAT does), so that the target's replies come
// back to the relay and are passed on to the right client. Point a peer at
// the relay's address instead of the target's and its traffic crosses an
// impaired network: what the Linux netem qdisc does, for machines whose
// kernel lacks it, and without root.
//
//	r, err := netem.NewRelay("127.0.0.1:0", serverAddr, netem.Config{Delay: 5 * time.Millisecond, Loss: 0.01})
//	if err != nil { ... }
//	defer r.Close()
//	dial(r.Addr()) // instead of serverAddr
//	r.Set(netem.Config{Drop: true}) // a partition, both directions
//
// Impairments apply to each direction separately: a Delay of 5 ms adds
// 10 ms to a round trip, and a Loss of 0.01 drops 1% of the datagrams in
// each direction. Without Jitter, datagrams of one client and direction
// leave in the order they arrived, even across a Set that shortens the
// delay; with Jitter each datagram's delay is drawn on its own, so they may
// be reordered. Loss and jitter draw from a generator seeded with
// Config.Seed.
//
// The relay holds at most MaxQueue datagrams in flight (and MaxQueueBytes)
// and serves at most MaxFlows client addresses; datagrams beyond either
// limit are dropped and counted in Stats.Overflow. A client's upstream
// socket lives until Close.
package netem

import (
	"container/heap"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"time"
)

// Limits of a relay.
const (
	MaxFlows      = 1024     // client addresses served at once
	MaxQueue      = 1 << 16  // datagrams held for delay at once
	MaxQueueBytes = 64 << 20 // bytes held for delay at once
	maxDatagram   = 1 << 16  // largest UDP payload, and the read buffer
	socketBuffer  = 4 << 20  // requested socket buffers, so bursts are not lost before the relay reads them
)

// Config is a set of impairments. The zero Config forwards everything at
// once.
type Config struct {
	// Delay holds every datagram this long before sending it on.
	Delay time.Duration
	// Jitter adds a delay drawn uniformly from [-Jitter, +Jitter] to Delay
	// for each datagram (never below zero). Datagrams may then be
	// reordered.
	Jitter time.Duration
	// Loss is the probability, 0 to 1, that a datagram is dropped.
	Loss float64
	// Drop drops every datagram in both directions: a partition.
	Drop bool
	// Seed seeds the generator that Loss and Jitter draw from. Runs with
	// the same seed and the same arrivals make the same choices.
	Seed int64
	// Tap, when set, sees every datagram as it arrives, before any
	// impairment: toTarget says its direction. It must not keep b.
	Tap func(toTarget bool, b []byte) `json:"-"`
}

// Validate reports what is wrong with c, if anything.
func (c Config) Validate() error {
	switch {
	case c.Delay < 0:
		return fmt.Errorf("netem: Delay %v is negative", c.Delay)
	case c.Jitter < 0:
		return fmt.Errorf("netem: Jitter %v is negative", c.Jitter)
	case math.IsNaN(c.Loss) || c.Loss < 0 || c.Loss > 1:
		return fmt.Errorf("netem: Loss %v is not a probability in [0, 1]", c.Loss)
	}
	return nil
}

// Stats counts datagrams, both directions together.
type Stats struct {
	Forwarded uint64 // sent on to the target or back to a client
	Dropped   uint64 // not sent: Loss, Drop, or Overflow
	Delayed   uint64 // held for Delay or Jitter before they were sent (or discarded by Close)
	Overflow  uint64 // of Dropped: over MaxQueue, MaxQueueBytes or MaxFlows, or the send failed
	Flows     int    // client addresses with an upstream socket
}

// direction of a datagram.
const (
	up   = 0 // client to target
	down = 1 // target to client
)

// flow is one client address and its upstream socket.
type flow struct {
	client   netip.AddrPort
	upstream *net.UDPConn
	last     [2]time.Time // due time of the latest datagram queued per direction (order without jitter)
	pending  [2]int       // datagrams queued per direction, so the direct path never overtakes them
}

// packet is a datagram waiting for its due time.
type packet struct {
	due  time.Time
	seq  uint64 // arrival order: ties leave in it
	dir  int
	flow *flow
	data []byte
}

// queue is a min-heap of packets by (due, seq).
type queue []*packet

func (q queue) Len() int { return len(q) }
func (q queue) Less(i, j int) bool {
	if !q[i].due.Equal(q[j].due) {
		return q[i].due.Before(q[j].due)
	}
	return q[i].seq < q[j].seq
}
func (q queue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *queue) Push(x any)   { *q = append(*q, x.(*packet)) }
func (q *queue) Pop() any {
	old := *q
	p := old[len(old)-1]
	old[len(old)-1] = nil
	*q = old[:len(old)-1]
	return p
}

// Relay forwards datagrams between clients and one target, impaired as its
// Config says. Its methods are safe for concurrent use.
type Relay struct {
	listen *net.UDPConn
	target *net.UDPAddr

	mu         sync.Mutex
	cfg        Config
	rng        *rand.Rand
	flows      map[netip.AddrPort]*flow
	q          queue
	queueBytes int
	seq        uint64
	stats      Stats
	closed     bool

	wake chan struct{} // the earliest due time changed
	done chan struct{} // closed by Close
	wg   sync.WaitGroup
}

// NewRelay listens on listen (host:port, e.g. "127.0.0.1:0") and forwards
// what arrives to target, impaired as cfg says.
func NewRelay(listen, target string, cfg Config) (*Relay, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	taddr, err := net.ResolveUDPAddr("udp", target)
	if err != nil {
		return nil, fmt.Errorf("netem: target %q: %w", target, err)
	}
	if taddr.Port == 0 || taddr.IP == nil || taddr.IP.IsUnspecified() {
		return nil, fmt.Errorf("netem: target %q: want a host and a port to send to", target)
	}
	laddr, err := net.ResolveUDPAddr("udp", listen)
	if err != nil {
		return nil, fmt.Errorf("netem: listen address %q: %w", listen, err)
	}
	l, err := net.ListenUDP("udp", laddr)
	if err != nil {
		return nil, fmt.Errorf("netem: %w", err)
	}
	growBuffers(l)
	r := &Relay{
		listen: l,
		target: taddr,
		cfg:    cfg,
		rng:    newRand(cfg.Seed),
		flows:  make(map[netip.AddrPort]*flow),
		wake:   make(chan struct{}, 1),
		done:   make(chan struct{}),
	}
	r.wg.Add(2)
	go r.readClients()
	go r.schedule()
	return r, nil
}

func newRand(seed int64) *rand.Rand {
	return rand.New(rand.NewPCG(uint64(seed), 0x6e6574656d)) // second word: any constant
}

// growBuffers asks for large socket buffers; the relay reads in one
// goroutine per socket, and a burst that overflows the kernel's buffer
// would be loss the test did not ask for. Best effort.
func growBuffers(c *net.UDPConn) {
	_ = c.SetReadBuffer(socketBuffer)
	_ = c.SetWriteBuffer(socketBuffer)
	forceBuffers(c, socketBuffer)
}

// Addr is the address clients send to.
func (r *Relay) Addr() string { return r.listen.LocalAddr().String() }

// Set changes the impairments from now on, in both directions. Datagrams
// already held keep the due times they were given, except that without
// Jitter none leaves before one that arrived earlier in its direction. A
// new Seed restarts the generator. Set panics if cfg is invalid (see
// Config.Validate): the values are the caller's, not the network's.
func (r *Relay) Set(cfg Config) {
	if err := cfg.Validate(); err != nil {
		panic(err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if cfg.Seed != r.cfg.Seed {
		r.rng = newRand(cfg.Seed)
	}
	r.cfg = cfg
}

// Stats returns the counts so far.
func (r *Relay) Stats() Stats {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.stats
	s.Flows = len(r.flows)
	return s
}

// Close stops forwarding, discards held datagrams, closes every socket and
// waits for the relay's goroutines. It is idempotent.
func (r *Relay) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		r.wg.Wait()
		return nil
	}
	r.closed = true
	close(r.done)
	errs := []error{r.listen.Close()}
	for _, f := range r.flows {
		errs = append(errs, f.upstream.Close())
	}
	r.q = nil
	r.queueBytes = 0
	r.mu.Unlock()
	r.wg.Wait()
	return errors.Join(errs...)
}

// readClients reads what clients send to the relay.
func (r *Relay) readClients() {
	defer r.wg.Done()
	buf := make([]byte, maxDatagram)
	for {
		n, from, err := r.listen.ReadFromUDPAddrPort(buf)
		if err != nil {
			if r.stopped() {
				return
			}
			continue // e.g. an ICMP error for an earlier send to a client
		}
		f := r.flowFor(from)
		if f == nil {
			continue
		}
		r.submit(up, f, buf[:n])
	}
}

// readTarget reads the target's replies to one client.
func (r *Relay) readTarget(f *flow) {
	defer r.wg.Done()
	buf := make([]byte, maxDatagram)
	for {
		n, err := f.upstream.Read(buf)
		if err != nil {
			if r.stopped() {
				return
			}
			continue // ECONNREFUSED: the target is not listening (yet, or any more)
		}
		r.submit(down, f, buf[:n])
	}
}

func (r *Relay) stopped() bool {
	select {
	case <-r.done:
		return true
	default:
		return false
	}
}

// flowFor returns the client's flow, making its upstream socket on first
// use; nil when the relay is closed or serves MaxFlows clients already.
func (r *Relay) flowFor(client netip.AddrPort) *flow {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil
	}
	if f := r.flows[client]; f != nil {
		return f
	}
	if len(r.flows) >= MaxFlows {
		r.stats.Dropped++
		r.stats.Overflow++
		return nil
	}
	c, err := net.DialUDP("udp", nil, r.target)
	if err != nil {
		r.stats.Dropped++
		r.stats.Overflow++
		return nil
	}
	growBuffers(c)
	f := &flow{client: client, upstream: c}
	r.flows[client] = f
	r.wg.Add(1)
	go r.readTarget(f)
	return f
}

// submit applies the impairments to one datagram: drops it, sends it now,
// or queues a copy for its due time.
func (r *Relay) submit(dir int, f *flow, data []byte) {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return
	}
	cfg := r.cfg
	if cfg.Tap != nil {
		cfg.Tap(dir == up, data)
	}
	if cfg.Drop || (cfg.Loss > 0 && r.rng.Float64() < cfg.Loss) {
		r.stats.Dropped++
		r.mu.Unlock()
		return
	}
	now := time.Now()
	delay := cfg.Delay
	if cfg.Jitter > 0 {
		delay += time.Duration(r.rng.Int64N(2*int64(cfg.Jitter)+1)) - cfg.Jitter
		delay = max(delay, 0)
	}
	due := now.Add(delay)
	if cfg.Jitter == 0 && due.Before(f.last[dir]) {
		due = f.last[dir] // never overtake an earlier datagram of this direction
	}
	if delay == 0 && f.pending[dir] == 0 && !due.After(now) {
		// Nothing of this direction is held: send from this goroutine,
		// the only reader of this direction, so order is kept.
		r.mu.Unlock()
		r.send(dir, f, data)
		return
	}
	if len(r.q) >= MaxQueue || r.queueBytes+len(data) > MaxQueueBytes {
		r.stats.Dropped++
		r.stats.Overflow++
		r.mu.Unlock()
		return
	}
	r.seq++
	p := &packet{due: due, seq: r.seq, dir: dir, flow: f, data: append([]byte(nil), data...)}
	heap.Push(&r.q, p)
	r.queueBytes += len(p.data)
	f.pending[dir]++
	f.last[dir] = due
	r.stats.Delayed++
	first := r.q[0] == p
	r.mu.Unlock()
	if first {
		select {
		case r.wake <- struct{}{}:
		default:
		}
	}
}

// send writes one datagram on and counts it.
func (r *Relay) send(dir int, f *flow, data []byte) {
	var err error
	if dir == up {
		_, err = f.upstream.Write(data)
	} else {
		_, err = r.listen.WriteToUDPAddrPort(data, f.client)
	}
	r.mu.Lock()
	if err != nil {
		r.stats.Dropped++
		r.stats.Overflow++
	} else {
		r.stats.Forwarded++
	}
	r.mu.Unlock()
}

// schedule sends held datagrams when they are due, in (due, arrival) order.
func (r *Relay) schedule() {
	defer r.wg.Done()
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	var batch []*packet
	for {
		r.mu.Lock()
		now := time.Now()
		batch = batch[:0]
		for len(r.q) > 0 && !r.q[0].due.After(now) {
			p := heap.Pop(&r.q).(*packet)
			r.queueBytes -= len(p.data)
			batch = append(batch, p)
		}
		wait := time.Duration(-1)
		if len(r.q) > 0 {
			wait = r.q[0].due.Sub(now)
		}
		r.mu.Unlock()
		for i, p := range batch {
			r.send(p.dir, p.flow, p.data)
			r.mu.Lock()
			p.flow.pending[p.dir]--
			r.mu.Unlock()
			batch[i] = nil
		}
		if len(batch) > 0 {
			continue // more may have come due while sending
		}
		if wait < 0 {
			select {
			case <-r.wake:
			case <-r.done:
				return
			}
			continue
		}
		timer.Reset(wait)
		select {
		case <-timer.C:
		case <-r.wake:
			timer.Stop()
		case <-r.done:
			return
		}
	}
}

// Partition cuts a set of endpoints (host:port strings) into sides that
// cannot reach each other, for transports that ask it before every send
// and receive (the relays above impair one path; a Partition decides
// between many endpoints at once, as a switch whose ports are unplugged).
// The zero Partition connects everything. It is safe for concurrent use.
type Partition struct {
	mu   sync.RWMutex
	side map[string]int
}

// Split puts each list of endpoints on a side of its own; endpoints named
// in no list reach every side. It replaces any earlier split.
func (p *Partition) Split(sides ...[]string) {
	m := make(map[string]int)
	for i, s := range sides {
		for _, a := range s {
			m[a] = i + 1
		}
	}
	p.mu.Lock()
	p.side = m
	p.mu.Unlock()
}

// Heal reconnects every endpoint.
func (p *Partition) Heal() { p.Split() }

// Connected reports whether a and b can reach each other.
func (p *Partition) Connected(a, b string) bool {
	p.mu.RLock()
	defer p.mu.RUnlock()
	sa, sb := p.side[a], p.side[b]
	return sa == 0 || sb == 0 || sa == sb
}
