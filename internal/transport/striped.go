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
// of data; K connections written at once use K cores. Reads need no such
// help (the connections decrypt on their own goroutines as packets come
// in; a read only copies), so they go block by block in stream order.
type striped struct {
	s []Stream
	// parallelRead: large reads go on every channel at once, each on a
	// goroutine (TLS lanes decrypt in Read, where QUIC decrypts on its
	// own goroutines as packets arrive).
	parallelRead bool
	rpos         int64 // bytes read so far
	wpos         int64 // bytes written so far
	errs         []error
	wg           sync.WaitGroup
	pieces       [][]piece // per channel, reused by parallel writes
}

type piece struct{ lo, hi int }

func newStriped(s []Stream) *striped {
	return &striped{s: s, errs: make([]error, len(s)), pieces: make([][]piece, len(s))}
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
		return t.readParallel(p)
	}
	ch, room := t.at(t.rpos)
	n, err := t.s[ch].Read(p[:min(len(p), room)])
	t.rpos += int64(n)
	return n, err
}

// readParallel fills all of p or fails.
func (t *striped) readParallel(p []byte) (int, error) {
	t.split(t.rpos, len(p))
	err := t.each(p, t.readPieces)
	if err != nil {
		return 0, err
	}
	t.rpos += int64(len(p))
	return len(p), nil
}

// split cuts n bytes of the stream from offset off into t.pieces.
func (t *striped) split(off int64, n int) {
	for i := range t.pieces {
		t.pieces[i] = t.pieces[i][:0]
	}
	for done := 0; done < n; {
		ch, room := t.at(off + int64(done))
		k := min(n-done, room)
		t.pieces[ch] = append(t.pieces[ch], piece{done, done + k})
		done += k
	}
}

// each runs f on every channel that has pieces, at once, and returns the
// first error.
func (t *striped) each(p []byte, f func(ch int, p []byte) error) error {
	for i := range t.s {
		t.errs[i] = nil
		if len(t.pieces[i]) == 0 || i == 0 {
			continue
		}
		t.wg.Add(1)
		go func() {
			defer t.wg.Done()
			t.errs[i] = f(i, p)
		}()
	}
	if len(t.pieces[0]) > 0 {
		t.errs[0] = f(0, p)
	}
	t.wg.Wait()
	for _, err := range t.errs {
		if err != nil {
			// Some channels may have moved their blocks; the stream is
			// out of step with the peer from here on, and the caller
			// fails the operation.
			return err
		}
	}
	return nil
}

func (t *striped) readPieces(ch int, p []byte) error {
	for _, pc := range t.pieces[ch] {
		if _, err := io.ReadFull(t.s[ch], p[pc.lo:pc.hi]); err != nil {
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
	t.split(t.wpos, len(p))
	if err := t.each(p, t.writePieces); err != nil {
		return 0, err
	}
	t.wpos += int64(len(p))
	return len(p), nil
}

func (t *striped) writePieces(ch int, p []byte) error {
	for _, pc := range t.pieces[ch] {
		if _, err := t.s[ch].Write(p[pc.lo:pc.hi]); err != nil {
			return err
		}
	}
	return nil
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
