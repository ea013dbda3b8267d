package netem

import (
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
)

// TCPRelay forwards TCP connections: each connection to its address is
// joined to a new connection to the target, and bytes are copied both
// ways until either side ends. A test sees the bytes with Tap and may
// change them with Mutate, to check what crosses the wire and what
// happens when it is altered.
type TCPRelay struct {
	ln     net.Listener
	target func() string
	cfg    TCPConfig

	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
	wg     sync.WaitGroup
}

// TCPConfig is what a TCPRelay does to the bytes it forwards.
type TCPConfig struct {
	// Tap, when set, sees every buffer read from either side before it
	// is forwarded (after Mutate): toTarget says its direction, conn is
	// the connection's number (0 for the first accepted). It must not
	// keep b. Calls for one connection and direction are in order.
	Tap func(conn int, toTarget bool, b []byte)
	// Mutate, when set, may change a buffer in place before it is
	// forwarded.
	Mutate func(conn int, toTarget bool, b []byte)
}

// NewTCPRelay listens on listen and forwards each connection to the
// address target returns at the time of the connection.
func NewTCPRelay(listen string, target func() string, cfg TCPConfig) (*TCPRelay, error) {
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return nil, fmt.Errorf("netem: %w", err)
	}
	r := &TCPRelay{ln: ln, target: target, cfg: cfg, conns: make(map[net.Conn]struct{})}
	r.wg.Add(1)
	go r.accept()
	return r, nil
}

// Addr is the relay's address.
func (r *TCPRelay) Addr() string { return r.ln.Addr().String() }

func (r *TCPRelay) accept() {
	defer r.wg.Done()
	for n := 0; ; n++ {
		c, err := r.ln.Accept()
		if err != nil {
			return
		}
		up, err := net.Dial("tcp", r.target())
		if err != nil {
			c.Close()
			continue
		}
		if !r.track(c, up) {
			return
		}
		r.wg.Add(2)
		go r.pipe(n, true, c, up)
		go r.pipe(n, false, up, c)
	}
}

// track records a pair of connections, unless the relay is closed.
func (r *TCPRelay) track(cs ...net.Conn) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		for _, c := range cs {
			c.Close()
		}
		return false
	}
	for _, c := range cs {
		r.conns[c] = struct{}{}
	}
	return true
}

// pipe copies from src to dst; at src's end it half-closes dst.
func (r *TCPRelay) pipe(n int, toTarget bool, src, dst net.Conn) {
	defer r.wg.Done()
	buf := make([]byte, 64<<10)
	for {
		k, err := src.Read(buf)
		if k > 0 {
			if r.cfg.Mutate != nil {
				r.cfg.Mutate(n, toTarget, buf[:k])
			}
			if r.cfg.Tap != nil {
				r.cfg.Tap(n, toTarget, buf[:k])
			}
			if _, werr := dst.Write(buf[:k]); werr != nil {
				src.Close()
				return
			}
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				if tc, ok := dst.(*net.TCPConn); ok {
					_ = tc.CloseWrite()
					return
				}
			}
			dst.Close()
			return
		}
	}
}

// Close stops the relay and every connection through it, and waits.
func (r *TCPRelay) Close() error {
	r.mu.Lock()
	r.closed = true
	for c := range r.conns {
		c.Close()
	}
	r.mu.Unlock()
	err := r.ln.Close()
	r.wg.Wait()
	return err
}
