package collective

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
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
	// Key is the cluster key (32 bytes). When nil, RINGO_CLUSTER_KEY is
	// read; with no key at all the group stays on loopback.
	Key []byte
	// Rank requests a rank; nil for any. Honoured when no other worker
	// requests the same one.
	Rank *int
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
	if cfg.Key == nil && !loopback(cfg.DataBind) {
		return nil, fmt.Errorf("collective: no cluster key: refusing to serve data on %s; set RINGO_CLUSTER_KEY to the output of `head -c 32 /dev/urandom | base64` on every worker, or bind 127.0.0.1", cfg.DataBind)
	}
	addr, err := net.ResolveUDPAddr("udp", cfg.DataBind)
	if err != nil {
		return nil, fmt.Errorf("collective: %w: DataBind %q: %v", ErrInvalid, cfg.DataBind, err)
	}
	conn, err := net.ListenUDP("udp", addr)
	if err != nil {
		return nil, fmt.Errorf("collective: binding %s: %w", cfg.DataBind, err)
	}
	rank := -1
	if cfg.Rank != nil {
		rank = *cfg.Rank
	}
	node, err := rendezvous.Start(ctx, rendezvous.Config{
		Group: cfg.Group, World: cfg.World, Min: cfg.Min, Max: cfg.Max,
		Bind: cfg.Bind, Join: cfg.Join, Key: cfg.Key, Rank: rank, Name: name,
		Meta:   rendezvous.Meta{Addr: conn.LocalAddr().String(), CertSHA256: fp[:]},
		Logger: cfg.Comm.Logger,
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

func loopback(hostport string) bool {
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// form agrees on the next view and builds its communicator.
func (m *membership) form(ctx context.Context) (*Communicator, error) {
	v, err := m.node.Agree(ctx)
	if err != nil {
		return nil, fmt.Errorf("collective: agreeing on a view: %w", err)
	}
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
func (c *Communicator) Rejoin(ctx context.Context) (*Communicator, error) {
	m := c.member
	if m == nil {
		return nil, fmt.Errorf("collective: %w: Rejoin needs a communicator made by Join", ErrInvalid)
	}
	c.detach()
	_ = c.Close()
	next, err := m.form(ctx)
	if err != nil { // nothing holds the membership any more: end it
		_ = m.leave()
		return nil, err
	}
	return next, nil
}

// detach stops the watcher; the node and the socket stay for the next view.
func (c *Communicator) detach() {
	m := c.member
	if m == nil {
		return
	}
	c.member = nil
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
