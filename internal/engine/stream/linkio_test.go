package stream

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"testing"
	"time"
)

// pieceStream hands out its bytes in reads of at most max bytes, then err.
type pieceStream struct {
	data  []byte
	max   int
	err   error
	reads int
}

func (p *pieceStream) Read(b []byte) (int, error) {
	p.reads++
	if len(p.data) == 0 {
		return 0, p.err
	}
	n := min(len(b), p.max, len(p.data))
	copy(b, p.data[:n])
	p.data = p.data[n:]
	return n, nil
}
func (p *pieceStream) Write(b []byte) (int, error)      { return len(b), nil }
func (p *pieceStream) SetReadDeadline(time.Time) error  { return nil }
func (p *pieceStream) SetWriteDeadline(time.Time) error { return nil }

// TestLinkReader reads a stream in a mix of small and bulk reads, from a
// stream that returns pieces of every size, and gets the stream's bytes in
// order, then its error.
func TestLinkReader(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	data := make([]byte, 3*linkBufBytes+12345)
	for i := range data {
		data[i] = byte(rng.Uint32())
	}
	for _, piece := range []int{1, 7, 4096, linkBufBytes - 1, linkBufBytes, 10 * linkBufBytes} {
		src := &pieceStream{data: data, max: piece, err: io.ErrUnexpectedEOF}
		r := newLinkReader(src)
		var got []byte
		for len(got) < len(data) {
			n := 1 + rng.IntN(20)
			if rng.IntN(4) == 0 {
				n = linkBufBytes + rng.IntN(linkBufBytes)
			}
			n = min(n, len(data)-len(got))
			p := make([]byte, n)
			k, err := readFull(r, p)
			if err != nil || k != n {
				t.Fatalf("pieces of %d: read %d of %d at %d: %v", piece, k, n, len(got), err)
			}
			got = append(got, p...)
		}
		if !bytes.Equal(got, data) {
			t.Fatalf("pieces of %d: bytes differ", piece)
		}
		if r.buffered() != 0 {
			t.Fatalf("pieces of %d: %d bytes left buffered", piece, r.buffered())
		}
		if _, err := r.Read(make([]byte, 1)); !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("pieces of %d: after the data, %v; want the stream's error", piece, err)
		}
	}
	// Small frames come out of one read of the stream.
	src := &pieceStream{data: bytes.Repeat([]byte{1}, 100*64), max: 1 << 20}
	r := newLinkReader(src)
	for range 100 {
		if _, err := readFull(r, make([]byte, 64)); err != nil {
			t.Fatal(err)
		}
	}
	if src.reads != 1 {
		t.Errorf("100 frames of 64 bytes took %d reads of the stream, want 1", src.reads)
	}
}
