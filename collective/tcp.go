package collective

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/ringo-ml/ringo/internal/transport"
)

// The TCP data path (Transport: TransportTCP).
//
// Links are made over QUIC as always — mutual TLS, the peer's certificate
// checked against the view — and then each link's data stream moves to a
// TCP connection that the link itself authenticates: the higher rank of
// the pair (the one that accepts QUIC connections) listens on TCP and
// sends, over the encrypted QUIC link, its TCP address and two fresh
// random tokens. The lower rank connects and presents the first token;
// the listener drops any connection that does not present a token it is
// waiting for within tcpAuthTimeout, before reading anything else, and
// answers a good one with the second token, which the dialer checks in
// turn. Only then does the connection carry frames. Control frames
// (aborts, pings, byes) stay on QUIC.
//
// TCP is authenticated but not encrypted: a listener on the path can read
// tensors and, without the tokens, cannot inject or take over a
// connection that has already started — but TCP offers no integrity
// beyond its checksum. Use it only on networks you trust, as Gloo, NCCL's
// socket transport and MPI do; QUIC stays the default.

const (
	tcpTokenLen    = 32
	tcpMagic       = "RTCP"
	tcpMaxAddr     = 255
	tcpAuthTimeout = 10 * time.Second
	tcpSockBuf     = 4 << 20
)

type tcpToken = [tcpTokenLen]byte

// tcpPath is a communicator's TCP listener and the connections it expects.
type tcpPath struct {
	ln      *net.TCPListener
	mu      sync.Mutex
	pending map[tcpToken]chan *net.TCPConn
	closed  bool
	wg      sync.WaitGroup
}

// tcpListen starts the TCP listener on this rank's host.
func (c *Communicator) tcpListen() error {
	host, _, err := net.SplitHostPort(c.selfAddr)
	if err != nil {
		return fmt.Errorf("collective: this rank's address %q: %w", c.selfAddr, err)
	}
	ln, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.ParseIP(host)})
	if err != nil {
		return fmt.Errorf("collective: TCP listener on %s: %w", host, err)
	}
	t := &tcpPath{ln: ln, pending: make(map[tcpToken]chan *net.TCPConn)}
	c.tcp = t
	c.log.Warn("collective: tensor data moves over TCP: authenticated at connect, not encrypted; use it only on a trusted network",
		"listen", ln.Addr().String())
	t.wg.Add(1)
	go func() {
		defer t.wg.Done()
		t.acceptLoop(c)
	}()
	return nil
}

func (t *tcpPath) acceptLoop(c *Communicator) {
	for {
		conn, err := t.ln.AcceptTCP()
		if err != nil {
			return // closed
		}
		t.mu.Lock()
		if t.closed {
			t.mu.Unlock()
			_ = conn.Close()
			return
		}
		t.wg.Add(1)
		t.mu.Unlock()
		go func() {
			defer t.wg.Done()
			t.admit(c, conn)
		}()
	}
}

// admit reads a connection's token and hands the connection to the link
// waiting for it, or drops it.
func (t *tcpPath) admit(c *Communicator, conn *net.TCPConn) {
	var tok tcpToken
	_ = conn.SetReadDeadline(time.Now().Add(tcpAuthTimeout))
	_, err := io.ReadFull(conn, tok[:])
	_ = conn.SetReadDeadline(time.Time{})
	found := false
	if err == nil {
		// The hand-over happens under the lock, so a waiter that gives up
		// (and drains its channel under the lock) never leaks a connection.
		t.mu.Lock()
		for k, ch := range t.pending {
			if subtle.ConstantTimeCompare(k[:], tok[:]) == 1 {
				delete(t.pending, k)
				ch <- conn // buffered, one sender
				found = true
			}
		}
		t.mu.Unlock()
	}
	if !found {
		c.log.Warn("collective: dropped a TCP connection that did not authenticate", "from", conn.RemoteAddr().String(), "err", err)
		_ = conn.Close()
	}
}

func (t *tcpPath) close() {
	t.mu.Lock()
	t.closed = true
	t.mu.Unlock()
	_ = t.ln.Close()
	t.wg.Wait()
	t.mu.Lock()
	for k, ch := range t.pending {
		delete(t.pending, k)
		select {
		case conn := <-ch:
			_ = conn.Close()
		default:
		}
	}
	t.mu.Unlock()
}

func tuneTCP(conn *net.TCPConn) {
	_ = conn.SetNoDelay(true)
	_ = conn.SetReadBuffer(tcpSockBuf)
	_ = conn.SetWriteBuffer(tcpSockBuf)
	_ = conn.SetKeepAlive(true)
}

// upgradeTCP moves link l's data stream onto an authenticated TCP
// connection. Both ends of the link call it, before the link carries any
// operation.
func (c *Communicator) upgradeTCP(ctx context.Context, l *transport.Link) error {
	ctx, cancel := context.WithTimeout(ctx, tcpAuthTimeout)
	defer cancel()
	dl, _ := ctx.Deadline()
	_ = l.Data.SetReadDeadline(dl)
	_ = l.Data.SetWriteDeadline(dl)
	defer l.Resume()
	fail := func(err error) error {
		return fmt.Errorf("collective: rank %d moving its link to rank %d onto TCP: %w", c.rank, l.Peer, err)
	}
	if c.rank > l.Peer {
		return c.acceptTCP(ctx, l, fail)
	}
	return c.dialTCP(ctx, l, fail)
}

func (c *Communicator) acceptTCP(ctx context.Context, l *transport.Link, fail func(error) error) error {
	var tokA, tokD tcpToken
	if _, err := rand.Read(tokA[:]); err != nil {
		return fail(err)
	}
	if _, err := rand.Read(tokD[:]); err != nil {
		return fail(err)
	}
	t := c.tcp
	ch := make(chan *net.TCPConn, 1)
	t.mu.Lock()
	t.pending[tokA] = ch
	t.mu.Unlock()
	defer func() {
		t.mu.Lock()
		delete(t.pending, tokA)
		select {
		case conn := <-ch: // arrived as this wait gave up
			_ = conn.Close()
		default:
		}
		t.mu.Unlock()
	}()
	addr := t.ln.Addr().String()
	msg := make([]byte, 0, len(tcpMagic)+1+len(addr)+2*tcpTokenLen)
	msg = append(msg, tcpMagic...)
	msg = append(msg, byte(len(addr)))
	msg = append(msg, addr...)
	msg = append(msg, tokA[:]...)
	msg = append(msg, tokD[:]...)
	if _, err := l.Data.Write(msg); err != nil {
		return fail(fmt.Errorf("sending the offer: %w", err))
	}
	select {
	case conn := <-ch:
		_ = conn.SetWriteDeadline(time.Now().Add(tcpAuthTimeout))
		if _, err := conn.Write(tokD[:]); err != nil {
			_ = conn.Close()
			return fail(fmt.Errorf("answering: %w", err))
		}
		_ = conn.SetWriteDeadline(time.Time{})
		tuneTCP(conn)
		l.UseTCP(conn)
		return nil
	case <-ctx.Done():
		return fail(fmt.Errorf("rank %d did not connect: %w", l.Peer, context.Cause(ctx)))
	case <-c.life.Done():
		return fail(ErrClosed)
	}
}

// readTCPOffer reads and checks an offer: the magic, an address of at
// most 255 bytes that parses as host:port, and two tokens. It reads at
// most 4+1+255+64 bytes and allocates only the address.
func readTCPOffer(r io.Reader) (addr string, tokA, tokD tcpToken, err error) {
	var buf [len(tcpMagic) + 1 + tcpMaxAddr + 2*tcpTokenLen]byte
	head := buf[:len(tcpMagic)+1]
	if _, err := io.ReadFull(r, head); err != nil {
		return "", tokA, tokD, fmt.Errorf("reading it: %w", err)
	}
	if string(head[:len(tcpMagic)]) != tcpMagic {
		return "", tokA, tokD, fmt.Errorf("%w: it does not start with %q", ErrProtocol, tcpMagic)
	}
	n := int(head[len(tcpMagic)])
	rest := buf[len(head) : len(head)+n+2*tcpTokenLen]
	if _, err := io.ReadFull(r, rest); err != nil {
		return "", tokA, tokD, fmt.Errorf("reading it: %w", err)
	}
	addr = string(rest[:n])
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return "", tokA, tokD, fmt.Errorf("%w: the address %q: %v", ErrProtocol, addr, err)
	}
	return addr, tcpToken(rest[n : n+tcpTokenLen]), tcpToken(rest[n+tcpTokenLen:]), nil
}

func (c *Communicator) dialTCP(ctx context.Context, l *transport.Link, fail func(error) error) error {
	addr, tokA, tokD, err := readTCPOffer(l.Data)
	if err != nil {
		return fail(fmt.Errorf("rank %d's offer: %w", l.Peer, err))
	}
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return fail(fmt.Errorf("connecting to %s: %w", addr, err))
	}
	conn := nc.(*net.TCPConn)
	dl, _ := ctx.Deadline()
	_ = conn.SetDeadline(dl)
	if err := presentToken(conn, tokA, tokD); err != nil {
		_ = conn.Close()
		return fail(fmt.Errorf("authenticating to %s: %w", addr, err))
	}
	_ = conn.SetDeadline(time.Time{})
	tuneTCP(conn)
	l.UseTCP(conn)
	return nil
}

// presentToken is the dialling side's challenge-response: it sends tokA
// and wants tokD back, and says which failed (a write or read error, or
// the wrong answer).
func presentToken(conn io.ReadWriter, tokA, tokD tcpToken) error {
	if _, err := conn.Write(tokA[:]); err != nil {
		return fmt.Errorf("sending the token: %w", err)
	}
	var got tcpToken
	if _, err := io.ReadFull(conn, got[:]); err != nil {
		return fmt.Errorf("reading the answer: %w", err)
	}
	if subtle.ConstantTimeCompare(got[:], tokD[:]) != 1 {
		return errors.New("the listener answered with the wrong token")
	}
	return nil
}

// TCPAddr is the address of this rank's TCP listener when the data path
// is TCP (open it in firewalls beside the QUIC port), and "" otherwise.
func (c *Communicator) TCPAddr() string {
	if c.tcp == nil {
		return ""
	}
	return c.tcp.ln.Addr().String()
}
