package wire

import (
	"errors"
	"io"
	"testing"
)

// chunkReader returns at most step bytes per Read, as a stream does.
type chunkReader struct {
	b    []byte
	step int
	n    int // bytes handed out
}

func (r *chunkReader) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, io.EOF
	}
	k := min(len(p), r.step, len(r.b))
	copy(p, r.b[:k])
	r.b = r.b[k:]
	r.n += k
	return k, nil
}

// FuzzReadFrame: ReadFrame never panics on any byte stream, reads no more
// than one header's bytes (a payload, of whatever announced length, is
// left to the caller and never read or allocated here), accepts only data
// frames whose payload length is within the limits, and reports bad bytes
// as ErrMalformed and a short stream as io.EOF or io.ErrUnexpectedEOF.
func FuzzReadFrame(f *testing.F) {
	e := NewEncoder()
	for _, fr := range sampleFrames() {
		b := append([]byte(nil), encode(e, &fr)...)
		f.Add(b, uint8(1))
		f.Add(append(b, 1, 2, 3), uint8(7))
	}
	big := dataHeader()
	big.PayloadLen = 1<<31 - 1 // beyond every op's bound
	f.Add(append([]byte(nil), e.EncodeData(&big)...), uint8(64))
	f.Add([]byte{0xff, 0xff, 0xff, 0x7f, 0, 0, 0, 0}, uint8(3))
	f.Add([]byte{}, uint8(1))
	f.Add([]byte{16, 0}, uint8(1))

	scratch := make([]byte, PrefixLen+MaxHeader)
	f.Fuzz(func(t *testing.T, stream []byte, step uint8) {
		r := &chunkReader{b: stream, step: int(step%64) + 1}
		var fr Frame
		err := ReadFrame(r, scratch, lim, &fr)
		if r.n > PrefixLen+MaxHeader {
			t.Fatalf("read %d bytes, more than one header", r.n)
		}
		if err != nil {
			switch {
			case errors.Is(err, ErrMalformed), err == io.EOF, err == io.ErrUnexpectedEOF:
			default:
				t.Fatalf("unexpected error %v", err)
			}
			if err == io.EOF && r.n != 0 {
				t.Fatalf("io.EOF after %d bytes of a frame", r.n)
			}
			return
		}
		if fr.Kind == KindData && fr.Data.PayloadLen > lim.MaxPayload {
			t.Fatalf("accepted a payload of %d bytes; limit %d", fr.Data.PayloadLen, lim.MaxPayload)
		}
		// What was consumed is exactly one frame that Decode accepts.
		var again Frame
		if err := Decode(stream[:r.n], lim, &again); err != nil {
			t.Fatalf("ReadFrame accepted what Decode refuses: %v", err)
		}
		if again != fr {
			t.Fatalf("ReadFrame and Decode disagree: %+v vs %+v", fr, again)
		}
	})
}
