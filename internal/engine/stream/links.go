package stream

import (
	"context"
	"fmt"
	"io"
	"sync"
	"sync/atomic"

	"github.com/ringo-ml/ringo/internal/transport"
)

// Path is a stream of a link that an operation's frames can take.
type Path uint8

// Paths.
const (
	Lanes    Path = iota // TCP connections beside the link: TLS, or plaintext
	QUIC                 // the link's QUIC data stream, striped over its channels
	NumPaths             // how many
)

// LaneMesh is what a mesh that can have lanes offers (the QUIC mesh; the
// in-process one cannot).
type LaneMesh interface {
	ListenLanes(cfg transport.LaneConfig) error
	CloseLanes()
	OpenLanes(ctx context.Context, l *transport.Link, in io.Reader) error
	LaneAddr() string
}

// Links are one rank's links, made on demand, and per path the two
// workers of each. Ensure and Worker belong to the operation goroutine
// (and to set-up); To and Each may be called from anywhere.
type Links struct {
	e     *Engine
	mesh  transport.Mesh
	quic  bool        // the QUIC data stream carries data: its workers come with the link
	lanes atomic.Bool // links get lanes, and lane workers, as they are made

	mu         sync.Mutex // guards links for readers outside operations
	links      []*transport.Link
	send, recv [NumPaths][]*Worker
}

// Links returns the engine's view of mesh's links. quic says whether the
// QUIC data stream carries data (or only control frames, when every byte
// goes over lanes).
func (e *Engine) Links(mesh transport.Mesh, quic bool) *Links {
	ls := &Links{e: e, mesh: mesh, quic: quic, links: make([]*transport.Link, e.world)}
	for p := range NumPaths {
		ls.send[p] = make([]*Worker, e.world)
		ls.recv[p] = make([]*Worker, e.world)
	}
	return ls
}

// SetLanes says whether links made from now on get lanes.
func (ls *Links) SetLanes(on bool) { ls.lanes.Store(on) }

// Connect makes the links to peers: all are asked for at once (the lower
// rank of each pair dials), then their workers are started (and, with
// lanes, their lanes opened: both ends of every link at once, so no rank
// waits on a peer busy elsewhere).
func (ls *Links) Connect(ctx context.Context, peers []int) error {
	var wg sync.WaitGroup
	for _, p := range peers {
		wg.Go(func() { _, _ = ls.mesh.Link(ctx, p) }) // errors come again from Ensure
	}
	wg.Wait()
	errs := make([]error, len(peers))
	for i, p := range peers {
		wg.Go(func() { errs[i] = ls.Ensure(ctx, p) })
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// Ensure makes the link to peer and its workers if they do not exist.
func (ls *Links) Ensure(ctx context.Context, peer int) error {
	if ls.links[peer] != nil {
		return nil
	}
	l, err := ls.mesh.Link(ctx, peer)
	if err != nil {
		return fmt.Errorf("rank %d connecting to rank %d: %w", ls.e.rank, peer, err)
	}
	if ls.lanes.Load() {
		if err := ls.openLanes(ctx, l); err != nil {
			return err
		}
	}
	if ls.quic {
		ls.send[QUIC][peer], ls.recv[QUIC][peer] = ls.e.NewWorker(l, l.Data, true), ls.e.NewWorker(l, l.Data, false)
	}
	ls.mu.Lock()
	ls.links[peer] = l
	ls.mu.Unlock()
	return nil
}

// Has reports whether the link to peer exists; for the operation
// goroutine.
func (ls *Links) Has(peer int) bool { return ls.links[peer] != nil }

// To returns the link to peer if it exists.
func (ls *Links) To(peer int) *transport.Link {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	if peer < 0 || peer >= len(ls.links) {
		return nil
	}
	return ls.links[peer]
}

// Each calls f with every link made so far.
func (ls *Links) Each(f func(*transport.Link)) {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	for _, l := range ls.links {
		if l != nil {
			f(l)
		}
	}
}

// Worker is the worker of path p that sends to (or receives from) peer.
func (ls *Links) Worker(p Path, peer int, send bool) *Worker {
	if send {
		return ls.send[p][peer]
	}
	return ls.recv[p][peer]
}

// OpenLanes gives every link made so far its lanes and their workers,
// all at once, and returns each link's error (nil where it worked).
func (ls *Links) OpenLanes(ctx context.Context) []error {
	var wg sync.WaitGroup
	errs := make([]error, len(ls.links))
	for p, l := range ls.links {
		if l != nil {
			wg.Go(func() { errs[p] = ls.openLanes(ctx, l) })
		}
	}
	wg.Wait()
	return errs
}

// openLanes opens link l's lanes and starts their workers.
func (ls *Links) openLanes(ctx context.Context, l *transport.Link) error {
	lm, ok := ls.mesh.(LaneMesh)
	if !ok {
		return fmt.Errorf("the links of a %T cannot have lanes", ls.mesh)
	}
	// The QUIC data stream's receive worker, where there is one, buffers
	// the stream: the peer's side of the exchange may be in its buffer.
	var in io.Reader
	if w := ls.recv[QUIC][l.Peer]; w != nil {
		in = w.Reader()
	}
	if err := lm.OpenLanes(ctx, l, in); err != nil {
		return err
	}
	ls.send[Lanes][l.Peer], ls.recv[Lanes][l.Peer] = ls.e.NewWorker(l, l.Lane, true), ls.e.NewWorker(l, l.Lane, false)
	return nil
}

// DropLanes ends every link's lanes and the lane listener: data moves
// over QUIC alone.
func (ls *Links) DropLanes() {
	ls.lanes.Store(false)
	ls.Each(func(l *transport.Link) { l.DropLanes() })
	if lm, ok := ls.mesh.(LaneMesh); ok {
		lm.CloseLanes()
	}
}

// Counts are the most QUIC connections and lanes any link has.
func (ls *Links) Counts() (channels, lanes int) {
	channels, lanes = 1, 1
	ls.Each(func(l *transport.Link) {
		channels = max(channels, l.Channels())
		lanes = max(lanes, l.Lanes())
	})
	return channels, lanes
}
