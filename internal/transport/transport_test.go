package transport

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/quic-go/quic-go"
	"go.uber.org/goleak"

	"github.com/ringo-ml/ringo/internal/pki"
	"github.com/ringo-ml/ringo/internal/wire"
)

func TestMain(m *testing.M) {
	if os.Getenv(streamPeerEnv) != "" {
		os.Exit(streamPeer()) // the other process of BenchmarkQUICStreamPair
	}
	goleak.VerifyTestMain(m)
}

type recorder struct {
	mu     sync.Mutex
	aborts []wire.Abort
	downs  []error
}

func (r *recorder) PeerAbort(peer int, a *wire.Abort) {
	r.mu.Lock()
	r.aborts = append(r.aborts, *a)
	r.mu.Unlock()
}

func (r *recorder) PeerDown(peer int, err error) {
	r.mu.Lock()
	r.downs = append(r.downs, err)
	r.mu.Unlock()
}

func udp(t testing.TB) *net.UDPConn {
	t.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// quicPair starts the QUIC meshes of a world of two.
func quicPair(t *testing.T, ca *pki.CA) (m [2]*QUICMesh, ev [2]*recorder) {
	t.Helper()
	return quicPairChannels(t, ca, [2]int{})
}

// quicPairChannels starts the QUIC meshes of a world of two, rank r
// offering channels[r] connections per link.
func quicPairChannels(t *testing.T, ca *pki.CA, channels [2]int) (m [2]*QUICMesh, ev [2]*recorder) {
	t.Helper()
	conns := [2]*net.UDPConn{udp(t), udp(t)}
	peers := []Peer{{Addr: conns[0].LocalAddr().String(), Name: pki.RankName(0)}, {Addr: conns[1].LocalAddr().String(), Name: pki.RankName(1)}}
	for r := range 2 {
		tc, err := ca.TLSConfig(pki.RankName(r))
		if err != nil {
			t.Fatal(err)
		}
		ev[r] = &recorder{}
		m[r], err = NewQUIC(QUICConfig{Identity: Identity{Group: "g", World: 2, Rank: r}, Peers: peers, Conn: conns[r], TLS: tc, Channels: channels[r]}, ev[r])
		if err != nil {
			t.Fatal(err)
		}
	}
	return m, ev
}

// linkPair makes the link between the two ranks of m, both ends at once.
func linkPair(ctx context.Context, m [2]*QUICMesh) (links [2]*Link, errs [2]error) {
	var wg sync.WaitGroup
	for r := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			links[r], errs[r] = m[r].Link(ctx, 1-r)
		}()
	}
	wg.Wait()
	return links, errs
}

func TestQUICLinkAndAbort(t *testing.T) {
	ca, err := pki.New("g", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer ca.Close()
	m, ev := quicPair(t, ca)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	links, errs := linkPair(ctx, m)
	if errs[0] != nil || errs[1] != nil {
		t.Fatal(errs)
	}
	msg := []byte("hello over the data stream")
	if _, err := links[0].Data.Write(msg); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(links[1].Data, got); err != nil || string(got) != string(msg) {
		t.Fatalf("read %q, %v", got, err)
	}
	if err := links[1].SendAbort(&wire.Abort{Rank: 1, Code: wire.CodeMismatch, Reason: "because"}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		ev[0].mu.Lock()
		n := len(ev[0].aborts)
		ev[0].mu.Unlock()
		if n == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("abort not delivered")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if a := ev[0].aborts[0]; a.Code != wire.CodeMismatch || a.Reason != "because" || a.Rank != 1 {
		t.Fatalf("abort %+v", a)
	}
	// Ping is answered by the peer's control reader.
	pctx, pcancel := context.WithTimeout(ctx, 5*time.Second)
	for range 3 {
		if err := links[0].Ping(pctx); err != nil {
			t.Fatal(err)
		}
	}
	pcancel()
	// Interrupt makes a blocked read fail at once.
	go func() {
		time.Sleep(50 * time.Millisecond)
		links[1].Interrupt()
	}()
	if _, err := links[1].Data.Read(got); err == nil {
		t.Fatal("read after Interrupt succeeded")
	}
	m[0].Close(0)
	m[1].Close(0)
}

// TestQUICRefusesStrangers dials a rank with certificates it must refuse:
// one from another CA under a member's name, and one from the group's CA
// for a name outside the view. The handshake fails and the rank reads no
// frame; a member's own certificate is accepted.
func TestQUICRefusesStrangers(t *testing.T) {
	ca, err := pki.New("g", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer ca.Close()
	other, err := pki.New("other", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	m, ev := quicPair(t, ca)
	defer m[0].Close(0)
	defer m[1].Close(0)
	target := m[1].Addr()

	dial := func(tc *tls.Config) error {
		tc = tc.Clone()
		tc.InsecureSkipVerify = true // only the listener's checks are under test
		tc.NextProtos = []string{ALPN}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		conn, err := quic.DialAddr(ctx, target.String(), tc, &quic.Config{HandshakeIdleTimeout: 2 * time.Second})
		if err != nil {
			return err
		}
		defer conn.CloseWithError(0, "")
		s, err := conn.OpenStreamSync(ctx)
		if err != nil {
			return err
		}
		enc := wire.NewEncoder()
		if _, err := s.Write(enc.EncodeHello(&wire.Hello{Version: wire.Version, Group: "g", World: 2, Rank: 0})); err != nil {
			return err
		}
		// A refused connection is closed by the listener; wait for that.
		buf := make([]byte, 1)
		_ = s.SetReadDeadline(time.Now().Add(2 * time.Second))
		_, err = s.Read(buf)
		return err
	}
	strangerCA, err := other.TLSConfig(pki.RankName(0))
	if err != nil {
		t.Fatal(err)
	}
	strangerName, err := ca.TLSConfig("rank-9.ringo.local")
	if err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]*tls.Config{"other CA": strangerCA, "unknown name": strangerName} {
		err := dial(tc)
		var te *quic.TransportError
		if !errors.As(err, &te) || !te.ErrorCode.IsCryptoError() {
			t.Errorf("%s: got %v, want a TLS handshake failure", name, err)
		}
	}
	if n := m[1].framesRead.Load(); n != 0 {
		t.Errorf("the rank read %d frames from strangers", n)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if _, err := m[1].Link(ctx, 0); err == nil {
		t.Error("a stranger became rank 0's link")
	}
	if len(ev[1].aborts)+len(ev[1].downs) != 0 {
		t.Errorf("events from strangers: %v %v", ev[1].aborts, ev[1].downs)
	}
}

func TestPipe(t *testing.T) {
	a, b := newPipePair(16)
	msg := make([]byte, 1000)
	for i := range msg {
		msg[i] = byte(i)
	}
	done := make(chan error, 1)
	go func() {
		_, err := a.Write(msg)
		done <- err
	}()
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(b, got); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	for i := range got {
		if got[i] != msg[i] {
			t.Fatalf("byte %d", i)
		}
	}
	_ = b.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	if _, err := b.Read(got); !isTimeout(err) {
		t.Fatalf("read past deadline: %v", err)
	}
	a.out.closeWrite(io.EOF)
	_ = b.SetReadDeadline(time.Time{})
	if _, err := b.Read(got); err != io.EOF {
		t.Fatalf("read after close: %v", err)
	}
}

// TestQUICPinned authenticates peers by certificate fingerprint alone (no
// CA), as a rendezvous-formed group does: the pinned certificates link; a
// different certificate under the same name is refused.
func TestQUICPinned(t *testing.T) {
	var certs [3]tls.Certificate
	var pins [3][32]byte
	for i := range certs {
		var err error
		if certs[i], pins[i], err = pki.Ephemeral(pki.RankName(i%2), 0); err != nil {
			t.Fatal(err)
		}
	}
	conns := [2]*net.UDPConn{udp(t), udp(t)}
	peers := []Peer{
		{Addr: conns[0].LocalAddr().String(), Name: pki.RankName(0), CertSHA256: pins[0][:]},
		{Addr: conns[1].LocalAddr().String(), Name: pki.RankName(1), CertSHA256: pins[1][:]},
	}
	var m [2]*QUICMesh
	for r := range 2 {
		var err error
		m[r], err = NewQUIC(QUICConfig{Identity: Identity{Group: "g", World: 2, Rank: r}, Peers: peers,
			Conn: conns[r], TLS: &tls.Config{Certificates: []tls.Certificate{certs[r]}}}, &recorder{})
		if err != nil {
			t.Fatal(err)
		}
		defer m[r].Close(0)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	errs := make(chan error, 2)
	for r := range 2 {
		go func() {
			_, err := m[r].Link(ctx, 1-r)
			errs <- err
		}()
	}
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	// Another certificate for rank 0's name is not rank 0.
	tc := &tls.Config{Certificates: []tls.Certificate{certs[2]}, InsecureSkipVerify: true, NextProtos: []string{ALPN}}
	dctx, dcancel := context.WithTimeout(ctx, 5*time.Second)
	defer dcancel()
	conn, err := quic.DialAddr(dctx, m[1].Addr().String(), tc, &quic.Config{HandshakeIdleTimeout: 2 * time.Second})
	if err == nil {
		s, serr := conn.OpenStreamSync(dctx)
		if serr == nil {
			_, _ = s.Write([]byte{1})
			_ = s.SetReadDeadline(time.Now().Add(2 * time.Second))
			_, err = s.Read(make([]byte, 1))
		} else {
			err = serr
		}
		conn.CloseWithError(0, "")
	}
	var te *quic.TransportError
	if !errors.As(err, &te) || !te.ErrorCode.IsCryptoError() {
		t.Fatalf("unpinned certificate: got %v, want a TLS handshake failure", err)
	}
}

// TestOtherViewRefused: two ranks with every credential right, at one
// epoch, link when they state one view identity and never when their
// views differ (other members: the two sides of a split).
func TestOtherViewRefused(t *testing.T) {
	try := func(views [2]uint64, wait time.Duration) [2]error {
		ca, err := pki.New("g", 0)
		if err != nil {
			t.Fatal(err)
		}
		conns := [2]*net.UDPConn{udp(t), udp(t)}
		peers := []Peer{{Addr: conns[0].LocalAddr().String(), Name: pki.RankName(0)}, {Addr: conns[1].LocalAddr().String(), Name: pki.RankName(1)}}
		var m [2]*QUICMesh
		for r := range 2 {
			tc, err := ca.TLSConfig(pki.RankName(r))
			if err != nil {
				t.Fatal(err)
			}
			m[r], err = NewQUIC(QUICConfig{Identity: Identity{Group: "g", Epoch: 7, World: 2, Rank: r, View: views[r]}, Peers: peers, Conn: conns[r], TLS: tc}, &recorder{})
			if err != nil {
				t.Fatal(err)
			}
			defer m[r].Close(0)
		}
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		_, errs := linkPair(ctx, m)
		return errs
	}
	if errs := try([2]uint64{0xa0, 0xa0}, 10*time.Second); errs[0] != nil || errs[1] != nil {
		t.Fatalf("one view: %v", errs)
	}
	for r, err := range try([2]uint64{0xa0, 0xa1}, 3*time.Second) {
		if err == nil {
			t.Errorf("rank %d linked to a rank of another view", r)
		}
	}
}
