package transport

import (
	"context"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/ringo-ml/ringo/internal/wire"
)

// InProcBufferSize is the buffer of each direction of an in-process data
// stream: large enough that a sender runs a few chunks ahead of its receiver.
const InProcBufferSize = 4 << 20

// Hub connects the in-process meshes of one group of goroutine ranks.
type Hub struct {
	world  int
	mu     sync.Mutex
	meshes []*InProcMesh
}

// NewHub makes a hub for world ranks.
func NewHub(world int) *Hub {
	return &Hub{world: world, meshes: make([]*InProcMesh, world)}
}

// InProcMesh is the mesh of one goroutine rank.
type InProcMesh struct {
	*base
	hub *Hub
}

var _ Mesh = (*InProcMesh)(nil)

// Mesh returns rank's mesh. Call it once per rank.
func (h *Hub) Mesh(id Identity, events Events) (*InProcMesh, error) {
	if id.World != h.world || id.Rank < 0 || id.Rank >= h.world {
		return nil, fmt.Errorf("transport: rank %d of %d does not fit a hub of %d", id.Rank, id.World, h.world)
	}
	m := &InProcMesh{hub: h}
	m.base = newBase(id, events, m.dial)
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.meshes[id.Rank] != nil {
		return nil, fmt.Errorf("transport: rank %d already has a mesh on this hub", id.Rank)
	}
	h.meshes[id.Rank] = m
	return m, nil
}

// dial hands the peer its end of a fresh pair of streams.
func (m *InProcMesh) dial(ctx context.Context, peer int) (rawConn, error) {
	m.hub.mu.Lock()
	pm := m.hub.meshes[peer]
	m.hub.mu.Unlock()
	if pm == nil {
		return nil, fmt.Errorf("transport: rank %d has not joined the hub", peer)
	}
	a, b := newInProcConn()
	pm.accepted(b, m.id.Rank)
	return a, nil
}

// Close implements Mesh.
func (m *InProcMesh) Close(linger time.Duration) error {
	m.shutdown(linger)
	m.wg.Wait()
	return nil
}

type inprocConn struct {
	c, d *pipeStream
	peer *inprocConn
	once sync.Once
}

func newInProcConn() (a, b *inprocConn) {
	ca, cb := newPipePair(64 << 10)
	da, db := newPipePair(InProcBufferSize)
	a = &inprocConn{c: ca, d: da}
	b = &inprocConn{c: cb, d: db}
	a.peer, b.peer = b, a
	return a, b
}

func (c *inprocConn) ctrl() Stream { return c.c }
func (c *inprocConn) data() Stream { return c.d }

func (c *inprocConn) closeWrite() {
	c.c.out.closeWrite(io.EOF)
	c.d.out.closeWrite(io.EOF)
}

func (c *inprocConn) teardown(code wire.Code, reason string) {
	c.once.Do(func() {
		local := &ClosedError{Code: code, Reason: reason}
		remote := &ClosedError{Remote: true, Code: code, Reason: reason}
		// Our side fails with the local error, the peer's with the remote one.
		for _, s := range []*pipeStream{c.c, c.d} {
			s.in.teardown(local, remote)
			s.out.teardown(remote, local)
		}
	})
}
