package collective

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/ringo-ml/ringo/internal/pki"
	"github.com/ringo-ml/ringo/internal/wire"
	"github.com/ringo-ml/ringo/rendezvous"
)

// JoinConfig configures Join: how a worker finds its group.
type JoinConfig struct {
	// Group names the job; workers of other groups are ignored.
	Group string
	// World is the group's size. For an elastic group set Min and Max
	// instead (World = 0); the group forms with any size between them.
	World, Min, Max int
	// Join lists seed gossip addresses (host:port) of workers already
	// started; empty for the first worker.
	Join []string
	// Bind is this worker's gossip address (default 127.0.0.1:0). Without a
	// cluster key only loopback addresses are allowed.
	Bind string
	// DataBind is this worker's QUIC address (default: Bind's host, any
	// port).
	DataBind string
	// DataAdvertise is the QUIC address (host:port) the other workers
	// dial to reach this one, published in the view, when it differs from
	// the socket's own: behind NAT, a port forward, a Kubernetes Service
	// or node port, or a relay. Default: the address DataBind bound (with
	// the port the kernel chose). Traffic that arrives from another
	// address than the view says is fine: peers are identified by their
	// pinned certificates, not by their addresses. Without a cluster key
	// only loopback addresses are allowed.
	DataAdvertise string
	// Key is the cluster key (32 bytes). When nil, RINGO_CLUSTER_KEY is
	// read; with no key at all the group stays on loopback.
	Key []byte
	// Rank requests a rank; nil for any. Honoured when no other worker
	// requests the same one.
	Rank *int
	// Settle: in an elastic group, how long membership must stay unchanged
	// with at least Min workers before a view forms with fewer than Max
	// (default 1 s). It bounds how fast survivors re-form after a loss.
	Settle time.Duration
	// Comm tunes the communicator: ChunkBytes, Timeout, IdleTimeout,
	// CloseTimeout, Logger. Its View, TLS and Conn are set by Join.
	Comm Config
}

// suspectPingTimeout bounds the data-plane check of a gossip failure hint.
const suspectPingTimeout = time.Second

// membership ties a communicator to the rendezvous node it came from.
type membership struct {
	node    *rendezvous.Node
	cert    tls.Certificate
	conn    *net.UDPConn
	cfg     JoinConfig
	stop    chan struct{}
	wg      sync.WaitGroup
	closeMu sync.Once
}

// Join finds the group through gossip (HashiCorp serf), agrees with the
// other workers on a view (who is in, in which rank order, at which epoch)
// and returns this worker's communicator over QUIC. Each worker makes an
// ephemeral certificate and publishes its fingerprint in its gossip tags;
// peers accept only the certificate the agreed view holds for each rank, so
// the cluster key, which encrypts and authenticates the gossip, is the root
// of trust.
//
// A member that gossip reports failed is pinged over its QUIC link; if it
// does not answer within a second, every operation that needs it fails with
// ErrPeerLost naming it. Survivors then call Rejoin for the next epoch.
func Join(ctx context.Context, cfg JoinConfig) (*Communicator, error) {
	if cfg.Bind == "" {
		cfg.Bind = "127.0.0.1:0"
	}
	if cfg.Key == nil {
		k, err := rendezvous.KeyFromEnv()
		if err != nil {
			return nil, fmt.Errorf("collective: %w", err)
		}
		cfg.Key = k
	}
	host, _, err := net.SplitHostPort(cfg.Bind)
	if err != nil {
		return nil, fmt.Errorf("collective: %w: Bind %q: %v", ErrInvalid, cfg.Bind, err)
	}
	if cfg.DataBind == "" {
		cfg.DataBind = net.JoinHostPort(host, "0")
	}
	var suffix [6]byte
	_, _ = rand.Read(suffix[:])
	name := "w-" + hex.EncodeToString(suffix[:]) + ".ringo"
	cert, fp, err := pki.Ephemeral(name, 0)
	if err != nil {
		return nil, fmt.Errorf("collective: %w", err)
	}
	if cfg.Key == nil && !rendezvous.Loopback(cfg.DataBind) {
		return nil, fmt.Errorf("collective: no cluster key: refusing to serve data on %s; set RINGO_CLUSTER_KEY to the output of `head -c 32 /dev/urandom | base64` on every worker, or bind 127.0.0.1", cfg.DataBind)
	}
	if cfg.DataAdvertise != "" {
		if err := checkAdvertise(cfg.DataAdvertise); err != nil {
			return nil, err
		}
		if cfg.Key == nil && !rendezvous.Loopback(cfg.DataAdvertise) {
			return nil, fmt.Errorf("collective: no cluster key: refusing to advertise %s for data; set RINGO_CLUSTER_KEY to the output of `head -c 32 /dev/urandom | base64` on every worker, or stay on 127.0.0.1", cfg.DataAdvertise)
		}
	}
	addr, err := net.ResolveUDPAddr("udp", cfg.DataBind)
	if err != nil {
		return nil, fmt.Errorf("collective: %w: DataBind %q: %v", ErrInvalid, cfg.DataBind, err)
	}
	conn, err := net.ListenUDP("udp", addr)
	if err != nil {
		return nil, fmt.Errorf("collective: binding %s: %w", cfg.DataBind, err)
	}
	advertise := cfg.DataAdvertise
	if advertise == "" {
		la := conn.LocalAddr().(*net.UDPAddr)
		if la.IP.IsUnspecified() {
			conn.Close()
			return nil, fmt.Errorf("collective: %w: DataBind %q is a wildcard address, which peers cannot dial: set DataAdvertise to the address they reach this worker at", ErrInvalid, cfg.DataBind)
		}
		advertise = la.String()
	}
	rank := -1
	if cfg.Rank != nil {
		rank = *cfg.Rank
	}
	node, err := rendezvous.Start(ctx, rendezvous.Config{
		Group: cfg.Group, World: cfg.World, Min: cfg.Min, Max: cfg.Max,
		Bind: cfg.Bind, Join: cfg.Join, Key: cfg.Key, Rank: rank, Name: name,
		Meta:   rendezvous.Meta{Addr: advertise, CertSHA256: fp[:]},
		Settle: cfg.Settle, Logger: cfg.Comm.Logger,
	})
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("collective: %w", err)
	}
	m := &membership{node: node, cert: cert, conn: conn, cfg: cfg}
	c, err := m.form(ctx)
	if err != nil {
		node.Close()
		conn.Close()
		return nil, err
	}
	return c, nil
}

// checkAdvertise checks that addr is host:port with a host and a port a
// peer can dial.
func checkAdvertise(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("collective: %w: DataAdvertise %q: %v", ErrInvalid, addr, err)
	}
	if host == "" {
		return fmt.Errorf("collective: %w: DataAdvertise %q has no host", ErrInvalid, addr)
	}
	if len(addr) > rendezvous.MaxAddrLen {
		return fmt.Errorf("collective: %w: DataAdvertise %q is longer than %d bytes", ErrInvalid, addr, rendezvous.MaxAddrLen)
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		return fmt.Errorf("collective: %w: DataAdvertise %q is a wildcard address, which peers cannot dial", ErrInvalid, addr)
	}
	if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
		return fmt.Errorf("collective: %w: DataAdvertise %q: want a port in 1..65535", ErrInvalid, addr)
	}
	return nil
}

// form agrees on the next view and builds its communicator.
func (m *membership) form(ctx context.Context) (*Communicator, error) {
	v, err := m.agree(ctx)
	if err != nil {
		return nil, err
	}
	return m.build(ctx, v)
}

// agree waits for the group's next view.
func (m *membership) agree(ctx context.Context) (rendezvous.View, error) {
	v, err := m.node.Agree(ctx)
	if err != nil {
		return v, fmt.Errorf("collective: agreeing on a view: %w", err)
	}
	return v, nil
}

// build makes this worker's communicator for view v.
func (m *membership) build(ctx context.Context, v rendezvous.View) (*Communicator, error) {
	rank := v.Rank(m.node.Name())
	if rank < 0 {
		return nil, fmt.Errorf("collective: the agreed view (epoch %d) does not include this worker", v.Epoch)
	}
	members := make([]Member, len(v.Members))
	for i, mm := range v.Members {
		members[i] = Member{Addr: mm.Addr, Name: mm.Name, CertSHA256: mm.CertSHA256}
	}
	cfg := m.cfg.Comm
	cfg.View = View{Group: v.Group, Epoch: v.Epoch, Rank: rank, Members: members}
	cfg.TLS = &tls.Config{Certificates: []tls.Certificate{m.cert}, MinVersion: tls.VersionTLS13}
	cfg.Conn = m.conn
	cfg.keepConn = true
	c, err := New(ctx, cfg)
	if err != nil {
		return nil, err
	}
	c.member = m
	m.stop = make(chan struct{})
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		m.watch(c)
	}()
	return c, nil
}

// watch turns gossip failure reports into checked peer losses.
func (m *membership) watch(c *Communicator) {
	for {
		select {
		case <-m.stop:
			return
		case ev, ok := <-m.node.Events():
			if !ok {
				return
			}
			if ev.Rank < 0 || (ev.Kind != rendezvous.MemberFailed && ev.Kind != rendezvous.MemberLeft) {
				continue
			}
			c.suspect(ev.Rank, fmt.Sprintf("gossip reports %s %s", ev.Member.Name, ev.Kind))
		}
	}
}

// suspect checks a failure hint about rank on the data plane. Only the
// rank's ring neighbours check; the others learn from their aborts.
func (c *Communicator) suspect(rank int, why string) {
	l := c.linkTo(rank)
	if l == nil || rank == c.rank {
		return
	}
	if next, prev := (c.rank+1)%c.world, (c.rank+c.world-1)%c.world; rank != next && rank != prev {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), suspectPingTimeout)
	err := l.Ping(ctx)
	cancel()
	if err == nil {
		c.log.Warn("collective: a failure hint was not confirmed: the peer answers pings", "peer", rank, "hint", why)
		return
	}
	msg := fmt.Sprintf("rank %d lost rank %d: %s, and it does not answer on its link (%v)", c.rank, rank, why, err)
	c.poison(fmt.Errorf("%w: %s", ErrPeerLost, msg), wire.CodePeerLost, msg)
}

// Rejoin forms the group's next view (epoch+1) after a failure, with the
// surviving workers and any that joined, and returns its communicator.
// The old communicator is closed. Only communicators made by Join can
// rejoin.
//
// The old communicator stays open until the next view is agreed, and only
// then closes: every member of the new view is in Rejoin by then, so its
// operation on the old communicator has already ended with the cause its
// peers' aborts gave (the lost rank), not with this rank's departure.
func (c *Communicator) Rejoin(ctx context.Context) (*Communicator, error) {
	c.mu.Lock()
	m := c.member
	c.mu.Unlock()
	if m == nil {
		return nil, fmt.Errorf("collective: %w: Rejoin needs a communicator made by Join", ErrInvalid)
	}
	c.detach()
	v, err := m.agree(ctx)
	// Close before build: the next communicator reuses the socket.
	_ = c.Close()
	if err != nil { // nothing holds the membership any more: end it
		_ = m.leave()
		return nil, err
	}
	next, err := m.build(ctx, v)
	if err != nil {
		_ = m.leave()
		return nil, err
	}
	return next, nil
}

// Epoch is the epoch of the communicator's view (View.Epoch): for one
// made by Join, 1 for the group's first view and one more for each
// Rejoin.
func (c *Communicator) Epoch() uint64 { return c.epoch }

// Waiting returns how many workers of the group gossip shows alive that
// are not in the last agreed view: a restarted or added worker waiting in
// Join for the next epoch. It is a local snapshot, not agreed: to let them
// in, the ranks decide together (for example on the Max of it over an
// AllReduce, so that every rank makes the same choice) and every rank
// calls Rejoin. In an elastic group the next view takes them up to Max;
// in a group of fixed size only as replacements. It is 0 for a
// communicator not made by Join, or closed.
func (c *Communicator) Waiting() int {
	c.mu.Lock()
	m := c.member
	c.mu.Unlock()
	if m == nil {
		return 0
	}
	v := m.node.View()
	in := make(map[string]bool, len(v.Members))
	for _, mm := range v.Members {
		in[mm.Name] = true
	}
	n := 0
	for _, mm := range m.node.Members() {
		if !in[mm.Name] {
			n++
		}
	}
	return n
}

// detach stops the watcher; the node and the socket stay for the next view.
func (c *Communicator) detach() {
	c.mu.Lock()
	m := c.member
	c.member = nil
	c.mu.Unlock()
	if m == nil {
		return
	}
	close(m.stop)
	m.wg.Wait()
}

// leave ends the membership: called by Close of the last communicator.
func (m *membership) leave() error {
	var err error
	m.closeMu.Do(func() {
		err = errors.Join(m.node.Close(), m.conn.Close())
	})
	return err
}
