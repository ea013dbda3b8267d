package collective

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

// FuzzReadTCPOffer: any bytes give an offer or an error, never a panic,
// never a read past the offer's bounded length; a good offer round-trips.
func FuzzReadTCPOffer(f *testing.F) {
	good := append([]byte(tcpMagic), byte(len("127.0.0.1:9")))
	good = append(good, "127.0.0.1:9"...)
	good = append(good, bytes.Repeat([]byte{7}, 2*tcpTokenLen)...)
	f.Add(good)
	f.Add([]byte("RTCP"))
	f.Add(append([]byte("RTCP\xff"), bytes.Repeat([]byte{'a'}, 400)...))
	f.Add([]byte("XXXX\x00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		r := bytes.NewReader(b)
		addr, tokA, tokD, err := readTCPOffer(r)
		read := len(b) - r.Len()
		if read > len(tcpMagic)+1+tcpMaxAddr+2*tcpTokenLen {
			t.Fatalf("read %d bytes", read)
		}
		if err != nil {
			if !errors.Is(err, ErrProtocol) && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Fatalf("unexpected error kind: %v", err)
			}
			return
		}
		// Re-encode and read again: the same offer.
		enc := append([]byte(tcpMagic), byte(len(addr)))
		enc = append(enc, addr...)
		enc = append(enc, tokA[:]...)
		enc = append(enc, tokD[:]...)
		if !bytes.Equal(enc, b[:read]) {
			t.Fatalf("offer %q does not re-encode to what was read", addr)
		}
	})
}
