package collective_test

import (
	"context"
	"encoding/base64"
	"net"
	"testing"

	"github.com/ringo-ml/ringo/collective"
	"github.com/ringo-ml/ringo/internal/launch"
	"github.com/ringo-ml/ringo/rendezvous"
)

// The helpers of this package's external tests; groups of local ranks
// come from internal/launch.

func noErrors(t *testing.T, what string, errs []error) {
	t.Helper()
	for r, err := range errs {
		if err != nil {
			t.Fatalf("%s: rank %d: %v", what, r, err)
		}
	}
}

func closeAllComms(comms []*collective.Communicator) {
	for _, c := range comms {
		c.Close()
	}
}

// quicOnly starts a QUIC group whose data moves over QUIC although every
// rank is on this host.
func quicOnly(ctx context.Context, n int, cfg collective.Config) (*launch.Group, error) {
	cfg.Transport = collective.TransportQUIC
	return launch.QUIC(ctx, n, cfg)
}

// tcpOnly starts a group whose data moves over TCP.
func tcpOnly(ctx context.Context, n int, cfg collective.Config) (*launch.Group, error) {
	cfg.Transport = collective.TransportTCP
	return launch.QUIC(ctx, n, cfg)
}

// tlsOnly starts a group whose data moves over TLS lanes.
func tlsOnly(ctx context.Context, n int, cfg collective.Config) (*launch.Group, error) {
	cfg.Transport = collective.TransportTLS
	return launch.QUIC(ctx, n, cfg)
}

// tls2Only is tlsOnly with two lanes per link.
func tls2Only(ctx context.Context, n int, cfg collective.Config) (*launch.Group, error) {
	cfg.Channels = 2
	return tlsOnly(ctx, n, cfg)
}

// shmOnly starts a QUIC group whose data moves through shared memory.
func shmOnly(ctx context.Context, n int, cfg collective.Config) (*launch.Group, error) {
	cfg.Transport = collective.TransportShm
	return launch.QUIC(ctx, n, cfg)
}

// startGroup starts n ranks with start and closes them when the test ends.
func startGroup(t *testing.T, ctx context.Context, start starter, n int, cfg collective.Config) *launch.Group {
	t.Helper()
	g, err := start(ctx, n, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	return g
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func testKey(t *testing.T) []byte {
	t.Helper()
	s, err := rendezvous.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	k, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// freeUDPAddrs returns n loopback UDP addresses whose ports are free now.
func freeUDPAddrs(t *testing.T, n int) []string {
	t.Helper()
	var addrs []string
	for range n {
		c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		addrs = append(addrs, c.LocalAddr().String())
		defer c.Close()
	}
	return addrs
}
