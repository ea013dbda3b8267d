package stream

import "github.com/ringo-ml/ringo/internal/transport"

// linkBufBytes is the read buffer of a receive worker and the largest
// payload a send worker copies behind its header to write both at once.
// Small frames then cost one write on the sender and, usually, one read on
// the receiver (instead of two and three: prefix, header, payload), which
// is most of the per-step cost of a small collective over TCP. Larger
// payloads are written and read in place, with no copy.
const linkBufBytes = 64 << 10

// linkReader buffers a data stream for its receive worker. Reads of at
// least the buffer's size bypass it once it is drained, so bulk payloads
// land in place; frame headers and small payloads come out of one read of
// the stream. The buffer belongs to the stream for the stream's lifetime:
// bytes read ahead are the stream's next bytes, whatever operation they
// belong to.
type linkReader struct {
	src  transport.Stream
	buf  []byte
	r, w int
}

func newLinkReader(src transport.Stream) *linkReader {
	return &linkReader{src: src, buf: make([]byte, linkBufBytes)}
}

// Read implements io.Reader.
func (b *linkReader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if b.r == b.w {
		if len(p) >= len(b.buf) {
			return b.src.Read(p)
		}
		b.r, b.w = 0, 0
		n, err := b.src.Read(b.buf)
		b.w = n
		if n == 0 {
			return 0, err
		}
		// An error with data is returned by the next Read, as the
		// stream will report it again.
	}
	n := copy(p, b.buf[b.r:b.w])
	b.r += n
	return n, nil
}

// buffered is the number of bytes read ahead.
func (b *linkReader) buffered() int { return b.w - b.r }
