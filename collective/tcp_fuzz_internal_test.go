package collective

import (
	"bytes"
	"errors"
	"io"
	"net"
	"strings"
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

// TestPresentToken: the dialling side's handshake says what went wrong —
// a listener that hangs up before answering is not reported as a wrong
// token — and accepts only the right answer.
func TestPresentToken(t *testing.T) {
	var tokA, tokD tcpToken
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
				var got tcpToken
				_, _ = io.ReadFull(b, got[:])
				tc.answer(b)
				b.Close()
				done <- got[:]
			}()
			err := presentToken(a, tokA, tokD)
			a.Close()
			if sent := <-done; !bytes.Equal(sent, tokA[:]) {
				t.Errorf("sent %x, want tokA", sent)
			}
			if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Errorf("got %v, want %q", err, tc.want)
			}
		})
	}
	// A listener that is gone before the token is written.
	a, b := net.Pipe()
	b.Close()
	if err := presentToken(a, tokA, tokD); err == nil || !strings.Contains(err.Error(), "sending the token") {
		t.Errorf("closed pipe: %v", err)
	}
}
