package transport

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/ringo-ml/ringo/internal/wire"
)

// ALPN is the TLS application protocol of ringo's QUIC links.
const ALPN = "ringo/1"

// Peer is how a rank finds and authenticates one member of its group.
type Peer struct {
	// Addr is the member's UDP address, host:port.
	Addr string
	// Name is the member's TLS identity: a DNS name its certificate holds.
	Name string
	// CertSHA256, when set, pins the member's leaf certificate: only the
	// certificate with this SHA-256 fingerprint (of its DER bytes) is
	// accepted. With pins on every member and no RootCAs, no CA is needed.
	CertSHA256 []byte
}

// QUICConfig configures a QUIC mesh.
type QUICConfig struct {
	Identity Identity
	Peers    []Peer // indexed by rank; Peers[Identity.Rank] is this rank
	// Conn is this rank's UDP socket, already bound. The mesh owns it from
	// now on and closes it on Close, unless KeepConn is set (a later mesh,
	// for the group's next epoch, reuses it).
	Conn     *net.UDPConn
	KeepConn bool
	// TLS holds this rank's certificate (Certificates) and the group's CA
	// (RootCAs; also used to verify clients). It is cloned, not modified.
	TLS *tls.Config
	// IdleTimeout is how long a silent peer is tolerated before its link is
	// declared dead (keep-alives flow at a fifth of it). Default 10 s.
	IdleTimeout time.Duration
	// Channels is how many QUIC connections a link stripes its data stream
	// over (at most wire.MaxChannels; 0 or 1: one). A QUIC connection
	// encrypts and sends on one goroutine, so one moves about a core's
	// worth of data; each side offers its Channels and a link uses the
	// fewer. The control stream stays on the first connection.
	Channels int
}

// QUICMesh is a mesh over QUIC.
type QUICMesh struct {
	*base
	cfg    QUICConfig
	tr     *quic.Transport
	ln     *quic.Listener
	qconf  *quic.Config
	server *tls.Config
	client *tls.Config
	lanes  *laneListener // nil without lanes
}

var _ Mesh = (*QUICMesh)(nil)

// NewQUIC starts a rank's QUIC endpoint: it listens on cfg.Conn at once and
// dials peers on first use.
func NewQUIC(cfg QUICConfig, events Events) (*QUICMesh, error) {
	id := cfg.Identity
	if len(cfg.Peers) != id.World {
		return nil, fmt.Errorf("transport: %d peers given for a world of %d", len(cfg.Peers), id.World)
	}
	if cfg.Conn == nil {
		return nil, errors.New("transport: no UDP socket")
	}
	if cfg.TLS == nil || len(cfg.TLS.Certificates) == 0 {
		return nil, errors.New("transport: no TLS certificate for this rank")
	}
	pinned := true
	for i, p := range cfg.Peers {
		if p.Name == "" {
			return nil, fmt.Errorf("transport: rank %d has no TLS name", i)
		}
		if len(p.CertSHA256) == 0 {
			pinned = false
		} else if len(p.CertSHA256) != sha256.Size {
			return nil, fmt.Errorf("transport: rank %d's certificate pin is %d bytes, want %d", i, len(p.CertSHA256), sha256.Size)
		}
		for j := range i {
			if cfg.Peers[j].Name == p.Name {
				return nil, fmt.Errorf("transport: ranks %d and %d share the TLS name %q", j, i, p.Name)
			}
		}
	}
	if cfg.TLS.RootCAs == nil && !pinned {
		return nil, errors.New("transport: no CA (TLS.RootCAs) and not every member's certificate is pinned: peers cannot be authenticated")
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = 10 * time.Second
	}
	if cfg.Channels < 0 || cfg.Channels > wire.MaxChannels {
		return nil, fmt.Errorf("transport: %d channels per link; want 1 to %d", cfg.Channels, wire.MaxChannels)
	}
	m := &QUICMesh{cfg: cfg}
	m.base = newBase(id, events, m.dial)
	m.base.channels = max(cfg.Channels, 1)
	m.qconf = &quic.Config{
		HandshakeIdleTimeout:           5 * time.Second,
		MaxIdleTimeout:                 cfg.IdleTimeout,
		KeepAlivePeriod:                cfg.IdleTimeout / 5,
		InitialStreamReceiveWindow:     2 << 20,
		MaxStreamReceiveWindow:         16 << 20,
		InitialConnectionReceiveWindow: 3 << 20,
		MaxConnectionReceiveWindow:     24 << 20,
		MaxIncomingStreams:             2, // control and data
		MaxIncomingUniStreams:          -1,
	}
	server := cfg.TLS.Clone()
	server.MinVersion = tls.VersionTLS13
	server.NextProtos = []string{ALPN}
	server.ClientAuth = tls.RequireAndVerifyClientCert
	server.ClientCAs = cfg.TLS.RootCAs
	server.VerifyConnection = func(cs tls.ConnectionState) error {
		_, err := m.identify(cs)
		return err
	}
	client := cfg.TLS.Clone()
	client.MinVersion = tls.VersionTLS13
	client.NextProtos = []string{ALPN}
	if pinned && cfg.TLS.RootCAs == nil {
		// Pinned identities: the pin is the check, so skip the CA chain.
		server.ClientAuth = tls.RequireAnyClientCert
		client.InsecureSkipVerify = true
	}
	m.client = client
	m.server = server
	m.tr = &quic.Transport{Conn: cfg.Conn}
	ln, err := m.tr.Listen(server, m.qconf)
	if err != nil {
		_ = m.tr.Close()
		if !cfg.KeepConn {
			_ = cfg.Conn.Close()
		}
		return nil, fmt.Errorf("transport: listening on %s: %w", cfg.Conn.LocalAddr(), err)
	}
	m.ln = ln
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		m.acceptLoop()
	}()
	return m, nil
}

// Addr is the mesh's UDP address.
func (m *QUICMesh) Addr() net.Addr { return m.cfg.Conn.LocalAddr() }

// identify finds which lower-ranked member a client certificate belongs to.
// It runs inside the TLS handshake, so a stranger is refused before any
// stream is opened or frame read.
func (m *QUICMesh) identify(cs tls.ConnectionState) (int, error) {
	if len(cs.PeerCertificates) == 0 {
		return -1, errors.New("ringo: no client certificate")
	}
	leaf := cs.PeerCertificates[0]
	for r := 0; r < m.id.Rank; r++ {
		if m.matches(leaf, r) == nil {
			return r, nil
		}
	}
	return -1, fmt.Errorf("ringo: certificate %q (SANs %v) is not a lower-ranked member of group %q", leaf.Subject.CommonName, leaf.DNSNames, m.id.Group)
}

// matches checks leaf against rank r's identity: its name, and its pin if
// one is set.
func (m *QUICMesh) matches(leaf *x509.Certificate, r int) error {
	p := m.cfg.Peers[r]
	if err := leaf.VerifyHostname(p.Name); err != nil {
		return fmt.Errorf("ringo: certificate is not rank %d's (%q): %w", r, p.Name, err)
	}
	if len(p.CertSHA256) > 0 {
		sum := sha256.Sum256(leaf.Raw)
		if !bytes.Equal(sum[:], p.CertSHA256) {
			return fmt.Errorf("ringo: certificate for rank %d (%q) does not match its pinned fingerprint", r, p.Name)
		}
	}
	return nil
}

func (m *QUICMesh) dial(ctx context.Context, peer int) (rawConn, error) {
	addr, err := net.ResolveUDPAddr("udp", m.cfg.Peers[peer].Addr)
	if err != nil {
		return nil, fmt.Errorf("transport: rank %d's address: %w", peer, err)
	}
	tc := m.client.Clone()
	tc.ServerName = m.cfg.Peers[peer].Name
	tc.VerifyConnection = func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) == 0 {
			return errors.New("ringo: no server certificate")
		}
		return m.matches(cs.PeerCertificates[0], peer)
	}
	conn, err := m.tr.Dial(ctx, addr, tc, m.qconf)
	if err != nil {
		return nil, fmt.Errorf("transport: dialing rank %d at %s: %w", peer, addr, err)
	}
	ctrl, err := conn.OpenStreamSync(ctx)
	if err != nil {
		_ = conn.CloseWithError(quic.ApplicationErrorCode(wire.CodeProtocol), "no stream")
		return nil, fmt.Errorf("transport: opening a stream to rank %d: %w", peer, err)
	}
	data, err := conn.OpenStreamSync(ctx)
	if err != nil {
		_ = conn.CloseWithError(quic.ApplicationErrorCode(wire.CodeProtocol), "no stream")
		return nil, fmt.Errorf("transport: opening a stream to rank %d: %w", peer, err)
	}
	return &quicConn{conn: conn, c: qstream{ctrl}, d: qstream{data}}, nil
}

func (m *QUICMesh) acceptLoop() {
	for {
		conn, err := m.ln.Accept(m.ctx)
		if err != nil {
			return // listener closed
		}
		peer, err := m.identify(conn.ConnectionState().TLS)
		if err != nil { // cannot happen: VerifyConnection ran
			_ = conn.CloseWithError(quic.ApplicationErrorCode(wire.CodeProtocol), err.Error())
			continue
		}
		m.mu.Lock()
		if m.closing {
			m.mu.Unlock()
			_ = conn.CloseWithError(quic.ApplicationErrorCode(wire.CodeClosed), "closing")
			continue
		}
		m.wg.Add(1)
		m.mu.Unlock()
		go func() {
			defer m.wg.Done()
			ctx, cancel := context.WithTimeout(m.ctx, HandshakeTimeout)
			defer cancel()
			ctrl, err := conn.AcceptStream(ctx)
			if err != nil {
				_ = conn.CloseWithError(quic.ApplicationErrorCode(wire.CodeProtocol), "no control stream")
				return
			}
			data, err := conn.AcceptStream(ctx)
			if err != nil {
				_ = conn.CloseWithError(quic.ApplicationErrorCode(wire.CodeProtocol), "no data stream")
				return
			}
			m.accepted(&quicConn{conn: conn, c: qstream{ctrl}, d: qstream{data}}, peer)
		}()
	}
}

// Close implements Mesh.
func (m *QUICMesh) Close(linger time.Duration) error {
	m.shutdown(linger)
	_ = m.ln.Close()
	m.mu.Lock()
	lanes := m.lanes
	m.mu.Unlock()
	if lanes != nil {
		lanes.close()
	}
	m.wg.Wait()
	_ = m.tr.Close()
	if !m.cfg.KeepConn {
		_ = m.cfg.Conn.Close()
	}
	return nil
}

type quicConn struct {
	conn *quic.Conn
	c, d qstream
}

func (c *quicConn) ctrl() Stream { return c.c }
func (c *quicConn) data() Stream { return c.d }

func (c *quicConn) closeWrite() {
	_ = c.c.s.Close()
	_ = c.d.s.Close()
}

func (c *quicConn) teardown(code wire.Code, reason string) {
	if len(reason) > wire.MaxReason {
		reason = reason[:wire.MaxReason]
	}
	_ = c.conn.CloseWithError(quic.ApplicationErrorCode(code), reason)
}

// qstream translates quic-go's errors into this package's.
type qstream struct{ s *quic.Stream }

func (s qstream) Read(b []byte) (int, error) {
	n, err := s.s.Read(b)
	if err != nil && err != io.EOF {
		err = translate(err)
	}
	return n, err
}

func (s qstream) Write(b []byte) (int, error) {
	n, err := s.s.Write(b)
	if err != nil {
		err = translate(err)
	}
	return n, err
}

func (s qstream) SetReadDeadline(t time.Time) error  { return s.s.SetReadDeadline(t) }
func (s qstream) SetWriteDeadline(t time.Time) error { return s.s.SetWriteDeadline(t) }

func translate(err error) error {
	var ae *quic.ApplicationError
	if errors.As(err, &ae) {
		return &ClosedError{Remote: ae.Remote, Code: wire.Code(ae.ErrorCode), Reason: ae.ErrorMessage}
	}
	var it *quic.IdleTimeoutError
	if errors.As(err, &it) {
		return fmt.Errorf("peer silent past the idle timeout: %w", err)
	}
	return err
}

// ListenUDP binds a UDP socket for a QUIC mesh at addr (host:port; port 0
// for any).
func ListenUDP(addr string) (*net.UDPConn, error) {
	a, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return nil, err
	}
	conn, err := net.ListenUDP("udp", a)
	if err != nil {
		return nil, fmt.Errorf("binding %s: %w", addr, err)
	}
	return conn, nil
}
