package transport

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"time"
)

// Lanes: a link's data path over TCP connections beside its QUIC
// connection.
//
// A QUIC connection seals and sends every 1452-byte packet on its own, so
// one quic-go connection moves a few hundred MB/s; TLS 1.3 over TCP seals
// 16 KiB records and lets the kernel cut segments, and moves several times
// that on the same core. A lane is such a TCP connection, made for one
// link after the link's QUIC connection has authenticated the peer:
//
//  1. The lower rank of the pair (the QUIC dialer) asks, on the link's
//     QUIC data stream, for lanes: the security it wants and how many.
//  2. The higher rank answers with its lane listener's address, the
//     security it uses, the count (the fewer of the two), and two fresh
//     random tokens.
//  3. The lower rank connects that many times. With LanesTLS each
//     connection is a TLS 1.3 handshake in which both sides present their
//     certificates and each checks the other's exactly as the QUIC link
//     does (the member's TLS name, its pinned fingerprint, the group's
//     CA); a certificate that is not a lower-ranked member's is refused
//     inside the handshake. Then the dialer sends the first token and the
//     lane's index, and the listener, if the token is one it waits for (and,
//     with TLS, came from the peer the certificate names), answers with the
//     second token, which the dialer checks.
//
// With LanesPlain there is no TLS: the tokens, which only the two ends of
// the authenticated QUIC link know, are the authentication, and the bytes
// cross the network in the clear (trusted networks only).
//
// The listener refuses what does not authenticate within the handshake
// timeout and, beyond laneMaxAdmits handshakes in progress, closes new
// connections at once, so a stranger holds no goroutine or buffer for
// long and cannot make the listener grow.

// LaneSecurity says how a mesh's lanes protect their bytes.
type LaneSecurity uint8

const (
	// LanesOff: no lanes; data moves over QUIC.
	LanesOff LaneSecurity = iota
	// LanesTLS: TLS 1.3, mutually authenticated and pinned like the QUIC
	// links; encrypted and integrity-protected.
	LanesTLS
	// LanesPlain: plaintext TCP, authenticated at connect by tokens sent
	// over the QUIC link; no encryption, no integrity beyond TCP's
	// checksum.
	LanesPlain
)

func (s LaneSecurity) String() string {
	switch s {
	case LanesOff:
		return "no lanes"
	case LanesTLS:
		return "TLS lanes"
	case LanesPlain:
		return "plaintext TCP lanes"
	}
	return "LaneSecurity(" + strconv.Itoa(int(s)) + ")"
}

// LaneALPN is the TLS application protocol of lanes; a lane handshake with
// anything else fails.
const LaneALPN = "ringo-lane/1"

// LaneConfig configures a QUIC mesh's lanes.
type LaneConfig struct {
	// Security is what the lanes are; LanesOff (the zero value): none.
	Security LaneSecurity
	// Count is how many lanes a link stripes its data over (blocks of
	// StripeBytes in turn); each pair of ranks uses the fewer of their
	// two counts. 0 means 1; at most MaxLanes.
	Count int
	// Advertise, when set, is the host:port the peers connect to instead
	// of the listener's own address (a port forward, a relay).
	Advertise string
	// Logger receives a warning for each connection the listener drops;
	// default slog.Default().
	Logger *slog.Logger
	// Timeout bounds the making of a link's lanes (OpenLanes) and each
	// connection's authentication at the listener; default
	// HandshakeTimeout.
	Timeout time.Duration
}

// MaxLanes bounds LaneConfig.Count.
const MaxLanes = 64

const (
	laneMagic    = "RLN1"
	laneTokenLen = 32
	laneMaxAddr  = 255
	// laneMaxAdmits bounds the connections the listener authenticates at
	// once; beyond it new ones are closed unread.
	laneMaxAdmits = 64
	laneSockBuf   = 4 << 20
	// laneReady is a TLS lane listener's first record.
	laneReady = "RLNR"
)

type laneToken = [laneTokenLen]byte

// laneListener is a mesh's lane listener and the lanes it waits for.
type laneListener struct {
	timeout time.Duration // LaneConfig.Timeout
	sec     LaneSecurity
	count   int // lanes per link offered
	ln      *net.TCPListener
	addr    string // what peers dial
	tls     *tls.Config
	m       *QUICMesh
	log     *slog.Logger
	admits  chan struct{} // a token per handshake in progress
	mu      sync.Mutex
	pending map[laneToken]*laneWait
	active  map[*net.TCPConn]struct{} // connections being admitted
	closed  bool
	wg      sync.WaitGroup

	dropped  int       // connections dropped since the last warning
	lastWarn time.Time // when the last warning went out
}

// laneWarnEvery bounds the warnings about dropped connections: a flood of
// strangers makes one line a second, with a count.
const laneWarnEvery = time.Second

// drop closes a connection that did not authenticate, and says so (at
// most once every laneWarnEvery).
func (l *laneListener) drop(conn *net.TCPConn, why error) {
	_ = conn.Close()
	l.mu.Lock()
	l.dropped++
	n := l.dropped
	now := time.Now()
	if now.Sub(l.lastWarn) < laneWarnEvery {
		l.mu.Unlock()
		return
	}
	l.dropped, l.lastWarn = 0, now
	l.mu.Unlock()
	l.log.Warn("transport: dropped lane connections that did not authenticate", "count", n, "last from", conn.RemoteAddr().String(), "why", why)
}

// laneWait is an offer's lanes as they arrive.
type laneWait struct {
	peer  int
	tokD  laneToken
	conns []*laneConn // by index; nil until it arrives
	got   int
	done  chan struct{} // closed when every lane has arrived
}

// ListenLanes starts the mesh's lane listener, on the host of its UDP
// socket: on the same port number over TCP when it is free, else on any.
// From then on OpenLanes can give links lanes of lc's kind. Call it once,
// before OpenLanes.
func (m *QUICMesh) ListenLanes(lc LaneConfig) error {
	if lc.Security != LanesTLS && lc.Security != LanesPlain || lc.Count < 0 || lc.Count > MaxLanes {
		return fmt.Errorf("transport: lanes of security %d, %d per link; want TLS or plaintext, and 0 to %d", lc.Security, lc.Count, MaxLanes)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closing {
		return ErrMeshClosed
	}
	if m.lanes != nil {
		return errors.New("transport: the mesh listens for lanes already")
	}
	udp := m.cfg.Conn.LocalAddr().(*net.UDPAddr)
	ln, err := net.ListenTCP("tcp", &net.TCPAddr{IP: udp.IP, Port: udp.Port, Zone: udp.Zone})
	if err != nil {
		ln, err = net.ListenTCP("tcp", &net.TCPAddr{IP: udp.IP, Zone: udp.Zone})
	}
	if err != nil {
		return fmt.Errorf("transport: lane listener on %s: %w", udp.IP, err)
	}
	if lc.Timeout <= 0 {
		lc.Timeout = HandshakeTimeout
	}
	l := &laneListener{timeout: lc.Timeout, sec: lc.Security, count: min(max(lc.Count, 1), MaxLanes), ln: ln, m: m, log: lc.Logger, admits: make(chan struct{}, laneMaxAdmits),
		pending: make(map[laneToken]*laneWait), active: make(map[*net.TCPConn]struct{})}
	if l.log == nil {
		l.log = slog.Default()
	}
	l.addr = lc.Advertise
	if l.addr == "" {
		// Peers reach this rank where they reach its QUIC socket.
		host, _, err := net.SplitHostPort(m.cfg.Peers[m.id.Rank].Addr)
		if err != nil || host == "" {
			host = udp.IP.String()
		}
		l.addr = net.JoinHostPort(host, strconv.Itoa(ln.Addr().(*net.TCPAddr).Port))
	}
	if lc.Security == LanesTLS {
		s := m.server.Clone()
		s.NextProtos = []string{LaneALPN}
		s.SessionTicketsDisabled = true
		l.tls = s
	}
	m.lanes = l
	m.wg.Add(1) // Close waits for it too
	l.wg.Add(1)
	go func() {
		defer m.wg.Done()
		defer l.wg.Done()
		l.acceptLoop()
	}()
	return nil
}

// LaneAddr is the address of the mesh's lane listener (open it in
// firewalls beside the QUIC port: TCP, and the same port number when it
// was free), or "" when the mesh has no lanes.
func (m *QUICMesh) LaneAddr() string {
	if l := m.laneListener(); l != nil {
		return l.ln.Addr().String()
	}
	return ""
}

// LaneSecurity is what the mesh's lanes are.
func (m *QUICMesh) LaneSecurity() LaneSecurity {
	if l := m.laneListener(); l != nil {
		return l.sec
	}
	return LanesOff
}

func (m *QUICMesh) laneListener() *laneListener {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.lanes
}

func (l *laneListener) acceptLoop() {
	for {
		conn, err := l.ln.AcceptTCP()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			if l.isClosed() {
				return
			}
			// Out of file descriptors and the like: wait, then go on.
			time.Sleep(10 * time.Millisecond)
			continue
		}
		select {
		case l.admits <- struct{}{}:
		default:
			l.drop(conn, errors.New("too many handshakes in progress"))
			continue
		}
		l.mu.Lock()
		if l.closed {
			l.mu.Unlock()
			<-l.admits
			_ = conn.Close()
			return
		}
		l.wg.Add(1)
		l.active[conn] = struct{}{}
		l.mu.Unlock()
		go func() {
			defer l.wg.Done()
			defer func() {
				l.mu.Lock()
				delete(l.active, conn)
				l.mu.Unlock()
				<-l.admits
			}()
			if err := l.admit(conn); err != nil {
				l.drop(conn, err)
			}
		}()
	}
}

func (l *laneListener) isClosed() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.closed
}

// admit authenticates one connection and hands it to the offer it
// belongs to; on error the caller closes it.
func (l *laneListener) admit(tc *net.TCPConn) error {
	deadline := time.Now().Add(l.timeout)
	_ = tc.SetDeadline(deadline)
	peer := -1
	lc := newLaneConn(tc)
	if l.sec == LanesTLS {
		ctx, cancel := context.WithDeadline(l.m.ctx, deadline)
		defer cancel()
		s := tls.Server(tc, l.tls)
		if err := s.HandshakeContext(ctx); err != nil {
			return fmt.Errorf("TLS handshake: %w", err)
		}
		p, err := l.m.identify(s.ConnectionState())
		if err != nil { // cannot happen: VerifyConnection ran
			return err
		}
		peer = p
		if lc.sealed, err = newSealedConn(tc, s.ConnectionState(), false); err != nil {
			return err
		}
		// The dialer sends nothing before this record (see dialLane).
		if _, err := lc.Write([]byte(laneReady)); err != nil {
			return fmt.Errorf("sending the ready record: %w", err)
		}
	}
	var hello [laneTokenLen + 1]byte
	if _, err := io.ReadFull(lc, hello[:]); err != nil {
		return fmt.Errorf("reading the token: %w", err)
	}
	tok, idx := laneToken(hello[:laneTokenLen]), int(hello[laneTokenLen])
	l.mu.Lock()
	var w *laneWait
	for k, x := range l.pending {
		if subtle.ConstantTimeCompare(k[:], tok[:]) == 1 {
			w = x
		}
	}
	switch {
	case w == nil:
		l.mu.Unlock()
		return errors.New("no lane offer has that token")
	case peer >= 0 && peer != w.peer:
		l.mu.Unlock()
		return fmt.Errorf("rank %d presented the token offered to rank %d", peer, w.peer)
	case idx >= len(w.conns) || w.conns[idx] != nil:
		l.mu.Unlock()
		return fmt.Errorf("lane %d of an offer of %d is not free", idx, len(w.conns))
	}
	// Claim the index before answering, so that a second connection with
	// the same token and index is refused.
	w.conns[idx] = lc
	l.mu.Unlock()
	_, err := lc.Write(w.tokD[:])
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.pending[tok] != w { // the offer gave up meanwhile and closed lc
		return errors.New("the lane offer gave up")
	}
	if err != nil {
		w.conns[idx] = nil
		return fmt.Errorf("answering: %w", err)
	}
	_ = tc.SetDeadline(time.Time{})
	w.got++
	if w.got == len(w.conns) {
		close(w.done)
	}
	return nil
}

func (l *laneListener) close() {
	l.mu.Lock()
	l.closed = true
	for c := range l.active {
		_ = c.Close() // ends a handshake or token read in progress
	}
	l.mu.Unlock()
	_ = l.ln.Close()
	l.wg.Wait()
	l.mu.Lock()
	for k, w := range l.pending {
		delete(l.pending, k)
		w.closeAll()
	}
	l.mu.Unlock()
}

func (w *laneWait) closeAll() {
	for i, c := range w.conns {
		if c != nil {
			_ = c.Close()
			w.conns[i] = nil
		}
	}
}

// OpenLanes gives link l its lanes. Both ends call it at the same point
// of the link's data stream, between operations; each waits for the
// other until ctx is done (and at most the handshake timeout). in reads
// the data stream: nil for l.Data itself, or the reader that already
// buffers it (bytes it read ahead are the stream's next ones: the peer's
// request may be among them). Afterwards frames may move on l.Lane.
func (m *QUICMesh) OpenLanes(ctx context.Context, l *Link, in io.Reader) error {
	lst := m.laneListener()
	if lst == nil {
		return fmt.Errorf("transport: rank %d has no lanes to open to rank %d", m.id.Rank, l.Peer)
	}
	if l.Lane != nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, lst.timeout)
	defer cancel()
	dl, _ := ctx.Deadline()
	_ = l.Data.SetReadDeadline(dl)
	_ = l.Data.SetWriteDeadline(dl)
	fired := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		l.Interrupt()
		close(fired)
	})
	defer func() {
		// An expiry's Interrupt runs on a goroutine of its own: let it
		// finish before clearing the deadlines, or it could land after
		// and fail the link's next operation.
		if !stop() {
			<-fired
		}
		l.Resume()
	}()
	var conns []*laneConn
	var err error
	if in == nil {
		in = l.Data
	}
	if m.id.Rank > l.Peer {
		conns, err = m.offerLanes(ctx, lst, l, in)
	} else {
		conns, err = m.dialLanes(ctx, lst, l, in)
	}
	if err == nil {
		err = l.attachLanes(conns)
	}
	if err != nil {
		return fmt.Errorf("transport: rank %d opening %s to rank %d: %w", m.id.Rank, lst.sec, l.Peer, err)
	}
	return nil
}

// laneRequest is the dialer's ask: magic, security, count.
func appendLaneRequest(b []byte, sec LaneSecurity, count int) []byte {
	return append(append(b, laneMagic...), byte(sec), byte(count))
}

// readLaneRequest reads and checks a request; it reads 6 bytes.
func readLaneRequest(r io.Reader) (sec LaneSecurity, count int, err error) {
	var b [len(laneMagic) + 2]byte
	if sec, count, err = readLaneHead(r, b[:], "request"); err != nil {
		return 0, 0, err
	}
	if count < 1 || count > MaxLanes {
		return 0, 0, fmt.Errorf("%w: it asks for %d lanes; want 1 to %d", ErrLaneProtocol, count, MaxLanes)
	}
	return sec, count, nil
}

// readLaneHead fills head (the magic, the security, the count, and
// whatever follows) from r and checks the magic and the security of a
// request or an offer (what).
func readLaneHead(r io.Reader, head []byte, what string) (LaneSecurity, int, error) {
	if _, err := io.ReadFull(r, head); err != nil {
		return 0, 0, fmt.Errorf("reading its %s: %w", what, err)
	}
	if string(head[:len(laneMagic)]) != laneMagic {
		return 0, 0, fmt.Errorf("%w: its %s does not start with %q (does every rank use the same Transport?)", ErrLaneProtocol, what, laneMagic)
	}
	sec := LaneSecurity(head[len(laneMagic)])
	if sec != LanesTLS && sec != LanesPlain {
		return 0, 0, fmt.Errorf("%w: its %s names lanes of unknown security %d", ErrLaneProtocol, what, sec)
	}
	return sec, int(head[len(laneMagic)+1]), nil
}

// ErrLaneProtocol reports a lane request or offer that breaks the
// protocol.
var ErrLaneProtocol = errors.New("lane protocol violation")

// ErrLanesUnreachable reports lanes that could not be made after both
// ends agreed on them: the connections did not arrive or did not
// authenticate (a firewall that passes only the QUIC port's UDP, a port
// forward for UDP only). The link's data stream is still in step: the
// link works without lanes.
var ErrLanesUnreachable = errors.New("lanes unreachable")

// laneOffer is the listener's answer.
type laneOffer struct {
	sec        LaneSecurity
	count      int
	addr       string
	tokA, tokD laneToken
}

func (o *laneOffer) append(b []byte) []byte {
	b = append(append(b, laneMagic...), byte(o.sec), byte(o.count), byte(len(o.addr)))
	b = append(b, o.addr...)
	b = append(b, o.tokA[:]...)
	return append(b, o.tokD[:]...)
}

// readLaneOffer reads and checks an offer: the magic, the security, a
// count of 0 to MaxLanes (0: the listener refuses), an address of at most
// 255 bytes that parses as host:port, and two tokens. It reads at most
// 4+3+255+64 bytes and allocates only the address.
func readLaneOffer(r io.Reader) (o laneOffer, err error) {
	var buf [len(laneMagic) + 3 + laneMaxAddr + 2*laneTokenLen]byte
	head := buf[:len(laneMagic)+3]
	if o.sec, o.count, err = readLaneHead(r, head, "offer"); err != nil {
		return o, err
	}
	if o.count > MaxLanes {
		return o, fmt.Errorf("%w: it offers %d lanes; at most %d", ErrLaneProtocol, o.count, MaxLanes)
	}
	n := int(head[6])
	rest := buf[len(head) : len(head)+n+2*laneTokenLen]
	if _, err := io.ReadFull(r, rest); err != nil {
		return o, fmt.Errorf("reading its offer: %w", err)
	}
	o.addr = string(rest[:n])
	if _, _, err := net.SplitHostPort(o.addr); err != nil {
		return o, fmt.Errorf("%w: the address %q: %v", ErrLaneProtocol, o.addr, err)
	}
	o.tokA, o.tokD = laneToken(rest[n:n+laneTokenLen]), laneToken(rest[n+laneTokenLen:])
	return o, nil
}

// offerLanes is the higher rank's half: read the request, offer, wait for
// the lanes.
func (m *QUICMesh) offerLanes(ctx context.Context, lst *laneListener, l *Link, in io.Reader) ([]*laneConn, error) {
	sec, want, err := readLaneRequest(in)
	if err != nil {
		return nil, fmt.Errorf("rank %d's request: %w", l.Peer, err)
	}
	o := laneOffer{sec: lst.sec, count: min(want, lst.count), addr: lst.addr}
	if sec != lst.sec {
		o.count = 0
	}
	if _, err := rand.Read(o.tokA[:]); err != nil {
		return nil, err
	}
	if _, err := rand.Read(o.tokD[:]); err != nil {
		return nil, err
	}
	w := &laneWait{peer: l.Peer, tokD: o.tokD, conns: make([]*laneConn, o.count), done: make(chan struct{})}
	if o.count > 0 {
		lst.mu.Lock()
		if lst.closed {
			lst.mu.Unlock()
			return nil, ErrMeshClosed
		}
		lst.pending[o.tokA] = w
		lst.mu.Unlock()
	}
	ok := false
	defer func() {
		lst.mu.Lock()
		delete(lst.pending, o.tokA)
		if !ok {
			w.closeAll()
		}
		lst.mu.Unlock()
	}()
	if _, err := l.Data.Write(o.append(nil)); err != nil {
		return nil, fmt.Errorf("sending the offer: %w", err)
	}
	if o.count == 0 {
		return nil, fmt.Errorf("%w: rank %d asks for %s, this rank has %s (every rank must use the same Transport)", ErrLaneProtocol, l.Peer, sec, lst.sec)
	}
	select {
	case <-w.done:
	case <-ctx.Done():
		lst.mu.Lock()
		got := w.got
		lst.mu.Unlock()
		return nil, fmt.Errorf("%w: rank %d connected %d of %d lanes: %w", ErrLanesUnreachable, l.Peer, got, o.count, context.Cause(ctx))
	case <-m.ctx.Done():
		return nil, ErrMeshClosed
	}
	lst.mu.Lock()
	conns := w.conns
	ok = true
	lst.mu.Unlock()
	return conns, nil
}

// dialLanes is the lower rank's half: ask, read the offer, connect.
func (m *QUICMesh) dialLanes(ctx context.Context, lst *laneListener, l *Link, in io.Reader) (conns []*laneConn, err error) {
	sec := lst.sec
	if _, err := l.Data.Write(appendLaneRequest(nil, sec, lst.count)); err != nil {
		return nil, fmt.Errorf("asking for lanes: %w", err)
	}
	o, err := readLaneOffer(in)
	if err != nil {
		return nil, fmt.Errorf("rank %d's offer: %w", l.Peer, err)
	}
	if o.sec != sec || o.count == 0 {
		return nil, fmt.Errorf("%w: rank %d has %s, this rank %s (every rank must use the same Transport)", ErrLaneProtocol, l.Peer, o.sec, sec)
	}
	defer func() {
		if err != nil {
			for _, c := range conns {
				_ = c.Close()
			}
			conns = nil
		}
	}()
	for i := range o.count {
		c, err := m.dialLane(ctx, l.Peer, o, i)
		if err != nil {
			return conns, fmt.Errorf("%w: lane %d of %d at %s: %w", ErrLanesUnreachable, i, o.count, o.addr, err)
		}
		conns = append(conns, c)
	}
	return conns, nil
}

func (m *QUICMesh) dialLane(ctx context.Context, peer int, o laneOffer, idx int) (*laneConn, error) {
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", o.addr)
	if err != nil {
		return nil, err
	}
	tc := nc.(*net.TCPConn)
	dl, _ := ctx.Deadline()
	_ = tc.SetDeadline(dl)
	lc := newLaneConn(tc)
	if o.sec == LanesTLS {
		conf := m.client.Clone()
		conf.ServerName = m.cfg.Peers[peer].Name
		conf.NextProtos = []string{LaneALPN}
		conf.VerifyConnection = func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("ringo: no server certificate")
			}
			return m.matches(cs.PeerCertificates[0], peer)
		}
		c := tls.Client(tc, conf)
		if err := c.HandshakeContext(ctx); err != nil {
			_ = tc.Close()
			return nil, fmt.Errorf("TLS handshake: %w", err)
		}
		if lc.sealed, err = newSealedConn(tc, c.ConnectionState(), true); err != nil {
			_ = tc.Close()
			return nil, err
		}
		// Nothing goes out before the listener's first record: it proves
		// the listener finished its handshake, so none of this side's
		// records can reach its TLS connection's read-ahead buffer.
		var ready [len(laneReady)]byte
		if _, err := io.ReadFull(lc, ready[:]); err != nil || string(ready[:]) != laneReady {
			_ = tc.Close()
			return nil, fmt.Errorf("reading the ready record: %q, %v", ready, err)
		}
	}
	if err := presentLaneToken(lc, o.tokA, o.tokD, idx); err != nil {
		_ = lc.Close()
		return nil, err
	}
	_ = tc.SetDeadline(time.Time{})
	return lc, nil
}

// presentLaneToken is the dialling side's challenge-response: it sends
// tokA and the lane's index and wants tokD back, and says which failed.
func presentLaneToken(conn io.ReadWriter, tokA, tokD laneToken, idx int) error {
	var hello [laneTokenLen + 1]byte
	copy(hello[:], tokA[:])
	hello[laneTokenLen] = byte(idx)
	if _, err := conn.Write(hello[:]); err != nil {
		return fmt.Errorf("sending the token: %w", err)
	}
	var got laneToken
	if _, err := io.ReadFull(conn, got[:]); err != nil {
		return fmt.Errorf("reading the answer: %w", err)
	}
	if subtle.ConstantTimeCompare(got[:], tokD[:]) != 1 {
		return errors.New("the listener answered with the wrong token")
	}
	return nil
}

// attachLanes makes conns the link's lane stream, unless the link was
// torn down meanwhile.
func (l *Link) attachLanes(conns []*laneConn) error {
	l.laneMu.Lock()
	defer l.laneMu.Unlock()
	if l.torn {
		for _, c := range conns {
			_ = c.Close()
		}
		return &ClosedError{Reason: "the link was torn down"}
	}
	l.lanes = conns
	if len(conns) == 1 {
		l.Lane = conns[0]
		return nil
	}
	s := make([]Stream, len(conns))
	for i, c := range conns {
		s[i] = c
	}
	st := newStriped(s)
	st.parallelRead = conns[0].sealed != nil // decryption happens in Read
	l.Lane = st
	return nil
}

// DropLanes closes the link's lanes, if it has any; the link goes on
// without them.
func (l *Link) DropLanes() {
	l.laneMu.Lock()
	for _, c := range l.lanes {
		_ = c.Close()
	}
	st, _ := l.Lane.(*striped)
	l.lanes, l.Lane = nil, nil
	l.laneMu.Unlock()
	if st != nil {
		st.stop() // its workers end once their closed lanes fail
	}
}

// CloseLanes stops the mesh's lane listener; links keep the lanes they
// have.
func (m *QUICMesh) CloseLanes() {
	m.mu.Lock()
	lst := m.lanes
	m.lanes = nil
	m.mu.Unlock()
	if lst != nil {
		lst.close()
	}
}

// Lanes is the number of lanes of the link (0 without).
func (l *Link) Lanes() int {
	l.laneMu.Lock()
	defer l.laneMu.Unlock()
	return len(l.lanes)
}

// laneConn is one lane: a TCP connection, with sealed records on it
// (sealed.go) for LanesTLS.
type laneConn struct {
	tcp    *net.TCPConn
	sealed *sealedConn // nil for plaintext lanes
}

func newLaneConn(tc *net.TCPConn) *laneConn {
	_ = tc.SetNoDelay(true)
	_ = tc.SetReadBuffer(laneSockBuf)
	_ = tc.SetWriteBuffer(laneSockBuf)
	_ = tc.SetKeepAlive(true)
	return &laneConn{tcp: tc}
}

func (c *laneConn) Read(p []byte) (int, error) {
	if c.sealed == nil {
		return c.tcp.Read(p)
	}
	return c.sealed.Read(p)
}

func (c *laneConn) Write(p []byte) (int, error) {
	if c.sealed == nil {
		return c.tcp.Write(p)
	}
	return c.sealed.Write(p)
}

func (c *laneConn) SetReadDeadline(t time.Time) error  { return c.tcp.SetReadDeadline(t) }
func (c *laneConn) SetWriteDeadline(t time.Time) error { return c.tcp.SetWriteDeadline(t) }

// closeWrite ends the lane in an orderly way: the end record, then FIN.
func (c *laneConn) closeWrite() {
	if c.sealed == nil {
		_ = c.tcp.CloseWrite()
		return
	}
	_ = c.tcp.SetWriteDeadline(time.Now().Add(controlWriteTimeout))
	_ = c.sealed.closeWrite()
}

func (c *laneConn) Close() error { return c.tcp.Close() }
