package transport

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ringo-ml/ringo/internal/pki"
)

// lanePair starts the QUIC meshes of a world of two with lanes, rank r
// with lanes[r]; with pin, every member's certificate is pinned too.
func lanePair(t testing.TB, lanes [2]LaneConfig, pin bool) (m [2]*QUICMesh, ca *pki.CA) {
	t.Helper()
	ca, err := pki.New("g", 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ca.Close() })
	conns := [2]*net.UDPConn{udp(t), udp(t)}
	var tcs [2]*tls.Config
	peers := make([]Peer, 2)
	for r := range 2 {
		tc, err := ca.TLSConfig(pki.RankName(r))
		if err != nil {
			t.Fatal(err)
		}
		tcs[r] = tc
		peers[r] = Peer{Addr: conns[r].LocalAddr().String(), Name: pki.RankName(r)}
		if pin {
			sum := sha256.Sum256(tc.Certificates[0].Certificate[0])
			peers[r].CertSHA256 = sum[:]
		}
	}
	for r := range 2 {
		var err error
		lanes[r].Logger = quietLog()
		m[r], err = NewQUIC(QUICConfig{Identity: Identity{Group: "g", World: 2, Rank: r}, Peers: peers, Conn: conns[r],
			TLS: tcs[r]}, &recorder{})
		if err != nil {
			t.Fatal(err)
		}
		if err := m[r].ListenLanes(lanes[r]); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		for _, x := range m {
			_ = x.Close(0)
		}
	})
	return m, ca
}

func quietLog() *slog.Logger { return slog.New(slog.DiscardHandler) }

// openLanes makes the link of a pair and its lanes, both ends at once.
func openLanes(t testing.TB, ctx context.Context, m [2]*QUICMesh) (links [2]*Link, errs [2]error) {
	t.Helper()
	links, errs = linkPair(ctx, m)
	for r, err := range errs {
		if err != nil {
			t.Fatalf("rank %d: link: %v", r, err)
		}
	}
	var wg sync.WaitGroup
	for r := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[r] = m[r].OpenLanes(ctx, links[r], nil)
		}()
	}
	wg.Wait()
	return links, errs
}

// exchange sends n random bytes each way over the lane streams of links,
// in writes and reads of random sizes, and checks they arrive intact.
func exchange(links [2]*Link, n int, seed uint64) error {
	errs := make(chan error, 4)
	for r := range 2 {
		data := make([]byte, n)
		rng := rand.New(rand.NewPCG(seed, uint64(r)))
		for i := range data {
			data[i] = byte(rng.Uint32())
		}
		go func() {
			for off := 0; off < n; {
				k := min(n-off, 1+rng.IntN(3*StripeBytes))
				if _, err := links[r].Lane.Write(data[off : off+k]); err != nil {
					errs <- fmt.Errorf("rank %d writing: %w", r, err)
					return
				}
				off += k
			}
			errs <- nil
		}()
		go func() {
			got := make([]byte, n)
			rng := rand.New(rand.NewPCG(seed+1, uint64(r)))
			for off := 0; off < n; {
				k := min(n-off, 1+rng.IntN(3*StripeBytes))
				if _, err := io.ReadFull(links[1-r].Lane, got[off:off+k]); err != nil {
					errs <- fmt.Errorf("rank %d reading: %w", 1-r, err)
					return
				}
				off += k
			}
			if !bytes.Equal(got, data) {
				errs <- fmt.Errorf("rank %d received other bytes than rank %d sent", 1-r, r)
				return
			}
			errs <- nil
		}()
	}
	var first error
	for range 4 {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	return first
}

// TestLanes: TLS and plaintext lanes, one or several per link (each pair
// using the fewer of the two counts), carry bytes both ways intact, and
// the QUIC link goes on working beside them.
func TestLanes(t *testing.T) {
	for _, tc := range []struct {
		sec    LaneSecurity
		counts [2]int
		pin    bool
		want   int
	}{
		{LanesTLS, [2]int{0, 0}, false, 1},
		{LanesTLS, [2]int{3, 4}, true, 3},
		{LanesPlain, [2]int{1, 1}, false, 1},
		{LanesPlain, [2]int{2, 5}, false, 2},
	} {
		t.Run(fmt.Sprintf("%v/%v", tc.sec, tc.counts), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			m, _ := lanePair(t, [2]LaneConfig{{Security: tc.sec, Count: tc.counts[0]}, {Security: tc.sec, Count: tc.counts[1]}}, tc.pin)
			links, errs := openLanes(t, ctx, m)
			for r, err := range errs {
				if err != nil {
					t.Fatalf("rank %d: %v", r, err)
				}
				if got := links[r].Lanes(); got != tc.want {
					t.Fatalf("rank %d has %d lanes, want %d", r, got, tc.want)
				}
			}
			if m[1].LaneAddr() == "" || m[0].LaneSecurity() != tc.sec {
				t.Fatalf("lane listener %q, security %v", m[1].LaneAddr(), m[0].LaneSecurity())
			}
			if err := exchange(links, 3<<20+12345, 7); err != nil {
				t.Fatal(err)
			}
			if err := links[0].Ping(ctx); err != nil {
				t.Fatalf("the QUIC link beside the lanes: %v", err)
			}
			// Interrupt reaches the lanes; Resume clears it.
			links[1].Interrupt()
			if _, err := links[1].Lane.Read(make([]byte, 1)); err == nil {
				t.Fatal("a read on an interrupted lane succeeded")
			}
			links[1].Resume()
			// An orderly close: the peer reads everything, then the end.
			if _, err := links[0].Lane.Write([]byte("bye")); err != nil {
				t.Fatal(err)
			}
			links[0].CloseWrite()
			got, err := io.ReadAll(io.LimitReader(links[1].Lane, 3))
			if err != nil || string(got) != "bye" {
				t.Fatalf("after CloseWrite the peer read %q, %v", got, err)
			}
		})
	}
}

// TestLanesMismatch: ranks that disagree on the lanes' security both fail
// to open them, saying so.
func TestLanesMismatch(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, secs := range [][2]LaneSecurity{{LanesTLS, LanesPlain}, {LanesPlain, LanesTLS}} {
		m, _ := lanePair(t, [2]LaneConfig{{Security: secs[0]}, {Security: secs[1]}}, false)
		_, errs := openLanes(t, ctx, m)
		for r, err := range errs {
			if err == nil || !errors.Is(err, ErrLaneProtocol) || !strings.Contains(err.Error(), "same Transport") {
				t.Errorf("%v: rank %d: %v; want a lane protocol error that names the Transport setting", secs, r, err)
			}
		}
	}
}

// TestLaneStrangers: connections to a lane listener from strangers — no
// certificate, a certificate from another CA, the group CA's certificate
// for a member's name but not the pinned one, a handshake that never
// finishes, the right handshake with a wrong token, and a thousand
// connections at once — are refused or timed out while a transfer runs on
// the lanes, which it does not disturb; afterwards the listener holds no
// connection, goroutine or buffer for them.
func TestLaneStrangers(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	m, ca := lanePair(t, [2]LaneConfig{{Security: LanesTLS, Timeout: time.Second}, {Security: LanesTLS, Timeout: time.Second}}, true)
	links, errs := openLanes(t, ctx, m)
	for r, err := range errs {
		if err != nil {
			t.Fatalf("rank %d: %v", r, err)
		}
	}
	addr := m[1].LaneAddr()

	// The transfer the strangers must not disturb.
	stop := make(chan struct{})
	moved := make(chan error, 1)
	go func() {
		for i := uint64(0); ; i++ {
			select {
			case <-stop:
				moved <- nil
				return
			default:
			}
			if err := exchange(links, 1<<20, i); err != nil {
				moved <- err
				return
			}
		}
	}()

	other, err := pki.New("g", 0) // another CA
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	stranger, err := other.TLSConfig(pki.RankName(0))
	if err != nil {
		t.Fatal(err)
	}
	impostor, err := ca.Certificate(pki.RankName(0)) // right CA, right name, not the pinned key
	if err != nil {
		t.Fatal(err)
	}
	pool := m[0].cfg.TLS.RootCAs
	for _, c := range []struct {
		name string
		conf *tls.Config
	}{
		{"no certificate", &tls.Config{RootCAs: pool, ServerName: pki.RankName(1), NextProtos: []string{LaneALPN}, MinVersion: tls.VersionTLS13}},
		{"another CA", &tls.Config{Certificates: stranger.Certificates, RootCAs: pool, ServerName: pki.RankName(1), NextProtos: []string{LaneALPN}, MinVersion: tls.VersionTLS13}},
		{"not the pinned certificate", &tls.Config{Certificates: []tls.Certificate{impostor}, RootCAs: pool, ServerName: pki.RankName(1), NextProtos: []string{LaneALPN}, MinVersion: tls.VersionTLS13}},
	} {
		conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", addr, c.conf)
		if err == nil {
			// TLS 1.3: the client finishes before the server checks its
			// certificate; the refusal arrives on the first read.
			_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
			_, _ = conn.Write(make([]byte, laneTokenLen+1))
			_, err = conn.Read(make([]byte, 1))
			conn.Close()
		}
		if err == nil {
			t.Errorf("%s: the listener answered", c.name)
		} else {
			t.Logf("%s: %v", c.name, err)
		}
	}
	// A handshake that never finishes: connect, send nothing.
	slow, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	_ = slow.SetReadDeadline(time.Now().Add(20 * time.Second))
	n, _ := io.Copy(io.Discard, slow)
	slow.Close()
	if d := time.Since(t0); d > 10*time.Second || n != 0 {
		t.Errorf("a silent connection was held %v and read %d bytes; the bound is %v", d, n, m[1].lanes.timeout)
	}
	// A thousand at once, each sending a ClientHello's worth of junk.
	var wg sync.WaitGroup
	for range 1000 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := net.DialTimeout("tcp", addr, 10*time.Second)
			if err != nil {
				return // the backlog overflowed: refused, as it may be
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(20 * time.Second))
			_, _ = c.Write([]byte("\x16\x03\x01\x00\x05hello"))
			_, _ = io.Copy(io.Discard, c)
		}()
	}
	wg.Wait()
	close(stop)
	if err := <-moved; err != nil {
		t.Fatalf("the transfer beside the strangers: %v", err)
	}
	// Nothing of theirs is left.
	l := m[1].lanes
	deadline := time.Now().Add(10 * time.Second)
	for {
		l.mu.Lock()
		active, pending := len(l.active), len(l.pending)
		l.mu.Unlock()
		if active == 0 && pending == 0 && len(l.admits) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the listener still holds %d connections, %d offers, %d handshakes", active, pending, len(l.admits))
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := exchange(links, 1<<20, 99); err != nil {
		t.Fatalf("after the strangers: %v", err)
	}
}

// TestLaneWrongToken: a member's own certificate with a token that was not
// offered (or offered to another) gets no answer.
func TestLaneWrongToken(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, sec := range []LaneSecurity{LanesTLS, LanesPlain} {
		m, _ := lanePair(t, [2]LaneConfig{{Security: sec}, {Security: sec}}, false)
		links, errs := openLanes(t, ctx, m)
		if errs[0] != nil || errs[1] != nil {
			t.Fatal(errs)
		}
		o := laneOffer{sec: sec, count: 1, addr: m[1].lanes.addr}
		o.tokA[0], o.tokD[0] = 1, 2
		_, err := m[0].dialLane(ctx, 1, o, 0)
		if err == nil || !strings.Contains(err.Error(), "reading the answer") {
			t.Errorf("%v: a lane with an unknown token: %v; want no answer", sec, err)
		}
		if err := exchange(links, 100_000, 1); err != nil {
			t.Fatal(err)
		}
	}
}

// TestReadLaneOffer: offers and requests round-trip; every truncation and
// every bad field is an error, never a panic.
func TestReadLaneOffer(t *testing.T) {
	o := laneOffer{sec: LanesTLS, count: 3, addr: "10.0.0.1:7000"}
	o.tokA[5], o.tokD[7] = 9, 11
	b := o.append(nil)
	got, err := readLaneOffer(bytes.NewReader(b))
	if err != nil || got != o {
		t.Fatalf("round trip: %+v, %v", got, err)
	}
	for i := range b {
		if _, err := readLaneOffer(bytes.NewReader(b[:i])); err == nil {
			t.Fatalf("a %d-byte prefix was accepted", i)
		}
	}
	for _, bad := range [][]byte{
		append([]byte("RLN0"), b[4:]...),
		append(append([]byte{}, b[:4]...), append([]byte{9}, b[5:]...)...),
		append(append([]byte{}, b[:5]...), append([]byte{65}, b[6:]...)...),
	} {
		if _, err := readLaneOffer(bytes.NewReader(bad)); !errors.Is(err, ErrLaneProtocol) {
			t.Errorf("%q: %v", bad[:7], err)
		}
	}
	req := appendLaneRequest(nil, LanesPlain, 4)
	if s, n, err := readLaneRequest(bytes.NewReader(req)); err != nil || s != LanesPlain || n != 4 {
		t.Fatalf("request: %v %d %v", s, n, err)
	}
	for _, bad := range [][]byte{appendLaneRequest(nil, 0, 1), appendLaneRequest(nil, LanesTLS, 0), appendLaneRequest(nil, LanesTLS, 65), []byte("RLN")} {
		if _, _, err := readLaneRequest(bytes.NewReader(bad)); err == nil {
			t.Errorf("%q was accepted", bad)
		}
	}
}

// FuzzReadLaneOffer: whatever a peer sends as its offer, the reader
// returns an error or an offer whose fields are in range, and reads no
// more than an offer's largest size.
func FuzzReadLaneOffer(f *testing.F) {
	o := laneOffer{sec: LanesPlain, count: 2, addr: "[::1]:65535"}
	f.Add(o.append(nil))
	f.Add(appendLaneRequest(nil, LanesTLS, 1))
	f.Fuzz(func(t *testing.T, b []byte) {
		r := bytes.NewReader(b)
		got, err := readLaneOffer(r)
		if read := len(b) - r.Len(); read > len(laneMagic)+3+laneMaxAddr+2*laneTokenLen {
			t.Fatalf("read %d bytes", read)
		}
		if err == nil {
			if got.count > MaxLanes || (got.sec != LanesTLS && got.sec != LanesPlain) || len(got.addr) > laneMaxAddr {
				t.Fatalf("accepted %+v", got)
			}
			if _, _, err := net.SplitHostPort(got.addr); err != nil {
				t.Fatalf("accepted the address %q", got.addr)
			}
		}
		_, _, _ = readLaneRequest(bytes.NewReader(b))
	})
}

// TestPresentLaneToken: the dialling side's token exchange says what went wrong —
// a listener that hangs up before answering is not reported as a wrong
// token — and accepts only the right answer.
func TestPresentLaneToken(t *testing.T) {
	var tokA, tokD laneToken
	for i := range tokA {
		tokA[i], tokD[i] = byte(i), byte(100+i)
	}
	for _, tc := range []struct {
		name   string
		answer func(net.Conn)
		want   string // in the error; "" for none
	}{
		{"right answer", func(c net.Conn) { _, _ = c.Write(tokD[:]) }, ""},
		{"wrong answer", func(c net.Conn) { _, _ = c.Write(tokA[:]) }, "wrong token"},
		{"hangs up", func(c net.Conn) {}, "reading the answer: EOF"},
		{"short answer", func(c net.Conn) { _, _ = c.Write(tokD[:5]) }, "reading the answer: unexpected EOF"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, b := net.Pipe()
			done := make(chan []byte)
			go func() {
				var got [laneTokenLen + 1]byte
				_, _ = io.ReadFull(b, got[:])
				tc.answer(b)
				b.Close()
				done <- got[:]
			}()
			err := presentLaneToken(a, tokA, tokD, 3)
			a.Close()
			if sent := <-done; !bytes.Equal(sent, append(tokA[:], 3)) {
				t.Errorf("sent %x, want tokA and the lane's index", sent)
			}
			if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Errorf("got %v, want %q", err, tc.want)
			}
		})
	}
	// A listener that is gone before the token is written.
	a, b := net.Pipe()
	b.Close()
	if err := presentLaneToken(a, tokA, tokD, 3); err == nil || !strings.Contains(err.Error(), "sending the token") {
		t.Errorf("closed pipe: %v", err)
	}
}

// BenchmarkLinkStream: one link's throughput in one direction, 512 KiB
// writes read into a 512 KiB buffer, over the QUIC data stream, a TLS lane
// and a plaintext TCP lane of the same kind of link, in one process on
// loopback (the writer and the reader on a core each, where there are
// two): the transports' ceilings under the collectives.
//
//	go test -run '^$' -bench LinkStream -benchtime 2s ./internal/transport
func BenchmarkLinkStream(b *testing.B) {
	for _, tc := range []struct {
		name string
		sec  LaneSecurity
	}{{"quic", LanesTLS}, {"tls", LanesTLS}, {"tcp", LanesPlain}} {
		b.Run(tc.name, func(b *testing.B) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			m, _ := lanePair(b, [2]LaneConfig{{Security: tc.sec}, {Security: tc.sec}}, true)
			links, errs := openLanes(b, ctx, m)
			if errs[0] != nil || errs[1] != nil {
				b.Fatal(errs)
			}
			w, r := links[0].Lane, links[1].Lane
			if tc.name == "quic" {
				w, r = links[0].Data, links[1].Data
			}
			const chunk = 512 << 10
			src, dst := make([]byte, chunk), make([]byte, chunk)
			done := make(chan error, 1)
			go func() {
				for range b.N {
					if _, err := io.ReadFull(r, dst); err != nil {
						done <- err
						return
					}
				}
				done <- nil
			}()
			b.SetBytes(chunk)
			b.ResetTimer()
			for range b.N {
				if _, err := w.Write(src); err != nil {
					b.Fatal(err)
				}
			}
			if err := <-done; err != nil {
				b.Fatal(err)
			}
		})
	}
}
