package transport

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/sha256"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
)

// The record layer of TLS lanes.
//
// A TLS lane authenticates with a TLS 1.3 handshake (crypto/tls: both
// certificates checked, pinned), then protects its bytes with records of
// its own, keyed from the handshake through TLS's exporter (RFC 8446
// §7.5) — as QUIC (RFC 9001) and DTLS-SRTP (RFC 5764) protect their
// packets with keys from a TLS handshake. crypto/tls's own records carry
// at most 16 KiB each, and each costs a copy of the plaintext into the
// record and, on the receiving side, a copy out of it, beside the
// encryption itself and a system call per record; on a machine whose
// cores are busy with a ring of ranks those copies cost as much as a
// quarter of the encryption again. A sealed record holds up to
// sealedMaxRecord bytes, is encrypted straight from the caller's buffer
// into the record and decrypted straight into the caller's buffer, and
// goes to the kernel in one system call.
//
// Keys. Each side computes exporter("EXPORTER-ringo-lane-v1", "", 64):
// the first 32 bytes are the secret of the direction from the dialer
// (the TLS client) to the listener, the last 32 of the other. From a
// direction's secret s, HKDF-Expand(SHA-256) gives the AES-128-GCM key
// ("ringo lane key", 16 bytes), the IV ("ringo lane iv", 12 bytes), and,
// after sealedRekeyBytes of plaintext, the next secret ("ringo lane
// next", 32 bytes): both sides count the bytes and move to the next key
// after the same record, so no AES-GCM key ever protects more than
// sealedRekeyBytes (TLS 1.3 bounds AES-GCM at 2^24.5 full records, about
// 390 GB, per key; crypto/tls never updates its keys on its own, so a
// long-lived crypto/tls connection would pass that bound).
//
// Records. A 4-byte big-endian length L (of the ciphertext: the
// plaintext and the 16-byte tag), then the ciphertext, sealed with nonce
// IV XOR the record's sequence number (64 bits, in the last 8 bytes; 0
// for the first record under each key) and the 4 length bytes as
// additional data. A record with an empty plaintext ends the stream in
// an orderly way (like TLS's close_notify): a reader that reaches the end
// of the TCP stream without it reports truncation. Any change of a byte
// — length, ciphertext, order, a record dropped, replayed or inserted —
// fails the tag check, and the lane is dead from then on.

const (
	sealedLabel     = "EXPORTER-ringo-lane-v1"
	sealedHeader    = 4
	sealedTag       = 16
	sealedMaxRecord = 256 << 10 // plaintext bytes per record
	// sealedReadBuf holds a few records of ciphertext, so that one read
	// of the socket takes several when the sender is ahead.
	sealedReadBuf = 4 * (sealedHeader + sealedMaxRecord + sealedTag)
)

// sealedRekeyBytes is how much plaintext one key protects in each
// direction; a variable for tests.
var sealedRekeyBytes uint64 = 16 << 30

// ErrLaneIntegrity reports a lane record that failed authentication: its
// bytes were altered, dropped, reordered or inserted on the way.
var ErrLaneIntegrity = errors.New("lane record failed authentication (altered in transit)")

// errLaneCut reports a lane whose TCP stream ended without its end
// record: the peer died (its kernel closed the connection) or the
// connection was cut. What was read before it was authenticated; what
// was not is missing, so the operation fails like one whose peer was
// lost.
var errLaneCut = fmt.Errorf("the lane ended without its end record (peer gone, or connection cut): %w", io.ErrUnexpectedEOF)

// sealDir is one direction's keys.
type sealDir struct {
	secret [32]byte
	aead   cipher.AEAD
	iv     [12]byte
	seq    uint64
	bytes  uint64 // plaintext under the current key
	nonce  [12]byte
}

func (d *sealDir) init(secret []byte) error {
	copy(d.secret[:], secret)
	key, err := hkdf.Expand(sha256.New, d.secret[:], "ringo lane key", 16)
	if err != nil {
		return err
	}
	iv, err := hkdf.Expand(sha256.New, d.secret[:], "ringo lane iv", 12)
	if err != nil {
		return err
	}
	blk, err := aes.NewCipher(key)
	if err != nil {
		return err
	}
	if d.aead, err = cipher.NewGCM(blk); err != nil {
		return err
	}
	copy(d.iv[:], iv)
	d.seq, d.bytes = 0, 0
	return nil
}

// next returns the nonce of the next record and counts it.
func (d *sealDir) next(n int) []byte {
	d.nonce = d.iv
	var s [8]byte
	binary.BigEndian.PutUint64(s[:], d.seq)
	for i := range s {
		d.nonce[4+i] ^= s[i]
	}
	d.seq++
	d.bytes += uint64(n)
	return d.nonce[:]
}

// rekey moves to the next key once this one has protected its share.
func (d *sealDir) rekey() error {
	if d.bytes < sealedRekeyBytes {
		return nil
	}
	next, err := hkdf.Expand(sha256.New, d.secret[:], "ringo lane next", 32)
	if err != nil {
		return err
	}
	return d.init(next)
}

// sealedConn is a TCP connection carrying sealed records. One goroutine
// reads and one writes at a time (the link's workers); closeWrite may
// come from another, and is serialised with Write.
type sealedConn struct {
	tcp *net.TCPConn
	src io.Reader // what records are read from: tcp (tests: captured bytes)

	wmu  sync.Mutex
	w    sealDir
	out  []byte // header and ciphertext of the record being written
	werr error  // a failed write leaves the stream out of step: permanent

	r     sealDir
	in    []byte // ciphertext read and not yet opened: in[rpos:rend]
	rpos  int
	rend  int
	plain []byte // opened plaintext not yet read (it lies in in)
	rerr  error  // permanent read failure (integrity, protocol, end)
}

// newSealedConn keys a sealed connection from a finished TLS handshake on
// tc; dialer says which end this is.
func newSealedConn(tc *net.TCPConn, cs tls.ConnectionState, dialer bool) (*sealedConn, error) {
	km, err := cs.ExportKeyingMaterial(sealedLabel, nil, 64)
	if err != nil {
		return nil, fmt.Errorf("exporting keys: %w", err)
	}
	out, in := km[:32], km[32:]
	if !dialer {
		out, in = in, out
	}
	s := &sealedConn{tcp: tc, src: tc, out: make([]byte, sealedHeader+sealedMaxRecord+sealedTag), in: make([]byte, sealedReadBuf)}
	if err := s.w.init(out); err != nil {
		return nil, err
	}
	if err := s.r.init(in); err != nil {
		return nil, err
	}
	clear(km)
	return s, nil
}

// Write seals p into records of at most sealedMaxRecord bytes and writes
// each with one system call.
func (s *sealedConn) Write(p []byte) (int, error) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	done := 0
	for len(p) > 0 { // an empty Write writes nothing: an empty record ends the stream
		k := min(len(p), sealedMaxRecord)
		if err := s.writeRecord(p[:k]); err != nil {
			return done, err
		}
		done += k
		p = p[k:]
	}
	return done, nil
}

// writeRecord seals and writes one record; an empty p is the end of the
// stream.
func (s *sealedConn) writeRecord(p []byte) error {
	if s.werr != nil {
		return s.werr
	}
	hdr := s.out[:sealedHeader]
	binary.BigEndian.PutUint32(hdr, uint32(len(p)+sealedTag))
	ct := s.w.aead.Seal(s.out[sealedHeader:sealedHeader], s.w.next(len(p)), p, hdr)
	if _, err := s.tcp.Write(s.out[:sealedHeader+len(ct)]); err != nil {
		s.werr = err
		return err
	}
	if err := s.w.rekey(); err != nil {
		s.werr = err
		return err
	}
	return nil
}

// closeWrite sends the end-of-stream record, then FIN.
func (s *sealedConn) closeWrite() error {
	s.wmu.Lock()
	err := s.writeRecord(nil)
	s.werr = io.ErrClosedPipe
	s.wmu.Unlock()
	if cerr := s.tcp.CloseWrite(); err == nil {
		err = cerr
	}
	return err
}

// Read returns the plaintext of the next record, or of what is left of
// it: a record no larger than p is decrypted straight into p.
func (s *sealedConn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if len(s.plain) > 0 {
		n := copy(p, s.plain)
		s.plain = s.plain[n:]
		return n, nil
	}
	if s.rerr != nil {
		return 0, s.rerr
	}
	if err := s.fill(sealedHeader); err != nil {
		return 0, err
	}
	hdr := s.in[s.rpos : s.rpos+sealedHeader]
	n := int(binary.BigEndian.Uint32(hdr))
	if n < sealedTag || n > sealedMaxRecord+sealedTag {
		s.rerr = fmt.Errorf("%w: a record of %d bytes (at most %d)", ErrLaneIntegrity, n, sealedMaxRecord+sealedTag)
		return 0, s.rerr
	}
	if err := s.fill(sealedHeader + n); err != nil {
		return 0, err
	}
	hdr = s.in[s.rpos : s.rpos+sealedHeader]
	ct := s.in[s.rpos+sealedHeader : s.rpos+sealedHeader+n]
	s.rpos += sealedHeader + n
	pt := n - sealedTag
	dst := ct[:0] // in place, then copied out
	if pt <= len(p) {
		dst = p[:0]
	}
	out, err := s.r.aead.Open(dst, s.r.next(pt), ct, hdr)
	if err != nil {
		s.rerr = ErrLaneIntegrity
		return 0, s.rerr
	}
	if err := s.r.rekey(); err != nil {
		s.rerr = err
		return 0, err
	}
	if pt == 0 {
		s.rerr = io.EOF
		return 0, io.EOF
	}
	if pt <= len(p) {
		return pt, nil
	}
	k := copy(p, out)
	s.plain = out[k:]
	return k, nil
}

// fill makes in hold at least n unread bytes, reading as much as the
// socket has.
func (s *sealedConn) fill(n int) error {
	for s.rend-s.rpos < n {
		if s.rpos+n > len(s.in) {
			// Move what is left of the current record to the front.
			s.rend = copy(s.in, s.in[s.rpos:s.rend])
			s.rpos = 0
		}
		k, err := s.src.Read(s.in[s.rend:])
		s.rend += k
		if err != nil {
			if s.rend-s.rpos >= n {
				break
			}
			if errors.Is(err, io.EOF) {
				// The peer's TCP ended without the end-of-stream record.
				s.rerr = errLaneCut
				return s.rerr
			}
			var ne net.Error
			if !errors.As(err, &ne) || !ne.Timeout() {
				s.rerr = err
			}
			return err
		}
	}
	return nil
}
