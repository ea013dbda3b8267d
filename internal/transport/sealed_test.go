package transport

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"math/big"
	mrand "math/rand/v2"
	"net"
	"testing"
	"time"
)

// sealedPair makes two sealed connections over loopback TCP, keyed by a
// real TLS 1.3 handshake, and returns the TCP connections beneath too
// (a test may write raw bytes on them).
func sealedPair(t testing.TB) (d, l *sealedConn) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "x"}, DNSNames: []string{"x"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	type res struct {
		s   *sealedConn
		err error
	}
	ch := make(chan res, 1)
	go func() {
		c, err := ln.AcceptTCP()
		if err != nil {
			ch <- res{err: err}
			return
		}
		s := tls.Server(c, &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}},
			MinVersion: tls.VersionTLS13, SessionTicketsDisabled: true})
		if err := s.Handshake(); err != nil {
			ch <- res{err: err}
			return
		}
		sc, err := newSealedConn(c, s.ConnectionState(), false)
		ch <- res{sc, err}
	}()
	c, err := net.DialTCP("tcp", nil, ln.Addr().(*net.TCPAddr))
	if err != nil {
		t.Fatal(err)
	}
	cl := tls.Client(c, &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS13})
	if err := cl.Handshake(); err != nil {
		t.Fatal(err)
	}
	d, err = newSealedConn(c, cl.ConnectionState(), true)
	if err != nil {
		t.Fatal(err)
	}
	r := <-ch
	if r.err != nil {
		t.Fatal(r.err)
	}
	t.Cleanup(func() {
		d.tcp.Close()
		r.s.tcp.Close()
	})
	return d, r.s
}

// TestSealedStream: writes of every size, across records and across key
// changes (every 100 kB here), read back in pieces of every size, then an
// orderly end: io.EOF, and the next Write fails.
func TestSealedStream(t *testing.T) {
	old := sealedRekeyBytes
	sealedRekeyBytes = 100_000
	defer func() { sealedRekeyBytes = old }()
	d, l := sealedPair(t)
	rng := mrand.New(mrand.NewPCG(1, 2))
	data := make([]byte, 5<<20+3)
	for i := range data {
		data[i] = byte(rng.Uint32())
	}
	errc := make(chan error, 1)
	go func() {
		rng := mrand.New(mrand.NewPCG(3, 4))
		for off := 0; off < len(data); {
			n := min(len(data)-off, []int{1, 17, 4096, sealedMaxRecord - 1, sealedMaxRecord, sealedMaxRecord + 1, 3*sealedMaxRecord + 5}[rng.IntN(7)])
			if _, err := d.Write(data[off : off+n]); err != nil {
				errc <- err
				return
			}
			off += n
		}
		errc <- d.closeWrite()
	}()
	got := make([]byte, 0, len(data))
	buf := make([]byte, 2*sealedMaxRecord)
	for {
		n, err := l.Read(buf[:1+rng.IntN(len(buf)-1)])
		got = append(got, buf[:n]...)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("after %d bytes: %v", len(got), err)
		}
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data) {
		t.Fatalf("read %d bytes, not the %d written", len(got), len(data))
	}
	if d.w.seq == d.w.bytes || d.r.secret == d.w.secret {
		t.Fatal("the directions share keys")
	}
	if _, err := d.Write([]byte("x")); err == nil {
		t.Fatal("a write after the end succeeded")
	}
}

// TestSealedTamper: a changed byte anywhere in a record (its length, its
// ciphertext, its tag), a record replayed and records reordered are
// refused with ErrLaneIntegrity, and a stream cut short without its end
// record with io.ErrUnexpectedEOF (as a peer that died), after the intact
// records before the change and without any plaintext of the refused
// one.
func TestSealedTamper(t *testing.T) {
	msg := bytes.Repeat([]byte("tensor bytes "), 100)
	d, l := sealedPair(t)
	keys := l.r // the reader's keys before it read anything
	for _, p := range [][]byte{msg, msg} {
		if _, err := d.Write(p); err != nil {
			t.Fatal(err)
		}
	}
	if err := d.closeWrite(); err != nil {
		t.Fatal(err)
	}
	wire, err := io.ReadAll(l.tcp)
	if err != nil {
		t.Fatal(err)
	}
	rec := sealedHeader + len(msg) + sealedTag
	if len(wire) != 2*rec+sealedHeader+sealedTag {
		t.Fatalf("%d bytes on the wire, want two records and an end", len(wire))
	}
	if bytes.Contains(wire, msg[:64]) {
		t.Fatal("plaintext on the wire")
	}
	for _, tc := range []struct {
		name string
		mut  func([]byte) []byte
		good int   // records read intact before the failure
		want error // the failure
	}{
		{"intact", func(b []byte) []byte { return b }, 2, io.EOF},
		{"length", func(b []byte) []byte { b[rec+2] ^= 1; return b }, 1, ErrLaneIntegrity},
		{"ciphertext", func(b []byte) []byte { b[rec+sealedHeader+100] ^= 0x80; return b }, 1, ErrLaneIntegrity},
		{"tag", func(b []byte) []byte { b[2*rec-1] ^= 1; return b }, 1, ErrLaneIntegrity},
		{"replayed record", func(b []byte) []byte { return append(append([]byte{}, b[:rec]...), b[:rec]...) }, 1, ErrLaneIntegrity},
		{"records swapped", func(b []byte) []byte {
			b2 := append([]byte{}, b...)
			copy(b2[:rec], b[rec:2*rec])
			copy(b2[rec:2*rec], b[:rec])
			return b2
		}, 0, ErrLaneIntegrity},
		{"end record dropped", func(b []byte) []byte { return b[:2*rec] }, 2, io.ErrUnexpectedEOF},
		{"cut mid-record", func(b []byte) []byte { return b[:rec+10] }, 1, io.ErrUnexpectedEOF},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bad := tc.mut(append([]byte{}, wire...))
			r := &sealedConn{src: bytes.NewReader(bad), r: keys, in: make([]byte, sealedReadBuf)}
			got := 0
			buf := make([]byte, len(msg))
			for {
				n, err := io.ReadFull(r, buf)
				if err != nil {
					if !errors.Is(err, tc.want) || tc.want == io.EOF && err != io.EOF {
						t.Fatalf("after %d records: %v; want %v", got, err, tc.want)
					}
					break
				}
				if n != len(msg) || !bytes.Equal(buf, msg) {
					t.Fatalf("record %d: read %q", got, buf[:n])
				}
				got++
			}
			if got != tc.good {
				t.Fatalf("%d records read before the failure, want %d", got, tc.good)
			}
		})
	}
}

// FuzzSealedRead: whatever bytes arrive, the reader returns plaintext only
// of records that authenticate (none, for bytes not sealed by the
// writer's key) and otherwise an error, never a panic.
func FuzzSealedRead(f *testing.F) {
	var dir sealDir
	if err := dir.init(make([]byte, 32)); err != nil {
		f.Fatal(err)
	}
	w := dir
	rec := func(p []byte) []byte {
		hdr := []byte{0, 0, 0, 0}
		hdr[3] = byte(len(p) + sealedTag)
		return w.aead.Seal(hdr, w.next(len(p)), p, hdr)
	}
	f.Add(rec([]byte("a record")))
	f.Add([]byte{0, 0, 0, 20, 1, 2, 3})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff})
	f.Add(bytes.Repeat([]byte{0, 0, 0, 16}, 10))
	f.Fuzz(func(t *testing.T, b []byte) {
		r := &sealedConn{src: bytes.NewReader(b), r: dir, in: make([]byte, sealedReadBuf)}
		p := make([]byte, 64)
		total := 0
		for {
			k, err := r.Read(p)
			total += k
			if total > len(b) {
				t.Fatalf("%d bytes of plaintext from %d on the wire", total, len(b))
			}
			if err != nil {
				return
			}
		}
	})
}
