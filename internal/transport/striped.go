package transport

import (
	"io"
	"sync"
	"time"
)

// StripeBytes is the unit a link with several channels stripes its data
// stream in: bytes [i·StripeBytes, (i+1)·StripeBytes) of the stream travel
// on channel i mod K. Both ends compute the same split from the byte
// offset alone, so nothing on the wire says where a block went.
const StripeBytes = 64 << 10

// stripedParallel is the smallest write that is spread over the channels
// by one goroutine per channel; smaller writes go block by block from the
// caller, which costs no goroutine hand-off.
const stripedParallel = 2 * StripeBytes

// striped is one data stream over the data streams of K connections
// ("channels") to the same peer. A QUIC connection seals and sends its
// packets on one goroutine, so one connection moves about one core's worth
// of data; K connections written at once use K cores. QUIC reads need no
// such help (the connections decrypt on their own goroutines as packets
// come in; a read only copies), so they go block by block in stream
// order; TLS lanes decrypt in Read, so theirs go on every channel at once
// too (parallelRead).
//
// One goroutine reads and one writes at a time. The parallel work runs on
// a goroutine per channel beyond the first and per direction, started on
// first use and stopped by stop, so that a large transfer costs no
// goroutine start or allocation.
type striped struct {
	s            []Stream
	parallelRead bool
	rpos         int64 // bytes read so far
	wpos         int64 // bytes written so far
	rd, wr       stripeSide
	done         chan struct{} // closed by stop
	stopOnce     sync.Once
	workers      sync.WaitGroup
}

// stripeSide is one direction's parallel work.
type stripeSide struct {
	pieces  [][]piece // per channel
	errs    []error
	wg      sync.WaitGroup
	jobs    []chan []byte // per channel (0 unused): the buffer to move
	started bool
}

type piece struct{ lo, hi int }

func newStriped(s []Stream) *striped {
	t := &striped{s: s, done: make(chan struct{})}
	for _, d := range []*stripeSide{&t.rd, &t.wr} {
		d.pieces, d.errs, d.jobs = make([][]piece, len(s)), make([]error, len(s)), make([]chan []byte, len(s))
	}
	return t
}

// stop ends the parallel workers and waits for them; transfers after it
// fail. Call it when the connections are closed.
func (t *striped) stop() {
	t.stopOnce.Do(func() { close(t.done) })
	t.workers.Wait()
}

// at returns the channel that carries stream offset off and how many bytes
// of its block remain from there.
func (t *striped) at(off int64) (ch int, room int) {
	blk := off / StripeBytes
	return int(blk % int64(len(t.s))), int(StripeBytes - off%StripeBytes)
}

// Read reads from the channel that carries the next bytes, at most to the
// end of the current block; with parallelRead, a read of at least
// stripedParallel bytes fills p from every channel at once.
func (t *striped) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if t.parallelRead && len(p) >= stripedParallel {
		t.split(&t.rd, t.rpos, len(p))
		if err := t.each(&t.rd, p); err != nil {
			return 0, err
		}
		t.rpos += int64(len(p))
		return len(p), nil
	}
	ch, room := t.at(t.rpos)
	n, err := t.s[ch].Read(p[:min(len(p), room)])
	t.rpos += int64(n)
	return n, err
}

// split cuts n bytes of the stream from offset off into d.pieces.
func (t *striped) split(d *stripeSide, off int64, n int) {
	for i := range d.pieces {
		d.pieces[i] = d.pieces[i][:0]
	}
	for done := 0; done < n; {
		ch, room := t.at(off + int64(done))
		k := min(n-done, room)
		d.pieces[ch] = append(d.pieces[ch], piece{done, done + k})
		done += k
	}
}

// each moves every channel's pieces of p at once (d's direction): channel 0 on the
// caller's goroutine, the others on their workers. It returns the first
// error.
func (t *striped) each(d *stripeSide, p []byte) error {
	if !d.started {
		d.started = true
		for i := 1; i < len(t.s); i++ {
			d.jobs[i] = make(chan []byte)
			t.workers.Add(1)
			go func() {
				defer t.workers.Done()
				for {
					select {
					case job := <-d.jobs[i]:
						d.errs[i] = t.move(d, i, job)
						d.wg.Done()
					case <-t.done:
						return
					}
				}
			}()
		}
	}
	for i := range t.s {
		d.errs[i] = nil
		if len(d.pieces[i]) == 0 || i == 0 {
			continue
		}
		d.wg.Add(1)
		select {
		case d.jobs[i] <- p:
		case <-t.done:
			d.wg.Done()
			d.errs[i] = &ClosedError{Reason: "the link was torn down"}
		}
	}
	if len(d.pieces[0]) > 0 {
		d.errs[0] = t.move(d, 0, p)
	}
	d.wg.Wait()
	for _, err := range d.errs {
		if err != nil {
			// Some channels may have moved their blocks; the stream is
			// out of step with the peer from here on, and the caller
			// fails the operation.
			return err
		}
	}
	return nil
}

// move reads (d is t.rd) or writes channel ch's pieces of p.
func (t *striped) move(d *stripeSide, ch int, p []byte) error {
	for _, pc := range d.pieces[ch] {
		var err error
		if d == &t.rd {
			_, err = io.ReadFull(t.s[ch], p[pc.lo:pc.hi])
		} else {
			_, err = t.s[ch].Write(p[pc.lo:pc.hi])
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// Write writes all of p or fails; large writes go out on every channel at
// once.
func (t *striped) Write(p []byte) (int, error) {
	if len(p) < stripedParallel {
		done := 0
		for done < len(p) {
			ch, room := t.at(t.wpos)
			k := min(len(p)-done, room)
			n, err := t.s[ch].Write(p[done : done+k])
			done += n
			t.wpos += int64(n)
			if err != nil {
				return done, err
			}
		}
		return done, nil
	}
	t.split(&t.wr, t.wpos, len(p))
	if err := t.each(&t.wr, p); err != nil {
		return 0, err
	}
	t.wpos += int64(len(p))
	return len(p), nil
}

// SetReadDeadline sets the deadline on every channel.
func (t *striped) SetReadDeadline(d time.Time) error {
	var first error
	for _, s := range t.s {
		if err := s.SetReadDeadline(d); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// SetWriteDeadline sets the deadline on every channel.
func (t *striped) SetWriteDeadline(d time.Time) error {
	var first error
	for _, s := range t.s {
		if err := s.SetWriteDeadline(d); err != nil && first == nil {
			first = err
		}
	}
	return first
}
