// Package launch starts local groups of ranks for tests, examples and the
// benchmark: N QUIC communicators on loopback in one process, with an
// ephemeral CA, or N in-process ones.
package launch

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"

	"github.com/ringo-ml/ringo/collective"
	"github.com/ringo-ml/ringo/internal/pki"
)

// Group is a set of local communicators and what they need to be cleaned up.
type Group struct {
	Comms []*collective.Communicator
	ca    *pki.CA
	conns []*net.UDPConn
}

// Close closes every communicator (concurrently, as separate processes
// would) and removes the CA's files.
func (g *Group) Close() error {
	var wg sync.WaitGroup
	for _, c := range g.Comms {
		if c != nil {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_ = c.Close()
			}()
		}
	}
	wg.Wait()
	if g.ca != nil {
		return g.ca.Close()
	}
	return nil
}

// QUIC starts world ranks over QUIC on 127.0.0.1 with mutual TLS from a
// fresh CA. cfg supplies the group name and tuning; its View.Members, Rank,
// TLS and Conn are filled in per rank.
func QUIC(ctx context.Context, world int, cfg collective.Config) (*Group, error) {
	if world < 1 {
		return nil, fmt.Errorf("launch: world size %d", world)
	}
	if cfg.View.Group == "" {
		cfg.View.Group = "local"
	}
	ca, err := pki.New(cfg.View.Group, 0)
	if err != nil {
		return nil, err
	}
	conns := make([]*net.UDPConn, world)
	g := &Group{ca: ca, Comms: make([]*collective.Communicator, world), conns: conns}
	members := make([]collective.Member, world)
	for r := range world {
		conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			closeConns(conns)
			ca.Close()
			return nil, fmt.Errorf("launch: %w", err)
		}
		conns[r] = conn
		members[r] = collective.Member{Addr: conn.LocalAddr().String(), Name: pki.RankName(r)}
	}
	errs := make([]error, world)
	var wg sync.WaitGroup
	for r := range world {
		tc, err := ca.TLSConfig(pki.RankName(r))
		if err != nil {
			closeConns(conns)
			ca.Close()
			return nil, err
		}
		rc := cfg
		rc.View.Members, rc.View.Rank, rc.TLS, rc.Conn = members, r, tc, conns[r]
		wg.Add(1)
		go func() {
			defer wg.Done()
			g.Comms[r], errs[r] = collective.New(ctx, rc)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		g.Close()
		return nil, err
	}
	return g, nil
}

// InProc starts world goroutine ranks joined by in-memory pipes.
func InProc(ctx context.Context, world int, cfg collective.Config) (*Group, error) {
	comms, err := collective.NewInProc(ctx, world, cfg)
	if err != nil {
		return nil, err
	}
	return &Group{Comms: comms}, nil
}

func closeConns(conns []*net.UDPConn) {
	for _, c := range conns {
		if c != nil {
			c.Close()
		}
	}
}

// Kill makes rank r vanish as if its process died: its UDP socket closes
// at once, so it sends nothing more, not even a goodbye. Its communicator
// is closed later by Close. For failure tests.
func (g *Group) Kill(r int) {
	if g.conns != nil && g.conns[r] != nil {
		g.conns[r].Close()
	}
}

// OnEveryRank runs f on every rank concurrently, as the ranks of separate
// processes would run, and returns the errors by rank.
func OnEveryRank(comms []*collective.Communicator, f func(r int, c *collective.Communicator) error) []error {
	errs := make([]error, len(comms))
	var wg sync.WaitGroup
	for r, c := range comms {
		wg.Go(func() { errs[r] = f(r, c) })
	}
	wg.Wait()
	return errs
}
