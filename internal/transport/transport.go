// Package transport moves bytes between the ranks of a communicator.
//
// A Mesh gives each rank one Link per peer it talks to. A Link is an
// authenticated, reliable connection with two ordered byte streams: a data
// stream that the collective executor owns during an operation (frame headers
// and raw tensor bytes, read straight into the destination's memory), and a
// control stream that carries the hello exchange at set-up and abort frames
// afterwards. A goroutine per link reads the control stream at all times, so a
// peer's abort reaches the rank at once, whatever the rank is doing.
//
// Two meshes exist: QUIC (quic-go, one UDP socket per rank, one connection
// per peer pair, mutual TLS with the peer's certificate checked against the
// expected member before any frame is read) and in-process pipes for ranks
// that are goroutines of one process. Links are made on first use; of a
// pair, the lower rank dials and the higher rank accepts, so both sides may
// ask for the link at the same time without a race.
//
// A QUIC link may also get lanes (lanes.go): TCP connections beside it,
// authenticated through it, that carry its data frames — TLS lanes (a TLS
// 1.3 handshake with the link's certificate checks, then records sealed
// under keys from that handshake: sealed.go) or plaintext TCP.
package transport

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ringo-ml/ringo/internal/wire"
)

// Stream is one bidirectional ordered byte stream of a link. Deadlines
// interrupt blocked calls, as on a net.Conn.
type Stream interface {
	io.Reader
	io.Writer
	SetReadDeadline(t time.Time) error
	SetWriteDeadline(t time.Time) error
}

// Events receives what links learn outside an operation. Methods are called
// from a link's control goroutine and must not block for long.
type Events interface {
	// PeerAbort reports an abort frame from peer.
	PeerAbort(peer int, a *wire.Abort)
	// PeerDown reports that the link to peer ended: the peer closed it
	// (err wraps ErrPeerClosed) or the connection failed.
	PeerDown(peer int, err error)
}

// Identity is what a rank states in its hello and expects of its peers'.
type Identity struct {
	Group string
	Epoch uint64
	World int
	Rank  int
	View  uint64 // the view's identity (wire.Hello.View); peers must state the same
}

// ErrPeerClosed reports that a peer ended the link in an orderly way.
var ErrPeerClosed = errors.New("peer closed the connection")

// ClosedError is returned by stream operations after a connection was torn
// down, by this side (Remote false) or by the peer.
type ClosedError struct {
	Remote bool
	Code   wire.Code
	Reason string
}

func (e *ClosedError) Error() string {
	who := "locally"
	if e.Remote {
		who = "by the peer"
	}
	if e.Reason == "" {
		return "connection closed " + who
	}
	return fmt.Sprintf("connection closed %s: %s", who, e.Reason)
}

// Is makes a ClosedError match ErrPeerClosed when the peer closed cleanly.
func (e *ClosedError) Is(target error) bool {
	return target == ErrPeerClosed && e.Remote && e.Code == wire.CodeClosed
}

// HandshakeTimeout bounds the hello exchange of a new link.
const HandshakeTimeout = 10 * time.Second

// controlWriteTimeout bounds writing an abort frame: a peer that does not
// take a few hundred bytes in this time is not going to.
const controlWriteTimeout = time.Second

// rawConn is a connection whose streams are open but whose hello has not been
// exchanged yet.
type rawConn interface {
	ctrl() Stream
	data() Stream
	// closeWrite ends both streams in an orderly way (FIN after all data).
	closeWrite()
	// teardown closes the connection at once, telling the peer code and reason.
	teardown(code wire.Code, reason string)
}

// Link is an established connection to one peer.
type Link struct {
	Peer int
	// Data is the data stream. It belongs to the one operation in flight.
	Data Stream
	// Lane is the link's lane stream, when it has lanes (QUICMesh.OpenLanes):
	// TCP connections (with TLS, or plaintext) beside the QUIC connection,
	// striped when there are several. Nil otherwise. Like Data, it belongs
	// to the one operation in flight that uses it.
	Lane Stream

	raw    rawConn
	extra  []rawConn   // channels 1..K-1, when the data stream is striped over K connections
	laneMu sync.Mutex  // guards lanes and torn
	lanes  []*laneConn // the connections under Lane
	torn   bool        // Teardown ran
	ctrlMu sync.Mutex  // serialises writes on the control stream
	enc    *wire.Encoder
	done   chan struct{} // closed when the control reader stops
	once   sync.Once

	abortOnce sync.Once
	aborted   chan struct{} // closed when the peer sent an abort: it reads no more

	pingMu  sync.Mutex // one ping at a time
	pingSeq uint64
	pongs   chan uint64 // answers to our pings
}

// Ping checks that the peer is alive and reading its control stream: it
// sends a ping and waits for the answer until ctx is done.
func (l *Link) Ping(ctx context.Context) error {
	l.pingMu.Lock()
	defer l.pingMu.Unlock()
	l.pingSeq++
	seq := l.pingSeq
	if err := l.SendAbort(&wire.Abort{Seq: seq, Code: wire.CodePing}); err != nil {
		return fmt.Errorf("transport: pinging rank %d: %w", l.Peer, err)
	}
	for {
		select {
		case got := <-l.pongs:
			if got == seq {
				return nil
			}
		case <-l.done:
			return fmt.Errorf("transport: pinging rank %d: the link ended", l.Peer)
		case <-ctx.Done():
			return fmt.Errorf("transport: rank %d did not answer a ping: %w", l.Peer, context.Cause(ctx))
		}
	}
}

// SendAbort writes an abort frame (or a bye: an abort with CodeBye) on the
// control stream, waiting at most a second. It is safe to call from any
// goroutine.
func (l *Link) SendAbort(a *wire.Abort) error {
	l.ctrlMu.Lock()
	defer l.ctrlMu.Unlock()
	c := l.raw.ctrl()
	_ = c.SetWriteDeadline(time.Now().Add(controlWriteTimeout))
	_, err := c.Write(l.enc.EncodeAbort(a))
	_ = c.SetWriteDeadline(time.Time{})
	return err
}

// Interrupt makes blocked and future calls on the data and lane streams
// fail at once.
func (l *Link) Interrupt() { l.setDeadlines(time.Now()) }

// Resume clears the deadlines that Interrupt or an operation set.
func (l *Link) Resume() { l.setDeadlines(time.Time{}) }

func (l *Link) setDeadlines(t time.Time) {
	_ = l.Data.SetReadDeadline(t)
	_ = l.Data.SetWriteDeadline(t)
	l.laneMu.Lock()
	for _, c := range l.lanes {
		_ = c.SetReadDeadline(t)
		_ = c.SetWriteDeadline(t)
	}
	l.laneMu.Unlock()
}

// CloseWrite ends both streams in an orderly way: the peer reads everything
// sent so far, then end of stream.
func (l *Link) CloseWrite() {
	l.ctrlMu.Lock()
	l.laneMu.Lock()
	for _, c := range l.lanes {
		c.closeWrite()
	}
	l.laneMu.Unlock()
	l.raw.closeWrite()
	for _, r := range l.extra {
		r.closeWrite()
	}
	l.ctrlMu.Unlock()
}

// Teardown closes the connection at once.
func (l *Link) Teardown(code wire.Code, reason string) {
	l.once.Do(func() {
		l.laneMu.Lock()
		l.torn = true
		for _, c := range l.lanes {
			_ = c.Close()
		}
		l.laneMu.Unlock()
		l.raw.teardown(code, reason)
		for _, r := range l.extra {
			r.teardown(code, reason)
		}
		for _, s := range []Stream{l.Data, l.Lane} {
			if st, ok := s.(*striped); ok {
				st.stop()
			}
		}
	})
}

// Channels is the number of connections the link's data stream is
// striped over (1 unless the mesh offered more and the peer agreed).
func (l *Link) Channels() int { return 1 + len(l.extra) }

// attach makes the data stream a stripe over the link's first connection
// and extra.
func (l *Link) attach(extra []rawConn) {
	if len(extra) == 0 {
		return
	}
	l.extra = extra
	s := []Stream{l.Data}
	for _, r := range extra {
		s = append(s, r.data())
	}
	l.Data = newStriped(s)
}

// Done is closed when the peer's control stream has ended (it closed, the
// connection failed or was torn down).
func (l *Link) Done() <-chan struct{} { return l.done }

// Mesh is a rank's set of links to its peers.
type Mesh interface {
	// Link returns the link to peer, establishing it on first use. It waits
	// for the peer (to dial or to accept) until ctx is done.
	Link(ctx context.Context, peer int) (*Link, error)
	// Links returns the links established so far.
	Links() []*Link
	// Close ends every link. With linger > 0 it first closes the streams in
	// an orderly way and waits up to linger for every peer to do the same,
	// so that data already written is read by peers still finishing; then
	// it tears everything down. Close is idempotent and waits for the
	// mesh's goroutines.
	Close(linger time.Duration) error
}

// slot holds the link to one peer once it exists.
type slot struct {
	ready chan struct{} // closed once link or err is set
	link  *Link
	err   error
	dial  sync.Once
}

// base is the transport-independent half of a mesh: slots, hello exchange,
// control readers.
type base struct {
	id      Identity
	events  Events
	lim     wire.Limits
	slots   []slot
	dialer  func(ctx context.Context, peer int) (rawConn, error)
	ctx     context.Context // cancelled by Close
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	mu      sync.Mutex
	closing bool

	framesRead atomic.Int64 // hello-exchange frames read, for tests

	// channels is how many connections this side offers (dialing) or
	// accepts (answering) per link; 1 for meshes without channels.
	channels int
	pending  map[int]*pendingLink // acceptor: links waiting for their other channels
}

// pendingLink is an accepted link whose peer agreed to more than one
// channel: it is settled once every channel has said hello.
type pendingLink struct {
	link  *Link
	extra []rawConn // by channel - 1; nil until that channel says hello
}

// complete reports whether every channel has said hello.
func (p *pendingLink) complete() bool {
	for _, r := range p.extra {
		if r == nil {
			return false
		}
	}
	return true
}

func newBase(id Identity, events Events, dialer func(context.Context, int) (rawConn, error)) *base {
	ctx, cancel := context.WithCancel(context.Background())
	b := &base{
		id:       id,
		events:   events,
		lim:      wire.Limits{MaxPayload: 0, MaxWorld: int32(id.World)},
		slots:    make([]slot, id.World),
		dialer:   dialer,
		ctx:      ctx,
		cancel:   cancel,
		channels: 1,
		pending:  map[int]*pendingLink{},
	}
	for i := range b.slots {
		b.slots[i].ready = make(chan struct{})
	}
	return b
}

func (b *base) checkPeer(peer int) error {
	if peer < 0 || peer >= b.id.World || peer == b.id.Rank {
		return fmt.Errorf("transport: no peer %d in a world of %d seen from rank %d", peer, b.id.World, b.id.Rank)
	}
	return nil
}

// Link implements Mesh.
func (b *base) Link(ctx context.Context, peer int) (*Link, error) {
	if err := b.checkPeer(peer); err != nil {
		return nil, err
	}
	s := &b.slots[peer]
	if peer > b.id.Rank {
		s.dial.Do(func() {
			b.wg.Add(1)
			go func() {
				defer b.wg.Done()
				b.dialLoop(peer)
			}()
		})
	}
	select {
	case <-s.ready:
		return s.link, s.err
	case <-ctx.Done():
		return nil, fmt.Errorf("transport: waiting for the link to rank %d: %w", peer, context.Cause(ctx))
	case <-b.ctx.Done():
		return nil, fmt.Errorf("transport: link to rank %d: %w", peer, ErrMeshClosed)
	}
}

// ErrMeshClosed reports an operation on a mesh that was closed.
var ErrMeshClosed = errors.New("transport: mesh closed")

// dialLoop dials peer until it answers or the mesh closes. A peer that is
// not listening yet (it starts later) is retried with backoff.
func (b *base) dialLoop(peer int) {
	backoff := 20 * time.Millisecond
	var last error
	for {
		ctx, cancel := context.WithTimeout(b.ctx, HandshakeTimeout)
		raw, err := b.dialer(ctx, peer)
		if err == nil {
			var l *Link
			l, err = b.dialChannels(ctx, raw, peer)
			if err == nil {
				cancel()
				b.settle(peer, l, nil)
				return
			}
			raw.teardown(wire.CodeProtocol, err.Error())
			if errors.Is(err, errRefused) {
				cancel()
				b.settle(peer, nil, err)
				return
			}
		}
		cancel()
		last = err
		select {
		case <-b.ctx.Done():
			b.settle(peer, nil, fmt.Errorf("transport: dialing rank %d: %w (last error: %v)", peer, ErrMeshClosed, last))
			return
		case <-time.After(backoff):
		}
		if backoff < time.Second {
			backoff *= 2
		}
	}
}

var errRefused = errors.New("refused")

// dialChannels runs the dialer's hello exchange on raw, offering this
// mesh's channels, then dials and greets the other channels the peer
// agreed to. On failure it tears down the extra connections it made; the
// caller tears down raw.
func (b *base) dialChannels(ctx context.Context, raw rawConn, peer int) (*Link, error) {
	l, ans, err := b.handshake(ctx, raw, peer, &wire.Hello{Channels: uint16(b.channels)})
	if err != nil {
		return nil, err
	}
	k := int(max(ans.Channels, 1))
	if k > b.channels {
		return nil, fmt.Errorf("transport: rank %d answered %d channels to an offer of %d", peer, k, b.channels)
	}
	var extra []rawConn
	fail := func(err error) (*Link, error) {
		for _, r := range extra {
			r.teardown(wire.CodeProtocol, err.Error())
		}
		return nil, err
	}
	for ch := 1; ch < k; ch++ {
		r, err := b.dialer(ctx, peer)
		if err != nil {
			return fail(fmt.Errorf("transport: channel %d of %d to rank %d: %w", ch, k, peer, err))
		}
		extra = append(extra, r)
		if _, _, err := b.handshake(ctx, r, peer, &wire.Hello{Channel: uint16(ch), Channels: uint16(k)}); err != nil {
			return fail(fmt.Errorf("transport: channel %d of %d to rank %d: %w", ch, k, peer, err))
		}
	}
	l.attach(extra)
	return l, nil
}

// answer decides the acceptor's hello to a dialer's: on channel 0 the
// channels agreed (the fewer of the offer and this mesh's), on a later
// channel the same count again, if a link with that many channels waits
// for it, which then holds raw as that channel.
func (b *base) answer(peer int, h *wire.Hello, raw rawConn) (*wire.Hello, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if h.Channel == 0 {
		return &wire.Hello{Channels: uint16(min(int(max(h.Channels, 1)), b.channels))}, nil
	}
	p := b.pending[peer]
	switch {
	case p == nil:
		return nil, fmt.Errorf("transport: rank %d opened channel %d of %d, but no link of that many channels waits for it: %w", peer, h.Channel, h.Channels, errRefused)
	case int(h.Channels) != 1+len(p.extra) || p.extra[h.Channel-1] != nil:
		return nil, fmt.Errorf("transport: rank %d opened channel %d of %d, but its link has %d channels and that one is taken: %w", peer, h.Channel, h.Channels, 1+len(p.extra), errRefused)
	}
	p.extra[h.Channel-1] = raw
	return &wire.Hello{Channel: h.Channel, Channels: h.Channels}, nil
}

// accepted runs the acceptor's half of the hello exchange on a connection
// whose TLS identity (or in-process origin) says it comes from peer.
func (b *base) accepted(raw rawConn, peer int) {
	if err := b.checkPeer(peer); err != nil || peer > b.id.Rank {
		raw.teardown(wire.CodeProtocol, fmt.Sprintf("rank %d does not accept a connection from rank %d", b.id.Rank, peer))
		return
	}
	b.mu.Lock()
	if b.closing {
		b.mu.Unlock()
		raw.teardown(wire.CodeClosed, "closing")
		return
	}
	b.wg.Add(1)
	b.mu.Unlock()
	go func() {
		defer b.wg.Done()
		ctx, cancel := context.WithTimeout(b.ctx, HandshakeTimeout)
		defer cancel()
		l, h, err := b.handshake(ctx, raw, peer, nil)
		if err != nil {
			raw.teardown(wire.CodeProtocol, err.Error())
			return
		}
		k := min(int(max(h.Channels, 1)), b.channels)
		if h.Channel == 0 && k > 1 {
			// Wait for the other channels, replacing an earlier attempt
			// of the same peer's (its dialer gave up on it).
			b.mu.Lock()
			old := b.pending[peer]
			b.pending[peer] = &pendingLink{link: l, extra: make([]rawConn, k-1)}
			b.mu.Unlock()
			if old != nil {
				old.teardown("superseded by a new connection")
			}
			return
		}
		if h.Channel > 0 {
			b.mu.Lock()
			p := b.pending[peer]
			if p == nil || !p.complete() {
				b.mu.Unlock()
				return // more channels to come
			}
			delete(b.pending, peer)
			b.mu.Unlock()
			l = p.link
			l.attach(p.extra)
		}
		if !b.settle(peer, l, nil) {
			l.Teardown(wire.CodeProtocol, "duplicate connection")
		}
	}()
}

// teardown closes a pending link's connections.
func (p *pendingLink) teardown(reason string) {
	p.link.raw.teardown(wire.CodeProtocol, reason)
	for _, r := range p.extra {
		if r != nil {
			r.teardown(wire.CodeProtocol, reason)
		}
	}
}

// settle records the outcome for peer's slot; false if it was already set.
func (b *base) settle(peer int, l *Link, err error) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := &b.slots[peer]
	select {
	case <-s.ready:
		return false
	default:
	}
	if l != nil && b.closing {
		l.Teardown(wire.CodeClosed, "closing")
		l, err = nil, ErrMeshClosed
	}
	s.link, s.err = l, err
	close(s.ready)
	if l != nil {
		b.wg.Add(1)
		go func() {
			defer b.wg.Done()
			b.readControl(l)
		}()
	}
	return true
}

// handshake exchanges hellos: the dialer (offer != nil: its channel
// fields) sends its hello on both streams and reads the acceptor's on the
// control stream; the acceptor reads both, checks them, and answers. It
// returns the link and the peer's hello.
func (b *base) handshake(ctx context.Context, raw rawConn, peer int, offer *wire.Hello) (*Link, *wire.Hello, error) {
	dialer := offer != nil
	ctrl, data := raw.ctrl(), raw.data()
	if dl, ok := ctx.Deadline(); ok {
		_ = ctrl.SetReadDeadline(dl)
		_ = ctrl.SetWriteDeadline(dl)
		_ = data.SetReadDeadline(dl)
		_ = data.SetWriteDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() {
		now := time.Now()
		_ = ctrl.SetReadDeadline(now)
		_ = data.SetReadDeadline(now)
	})
	defer stop()
	enc := wire.NewEncoder()
	hello := &wire.Hello{Version: wire.Version, Group: b.id.Group, Epoch: b.id.Epoch, World: int32(b.id.World), Rank: int32(b.id.Rank), View: b.id.View}
	scratch := make([]byte, wire.PrefixLen+wire.MaxHeader)
	var got wire.Hello
	read := func(s Stream, what string) error {
		var f wire.Frame
		b.framesRead.Add(1)
		if err := wire.ReadFrame(s, scratch, b.lim, &f); err != nil {
			return fmt.Errorf("transport: reading the hello of rank %d on the %s stream: %w", peer, what, err)
		}
		if err := b.checkHello(&f, peer); err != nil {
			return err
		}
		if what == "data" && (f.Hello.Channel != got.Channel || f.Hello.Channels != got.Channels) {
			return fmt.Errorf("transport: rank %d's hellos name channel %d of %d on the control stream and %d of %d on the data stream",
				peer, got.Channel, got.Channels, f.Hello.Channel, f.Hello.Channels)
		}
		got = f.Hello
		return nil
	}
	if dialer {
		hello.Channel, hello.Channels = offer.Channel, offer.Channels
		if _, err := ctrl.Write(enc.EncodeHello(hello)); err != nil {
			return nil, nil, fmt.Errorf("transport: sending hello to rank %d: %w", peer, err)
		}
		if _, err := data.Write(enc.EncodeHello(hello)); err != nil {
			return nil, nil, fmt.Errorf("transport: sending hello to rank %d: %w", peer, err)
		}
		if err := read(ctrl, "control"); err != nil {
			return nil, nil, err
		}
		if got.Channel != offer.Channel {
			return nil, nil, fmt.Errorf("transport: rank %d answered channel %d on channel %d", peer, got.Channel, offer.Channel)
		}
	} else {
		if err := read(ctrl, "control"); err != nil {
			return nil, nil, err
		}
		if err := read(data, "data"); err != nil {
			return nil, nil, err
		}
		ans, err := b.answer(peer, &got, raw)
		if err != nil {
			return nil, nil, err
		}
		hello.Channel, hello.Channels = ans.Channel, ans.Channels
		if _, err := ctrl.Write(enc.EncodeHello(hello)); err != nil {
			return nil, nil, fmt.Errorf("transport: answering the hello of rank %d: %w", peer, err)
		}
	}
	for _, s := range []Stream{ctrl, data} {
		_ = s.SetReadDeadline(time.Time{})
		_ = s.SetWriteDeadline(time.Time{})
	}
	return &Link{Peer: peer, Data: data, raw: raw, enc: enc, done: make(chan struct{}),
		aborted: make(chan struct{}), pongs: make(chan uint64, 1)}, &got, nil
}

func (b *base) checkHello(f *wire.Frame, peer int) error {
	if f.Kind == wire.KindAbort {
		return fmt.Errorf("transport: rank %d refused the link: %s: %s: %w", peer, f.Abort.Code, f.Abort.Reason, errRefused)
	}
	if f.Kind != wire.KindHello {
		return fmt.Errorf("transport: rank %d sent a %s frame before its hello", peer, f.Kind)
	}
	h := &f.Hello
	switch {
	case int(h.Rank) != peer:
		return fmt.Errorf("transport: the peer authenticated as rank %d says it is rank %d: %w", peer, h.Rank, errRefused)
	case h.Group != b.id.Group:
		return fmt.Errorf("transport: rank %d is in group %q, not %q: %w", peer, h.Group, b.id.Group, errRefused)
	case h.Epoch != b.id.Epoch:
		return fmt.Errorf("transport: rank %d is at epoch %d, not %d: %w", peer, h.Epoch, b.id.Epoch, errRefused)
	case int(h.World) != b.id.World:
		return fmt.Errorf("transport: rank %d has a world of %d, not %d: %w", peer, h.World, b.id.World, errRefused)
	case h.View != b.id.View:
		return fmt.Errorf("transport: rank %d is in another view of epoch %d (identity %016x, not %016x: other members): %w",
			peer, h.Epoch, h.View, b.id.View, errRefused)
	}
	return nil
}

// readControl reads the control stream until it ends, reporting aborts and
// the end of the link.
func (b *base) readControl(l *Link) {
	defer close(l.done)
	scratch := make([]byte, wire.PrefixLen+wire.MaxHeader)
	ctrl := l.raw.ctrl()
	for {
		var f wire.Frame
		err := wire.ReadFrame(ctrl, scratch, b.lim, &f)
		if err == nil && f.Kind == wire.KindAbort && f.Abort.Code == wire.CodePing {
			_ = l.SendAbort(&wire.Abort{Seq: f.Abort.Seq, Rank: int32(b.id.Rank), Code: wire.CodePong})
			continue
		}
		if err == nil && f.Kind == wire.KindAbort && f.Abort.Code == wire.CodePong {
			select {
			case l.pongs <- f.Abort.Seq:
			default: // nobody waits for it any more
			}
			continue
		}
		if err == nil && f.Kind == wire.KindAbort {
			if f.Abort.Code.Failure() {
				l.abortOnce.Do(func() { close(l.aborted) })
			}
			b.events.PeerAbort(l.Peer, &f.Abort)
			continue
		}
		if err == nil {
			err = fmt.Errorf("unexpected %s frame on the control stream", f.Kind)
		} else if errors.Is(err, io.EOF) {
			err = &ClosedError{Remote: true, Code: wire.CodeClosed, Reason: "end of stream"}
		}
		if !b.isClosing() {
			b.events.PeerDown(l.Peer, fmt.Errorf("link to rank %d: %w", l.Peer, err))
		}
		return
	}
}

func (b *base) isClosing() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.closing
}

// Links implements Mesh.
func (b *base) Links() []*Link {
	var out []*Link
	for i := range b.slots {
		s := &b.slots[i]
		select {
		case <-s.ready:
			if s.link != nil {
				out = append(out, s.link)
			}
		default:
		}
	}
	return out
}

// shutdown closes links (gracefully first when linger > 0) and waits for the
// goroutines. The caller closes its transport afterwards.
func (b *base) shutdown(linger time.Duration) {
	b.mu.Lock()
	already := b.closing
	b.closing = true
	b.mu.Unlock()
	if already {
		return
	}
	links := b.Links()
	if linger > 0 && len(links) > 0 {
		for _, l := range links {
			l.CloseWrite()
		}
		deadline := time.NewTimer(linger)
	wait:
		for _, l := range links {
			select {
			case <-l.Done():
			case <-l.aborted: // it failed: it will not read what we sent
			case <-deadline.C:
				break wait
			}
		}
		deadline.Stop()
	}
	for _, l := range links {
		l.Teardown(wire.CodeClosed, fmt.Sprintf("rank %d closed its communicator", b.id.Rank))
	}
	b.mu.Lock()
	pending := b.pending
	b.pending = map[int]*pendingLink{}
	b.mu.Unlock()
	for _, p := range pending {
		p.teardown("closing")
	}
	b.cancel()
}

// isTimeout reports whether err is a deadline expiry.
func isTimeout(err error) bool { return errors.Is(err, os.ErrDeadlineExceeded) }
