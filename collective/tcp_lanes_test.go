package collective_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"github.com/ringo-ml/ringo/collective"
)

// TestTCP runs every collective with the data on TCP, ring and tree.
func TestTCP(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	g := startGroup(t, ctx, tcpOnly, 4, collective.Config{ChunkBytes: 64 << 10})
	for _, count := range append(append([]int(nil), counts...), 100_003) {
		t.Run(fmt.Sprint(count), func(t *testing.T) {
			checkAll[float32](t, g.Comms, count, count < 100_000)
			checkAll[float64](t, g.Comms, count, count < 100_000, collective.Using(collective.Tree))
		})
	}
	checkIdentical[float32](t, g.Comms, 100_003)
}

// TestTCPDropsStrangers: a connection to a rank's TCP listener that does
// not present a token is closed without a byte read past the token, and
// the group goes on working.
func TestTCPDropsStrangers(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	g := startGroup(t, ctx, tcpOnly, 3, collective.Config{Algorithm: collective.Ring})
	addr := g.Comms[2].LaneAddr()
	if addr == "" {
		t.Fatal("no TCP listener on a TransportTCP communicator")
	}
	for _, probe := range [][]byte{
		make([]byte, 33), // a wrong token, lane 0
		[]byte("GET / HTTP/1.0\r\n\r\n" + string(make([]byte, 64))), // not a token at all
	} {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = conn.Write(probe)
		_ = conn.SetReadDeadline(time.Now().Add(30 * time.Second))
		n, err := io.Copy(io.Discard, conn)
		conn.Close()
		if n != 0 || (err != nil && !isReset(err)) {
			t.Fatalf("a stranger read %d bytes (err %v) from the listener", n, err)
		}
	}
	checkAll[float32](t, g.Comms, 1000, false)
	if a := g.Comms[0].LaneAddr(); a == "" {
		t.Fatal("rank 0 has no listener")
	}
	q := startGroup(t, ctx, quicOnly, 2, collective.Config{})
	if a := q.Comms[0].LaneAddr(); a != "" {
		t.Fatalf("a QUIC communicator has a lane listener at %s", a)
	}
}

// isReset reports a connection the listener closed with unread data
// (the kernel then resets it).
func isReset(err error) bool {
	var op *net.OpError
	return errors.As(err, &op)
}
