// Package member ties a worker to the gossip membership (package
// rendezvous) that its communicators are formed from: an ephemeral
// certificate whose fingerprint the worker publishes in its gossip tags,
// the UDP socket its QUIC links use from epoch to epoch, and the node
// that agrees on views and reports failures.
package member

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/ringo-ml/ringo/internal/engine"
	"github.com/ringo-ml/ringo/internal/pki"
	"github.com/ringo-ml/ringo/internal/transport"
	"github.com/ringo-ml/ringo/rendezvous"
)

// Config is what collective.JoinConfig says of the membership.
type Config struct {
	Group           string
	World, Min, Max int
	Join            []string
	Bind            string // the gossip address; host:port
	DataBind        string // the QUIC socket's address; default Bind's host, any port
	DataAdvertise   string // the QUIC address peers dial, when not DataBind's
	Key             []byte // the cluster key; nil: loopback only
	Rank            int    // the rank asked for; -1 for any
	Settle          time.Duration
	AllowSplit      bool
	Logger          *slog.Logger
}

// ErrNoQuorum is rendezvous.ErrNoQuorum.
var ErrNoQuorum = rendezvous.ErrNoQuorum

// Member is one worker's membership.
type Member struct {
	node  *rendezvous.Node
	cert  tls.Certificate
	conn  *net.UDPConn
	leave sync.Once
}

// Start checks cfg, makes the worker's certificate and QUIC socket and
// starts its gossip node.
func Start(ctx context.Context, cfg Config) (*Member, error) {
	if cfg.Key == nil {
		k, err := rendezvous.KeyFromEnv()
		if err != nil {
			return nil, err
		}
		cfg.Key = k
	}
	host, _, err := net.SplitHostPort(cfg.Bind)
	if err != nil {
		return nil, fmt.Errorf("%w: Bind %q: %v", engine.ErrInvalid, cfg.Bind, err)
	}
	if cfg.DataBind == "" {
		cfg.DataBind = net.JoinHostPort(host, "0")
	}
	if err := checkKey(cfg); err != nil {
		return nil, err
	}
	var suffix [6]byte
	_, _ = rand.Read(suffix[:])
	name := "w-" + hex.EncodeToString(suffix[:]) + ".ringo"
	cert, fp, err := pki.Ephemeral(name, 0)
	if err != nil {
		return nil, err
	}
	conn, advertise, err := bind(cfg)
	if err != nil {
		return nil, err
	}
	node, err := rendezvous.Start(ctx, rendezvous.Config{
		Group: cfg.Group, World: cfg.World, Min: cfg.Min, Max: cfg.Max,
		Bind: cfg.Bind, Join: cfg.Join, Key: cfg.Key, Rank: cfg.Rank, Name: name,
		Meta:   rendezvous.Meta{Addr: advertise, CertSHA256: fp[:]},
		Settle: cfg.Settle, AllowSplit: cfg.AllowSplit, Logger: cfg.Logger,
	})
	if err != nil {
		conn.Close()
		return nil, err
	}
	return &Member{node: node, cert: cert, conn: conn}, nil
}

// checkKey refuses to serve data off loopback without a cluster key, and
// checks DataAdvertise.
func checkKey(cfg Config) error {
	const how = "set RINGO_CLUSTER_KEY to the output of `head -c 32 /dev/urandom | base64` on every worker"
	if cfg.Key == nil && !rendezvous.Loopback(cfg.DataBind) {
		return fmt.Errorf("no cluster key: refusing to serve data on %s; %s, or bind 127.0.0.1", cfg.DataBind, how)
	}
	if cfg.DataAdvertise == "" {
		return nil
	}
	if err := checkAdvertise(cfg.DataAdvertise); err != nil {
		return err
	}
	if cfg.Key == nil && !rendezvous.Loopback(cfg.DataAdvertise) {
		return fmt.Errorf("no cluster key: refusing to advertise %s for data; %s, or stay on 127.0.0.1", cfg.DataAdvertise, how)
	}
	return nil
}

// bind binds the QUIC socket and returns it with the address peers dial.
func bind(cfg Config) (*net.UDPConn, string, error) {
	if _, err := net.ResolveUDPAddr("udp", cfg.DataBind); err != nil {
		return nil, "", fmt.Errorf("%w: DataBind %q: %v", engine.ErrInvalid, cfg.DataBind, err)
	}
	conn, err := transport.ListenUDP(cfg.DataBind)
	if err != nil {
		return nil, "", err
	}
	if cfg.DataAdvertise != "" {
		return conn, cfg.DataAdvertise, nil
	}
	la := conn.LocalAddr().(*net.UDPAddr)
	if la.IP.IsUnspecified() {
		conn.Close()
		return nil, "", fmt.Errorf("%w: DataBind %q is a wildcard address, which peers cannot dial: set DataAdvertise to the address they reach this worker at", engine.ErrInvalid, cfg.DataBind)
	}
	return conn, la.String(), nil
}

// checkAdvertise checks that addr is host:port with a host and a port a
// peer can dial.
func checkAdvertise(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	switch {
	case err != nil:
		return fmt.Errorf("%w: DataAdvertise %q: %v", engine.ErrInvalid, addr, err)
	case host == "":
		return fmt.Errorf("%w: DataAdvertise %q has no host", engine.ErrInvalid, addr)
	case len(addr) > rendezvous.MaxAddrLen:
		return fmt.Errorf("%w: DataAdvertise %q is longer than %d bytes", engine.ErrInvalid, addr, rendezvous.MaxAddrLen)
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		return fmt.Errorf("%w: DataAdvertise %q is a wildcard address, which peers cannot dial", engine.ErrInvalid, addr)
	}
	if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
		return fmt.Errorf("%w: DataAdvertise %q: want a port in 1..65535", engine.ErrInvalid, addr)
	}
	return nil
}

// View is an agreed view as a communicator needs it.
type View struct {
	Group   string
	Epoch   uint64
	Rank    int // this worker's
	Members []Peer
}

// Peer is a member of a view: where to reach it and how to check it.
type Peer struct {
	Addr, Name string
	CertSHA256 []byte
}

// Agree waits for the group's next view.
func (m *Member) Agree(ctx context.Context) (View, error) {
	v, err := m.node.Agree(ctx)
	if err != nil {
		return View{}, fmt.Errorf("agreeing on a view: %w", err)
	}
	rank := v.Rank(m.node.Name())
	if rank < 0 {
		return View{}, fmt.Errorf("the agreed view (epoch %d) does not include this worker", v.Epoch)
	}
	out := View{Group: v.Group, Epoch: v.Epoch, Rank: rank, Members: make([]Peer, len(v.Members))}
	for i, mm := range v.Members {
		out.Members[i] = Peer{Addr: mm.Addr, Name: mm.Name, CertSHA256: mm.CertSHA256}
	}
	return out, nil
}

// TLS is this worker's TLS configuration: its ephemeral certificate.
func (m *Member) TLS() *tls.Config {
	return &tls.Config{Certificates: []tls.Certificate{m.cert}, MinVersion: tls.VersionTLS13}
}

// Conn is the worker's QUIC socket, for every epoch's communicator.
func (m *Member) Conn() *net.UDPConn { return m.conn }

// Watch calls suspect for every member of the view that gossip reports
// failed or gone, until stop is closed or the node ends.
func (m *Member) Watch(stop <-chan struct{}, suspect func(rank int, why string)) {
	for {
		select {
		case <-stop:
			return
		case ev, ok := <-m.node.Events():
			if !ok {
				return
			}
			if ev.Rank < 0 || (ev.Kind != rendezvous.MemberFailed && ev.Kind != rendezvous.MemberLeft) {
				continue
			}
			suspect(ev.Rank, fmt.Sprintf("gossip reports %s %s", ev.Member.Name, ev.Kind))
		}
	}
}

// Waiting is how many workers gossip shows alive that are not in the
// last agreed view.
func (m *Member) Waiting() int {
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

// Leave ends the membership: the node and the socket. Idempotent.
func (m *Member) Leave() error {
	var err error
	m.leave.Do(func() {
		err = errors.Join(m.node.Close(), m.conn.Close())
	})
	return err
}
