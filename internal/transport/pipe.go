package transport

import (
	"io"
	"os"
	"sync"
	"time"
)

// pipe is a buffered, one-directional in-memory byte stream with deadlines
// and close-with-error, the in-process stand-in for a QUIC stream's
// direction. Writers block when the buffer is full, readers when it is
// empty; both wake on close and on deadlines.
type pipe struct {
	mu     sync.Mutex
	cond   *sync.Cond // signalled on every state change
	buf    []byte     // ring buffer
	r, n   int        // read offset and bytes buffered
	werr   error      // set when the write side is closed (io.EOF for a clean close)
	rerr   error      // set when torn down: the reader's error
	wrerr  error      // set when torn down: the writer's error
	rdl    time.Time  // read deadline
	wdl    time.Time  // write deadline
	rtimer *time.Timer
	wtimer *time.Timer
}

func newPipe(size int) *pipe {
	p := &pipe{buf: make([]byte, size)}
	p.cond = sync.NewCond(&p.mu)
	return p
}

func expired(dl time.Time) bool { return !dl.IsZero() && !time.Now().Before(dl) }

func (p *pipe) read(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for p.n == 0 || p.rerr != nil {
		if p.rerr != nil {
			return 0, p.rerr
		}
		if p.werr != nil {
			return 0, p.werr
		}
		if expired(p.rdl) {
			return 0, os.ErrDeadlineExceeded
		}
		p.cond.Wait()
	}
	total := 0
	for p.n > 0 && len(b) > 0 {
		end := p.r + p.n
		if end > len(p.buf) {
			end = len(p.buf)
		}
		k := copy(b, p.buf[p.r:end])
		b = b[k:]
		p.r = (p.r + k) % len(p.buf)
		p.n -= k
		total += k
	}
	p.cond.Broadcast()
	return total, nil
}

func (p *pipe) write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	total := 0
	for len(b) > 0 {
		for p.n == len(p.buf) && p.werr == nil && p.wrerr == nil && !expired(p.wdl) {
			p.cond.Wait()
		}
		switch {
		case p.wrerr != nil:
			return total, p.wrerr
		case p.werr != nil:
			return total, io.ErrClosedPipe
		case expired(p.wdl):
			return total, os.ErrDeadlineExceeded
		}
		w := (p.r + p.n) % len(p.buf)
		end := len(p.buf)
		if w < p.r {
			end = p.r
		}
		if end-w > len(p.buf)-p.n {
			end = w + len(p.buf) - p.n
		}
		k := copy(p.buf[w:end], b)
		b = b[k:]
		p.n += k
		total += k
		p.cond.Broadcast()
	}
	return total, nil
}

// closeWrite ends the stream: the reader drains what is buffered, then gets err.
func (p *pipe) closeWrite(err error) {
	p.mu.Lock()
	if p.werr == nil {
		p.werr = err
	}
	p.cond.Broadcast()
	p.mu.Unlock()
}

// teardown discards buffered data; the reader fails with rerr, the writer
// with werr.
func (p *pipe) teardown(rerr, werr error) {
	p.mu.Lock()
	if p.rerr == nil {
		p.rerr, p.wrerr = rerr, werr
	}
	p.n = 0
	p.cond.Broadcast()
	p.mu.Unlock()
}

func (p *pipe) setDeadline(dl *time.Time, timer **time.Timer, t time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	*dl = t
	if *timer != nil {
		(*timer).Stop()
		*timer = nil
	}
	if !t.IsZero() {
		d := time.Until(t)
		if d <= 0 {
			p.cond.Broadcast()
			return
		}
		*timer = time.AfterFunc(d, func() {
			p.mu.Lock()
			p.cond.Broadcast()
			p.mu.Unlock()
		})
	}
}

// pipeStream joins the read end of one pipe with the write end of another.
type pipeStream struct {
	in, out *pipe
}

var _ Stream = (*pipeStream)(nil)

func (s *pipeStream) Read(b []byte) (int, error)  { return s.in.read(b) }
func (s *pipeStream) Write(b []byte) (int, error) { return s.out.write(b) }
func (s *pipeStream) SetReadDeadline(t time.Time) error {
	s.in.setDeadline(&s.in.rdl, &s.in.rtimer, t)
	return nil
}
func (s *pipeStream) SetWriteDeadline(t time.Time) error {
	s.out.setDeadline(&s.out.wdl, &s.out.wtimer, t)
	return nil
}

// newPipePair returns the two ends of a bidirectional in-memory stream.
func newPipePair(size int) (a, b *pipeStream) {
	ab, ba := newPipe(size), newPipe(size)
	return &pipeStream{in: ba, out: ab}, &pipeStream{in: ab, out: ba}
}
