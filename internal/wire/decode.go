package wire

import (
	"encoding/binary"
	"errors"
	"io"
	"unicode/utf8"

	flatbuffers "github.com/google/flatbuffers/go"

	"github.com/ringo-ml/ringo/internal/wire/fb"
)

// Field slots (vtable offsets, 4 + 2*id) and sizes of the schema in
// frame.fbs. The generated accessors use the same slots; the round-trip tests
// fail if they ever disagree.
const (
	slotFrameKind  = 4
	slotFrameData  = 6
	slotFrameAbort = 8
	slotFrameHello = 10

	slotAbortEpoch  = 4
	slotAbortSeq    = 6
	slotAbortRank   = 8
	slotAbortCode   = 10
	slotAbortReason = 12

	slotHelloVersion  = 4
	slotHelloGroup    = 6
	slotHelloEpoch    = 8
	slotHelloWorld    = 10
	slotHelloRank     = 12
	slotHelloChannel  = 14
	slotHelloChannels = 16
	slotHelloView     = 18

	// Layout of the fb.DataHeader struct: field offsets and its size (44
	// bytes of fields, padded to its 8-byte alignment). Decode reads the
	// struct directly; TestDataHeaderLayout checks these against the
	// generated accessors.
	dhEpoch        = 0
	dhSeq          = 8
	dhCount        = 16
	dhPayloadLen   = 24
	dhStep         = 28
	dhChunk        = 32
	dhRoot         = 36
	dhOp           = 40
	dhDType        = 41
	dhReduce       = 42
	dhAlgo         = 43
	dataHeaderSize = 48
)

// Decode parses one size-prefixed frame in buf, which must hold exactly the
// prefix and the flatbuffer it announces (no payload), validates it (see the
// package documentation and the Validate methods) and stores it in f. On
// error f is unchanged and the error wraps ErrMalformed. Decoding a data
// frame does not allocate; the strings of abort and hello frames are copied.
func Decode(buf []byte, lim Limits, f *Frame) error {
	_, err := decode(buf, lim, f, false)
	return err
}

// ReadFrame reads one frame from r into scratch and decodes it into f. It
// reads the size prefix first and rejects sizes outside [16, MaxHeader]
// before reading any further, then reads exactly the flatbuffer; a data
// frame's payload is left unread in r for the caller. scratch must hold at
// least PrefixLen+MaxHeader bytes. Errors about the frame's bytes wrap
// ErrMalformed; errors of r are returned as they are, with io.EOF only when r
// ends cleanly before the first byte of a frame and io.ErrUnexpectedEOF when
// it ends inside one. Reading a data frame does not allocate.
func ReadFrame(r io.Reader, scratch []byte, lim Limits, f *Frame) error {
	if len(scratch) < PrefixLen+MaxHeader {
		return errScratch
	}
	if err := readFull(r, scratch[:PrefixLen]); err != nil {
		return err
	}
	size := binary.LittleEndian.Uint32(scratch)
	if size < minHeader || size > MaxHeader {
		return malformed("size prefix %d outside [%d, %d]", size, minHeader, MaxHeader)
	}
	n := PrefixLen + int(size)
	if err := readFull(r, scratch[PrefixLen:n]); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return err
	}
	return Decode(scratch[:n], lim, f)
}

// readFull is io.ReadFull (io.EOF if nothing was read, io.ErrUnexpectedEOF
// if part was) without the generic io.ReadAtLeast on the hot path.
func readFull(r io.Reader, p []byte) error {
	n := 0
	for n < len(p) {
		k, err := r.Read(p[n:])
		n += k
		if err != nil {
			if n == len(p) {
				return nil
			}
			if err == io.EOF && n > 0 {
				return io.ErrUnexpectedEOF
			}
			return err
		}
	}
	return nil
}

var errScratch = errors.New("wire: ReadFrame scratch shorter than PrefixLen+MaxHeader")

// table is a bounds-checked view of a flatbuffers table.
type table struct {
	buf    []byte
	pos    int // the table's position (of its soffset to the vtable)
	vt     int // the vtable's position
	vtLen  int // the vtable's length in bytes
	objLen int // the table's length in bytes, soffset included
}

func le16(b []byte, i int) int { return int(binary.LittleEndian.Uint16(b[i:])) }
func le32(b []byte, i int) int { return int(binary.LittleEndian.Uint32(b[i:])) }

// open checks that a table at pos and its vtable lie within buf.
func (t *table) open(buf []byte, pos int, what string) error {
	if pos < 0 || pos > len(buf)-4 {
		return malformed("%s table at %d outside %d-byte header", what, pos, len(buf))
	}
	vt := pos - int(int32(binary.LittleEndian.Uint32(buf[pos:])))
	if vt < 0 || vt > len(buf)-4 {
		return malformed("%s vtable at %d outside %d-byte header", what, vt, len(buf))
	}
	*t = table{buf: buf, pos: pos, vt: vt, vtLen: le16(buf, vt), objLen: le16(buf, vt+2)}
	if t.vtLen < 4 || t.vtLen&1 != 0 || t.vtLen > len(buf)-vt {
		return malformed("%s vtable length %d invalid", what, t.vtLen)
	}
	if t.objLen < 4 || t.objLen > len(buf)-pos {
		return malformed("%s table length %d invalid", what, t.objLen)
	}
	return nil
}

// field returns the position of the field in slot, 0 if it is absent, after
// checking that size bytes of it lie within the table.
func (t *table) field(slot, size int, what string) (int, error) {
	if slot+2 > t.vtLen {
		return 0, nil
	}
	o := le16(t.buf, t.vt+slot)
	if o == 0 {
		return 0, nil
	}
	if o < 4 || o+size > t.objLen {
		return 0, malformed("%s field at %d overflows %d-byte table", what, o, t.objLen)
	}
	return t.pos + o, nil
}

// ref follows the uoffset in slot; 0 if the field is absent.
func (t *table) ref(slot int, what string) (int, error) {
	p, err := t.field(slot, 4, what)
	if p == 0 || err != nil {
		return 0, err
	}
	off := le32(t.buf, p)
	if off == 0 || off > len(t.buf)-p {
		return 0, malformed("%s offset %d out of bounds", what, off)
	}
	return p + off, nil
}

// str checks the string referenced by slot and returns its bytes (nil if
// absent); it must hold at most max bytes and be NUL-terminated.
func (t *table) str(slot, max int, what string) ([]byte, error) {
	p, err := t.ref(slot, what)
	if p == 0 || err != nil {
		return nil, err
	}
	if p > len(t.buf)-4 {
		return nil, malformed("%s at %d outside header", what, p)
	}
	n := le32(t.buf, p)
	if n > max {
		return nil, malformed("%s of %d bytes exceeds %d", what, n, max)
	}
	end := p + 4 + n
	if end >= len(t.buf) {
		return nil, malformed("%s of %d bytes overruns header", what, n)
	}
	if t.buf[end] != 0 {
		return nil, malformed("%s not NUL-terminated", what)
	}
	return t.buf[p+4 : end], nil
}

// decode is Decode; it also returns the position of a data frame's
// DataHeader within the flatbuffer, for the Encoder's template. The checks in
// decodeUnsafe make a panic of the flatbuffers runtime unreachable; should
// one happen anyway, it becomes an error.
func decode(buf []byte, lim Limits, f *Frame, noValidate bool) (dataAt int, err error) {
	defer func() {
		if r := recover(); r != nil {
			dataAt, err = 0, malformed("flatbuffers: %v", r)
		}
	}()
	return decodeUnsafe(buf, lim, f, noValidate)
}

func decodeUnsafe(buf []byte, lim Limits, f *Frame, noValidate bool) (int, error) {
	if len(buf) < PrefixLen {
		return 0, malformed("%d bytes, shorter than the size prefix", len(buf))
	}
	size := binary.LittleEndian.Uint32(buf)
	if size < minHeader || size > MaxHeader {
		return 0, malformed("size prefix %d outside [%d, %d]", size, minHeader, MaxHeader)
	}
	if int(size) != len(buf)-PrefixLen {
		return 0, malformed("size prefix %d but %d bytes follow it", size, len(buf)-PrefixLen)
	}
	b := buf[PrefixLen:]
	if string(b[4:8]) != fileID {
		return 0, malformed("file identifier %q, want %q", b[4:8], fileID)
	}
	var root table
	if err := root.open(b, le32(b, 0), "frame"); err != nil {
		return 0, err
	}
	p, err := root.field(slotFrameKind, 1, "kind")
	if err != nil {
		return 0, err
	}
	var kind Kind
	if p != 0 {
		kind = Kind(b[p])
	}
	if !kind.Valid() {
		return 0, malformed("kind %d out of range", uint8(kind))
	}
	dp, err := root.field(slotFrameData, dataHeaderSize, "data header")
	if err != nil {
		return 0, err
	}
	ap, err := root.ref(slotFrameAbort, "abort body")
	if err != nil {
		return 0, err
	}
	hp, err := root.ref(slotFrameHello, "hello body")
	if err != nil {
		return 0, err
	}
	if (dp != 0) != (kind == KindData) || (ap != 0) != (kind == KindAbort) || (hp != 0) != (kind == KindHello) {
		return 0, bodyError(kind, [4]bool{KindData: dp != 0, KindAbort: ap != 0, KindHello: hp != 0})
	}
	switch kind {
	case KindData:
		s := b[dp : dp+dataHeaderSize]
		h := Header{
			Epoch:      binary.LittleEndian.Uint64(s[dhEpoch:]),
			Seq:        binary.LittleEndian.Uint64(s[dhSeq:]),
			Count:      binary.LittleEndian.Uint64(s[dhCount:]),
			PayloadLen: binary.LittleEndian.Uint32(s[dhPayloadLen:]),
			Step:       binary.LittleEndian.Uint32(s[dhStep:]),
			Chunk:      binary.LittleEndian.Uint32(s[dhChunk:]),
			Root:       int32(binary.LittleEndian.Uint32(s[dhRoot:])),
			Op:         Op(s[dhOp]),
			DType:      DType(s[dhDType]),
			Reduce:     ReduceOp(s[dhReduce]),
			Algo:       Algo(s[dhAlgo]),
		}
		if !noValidate {
			if err := h.Validate(lim); err != nil {
				return 0, err
			}
		}
		f.Kind, f.Data, f.Abort, f.Hello = KindData, h, Abort{}, Hello{}
		return dp, nil
	case KindAbort:
		var t table
		if err := t.open(b, ap, "abort body"); err != nil {
			return 0, err
		}
		if err := checkScalars(&t, "abort",
			slotAbortEpoch, 8, slotAbortSeq, 8, slotAbortRank, 4, slotAbortCode, 1); err != nil {
			return 0, err
		}
		reason, err := t.str(slotAbortReason, MaxReason, "abort reason")
		if err != nil {
			return 0, err
		}
		var ab fb.AbortBody
		ab.Init(b, flatbuffers.UOffsetT(ap))
		a := Abort{Epoch: ab.Epoch(), Seq: ab.Seq(), Rank: ab.Rank(), Code: Code(ab.Code())}
		if err := a.Validate(lim); err != nil { // the reason is checked next, before it is copied
			return 0, err
		}
		if !utf8.Valid(reason) {
			return 0, malformed("abort reason is not valid UTF-8")
		}
		a.Reason = string(reason)
		f.Kind, f.Data, f.Abort, f.Hello = KindAbort, Header{}, a, Hello{}
		return 0, nil
	default: // KindHello
		var t table
		if err := t.open(b, hp, "hello body"); err != nil {
			return 0, err
		}
		if err := checkScalars(&t, "hello",
			slotHelloVersion, 4, slotHelloEpoch, 8, slotHelloWorld, 4, slotHelloRank, 4,
			slotHelloChannel, 2, slotHelloChannels, 2, slotHelloView, 8); err != nil {
			return 0, err
		}
		group, err := t.str(slotHelloGroup, MaxGroup, "hello group")
		if err != nil {
			return 0, err
		}
		var hb fb.HelloBody
		hb.Init(b, flatbuffers.UOffsetT(hp))
		h := Hello{Version: hb.Version(), Epoch: hb.Epoch(), World: hb.World(), Rank: hb.Rank(),
			Channel: hb.Channel(), Channels: hb.Channels(), View: hb.View()}
		if err := h.Validate(lim); err != nil { // the group is checked next, before it is copied
			return 0, err
		}
		if !utf8.Valid(group) {
			return 0, malformed("hello group is not valid UTF-8")
		}
		h.Group = string(group)
		f.Kind, f.Data, f.Abort, f.Hello = KindHello, Header{}, Abort{}, h
		return 0, nil
	}
}

func bodyError(kind Kind, has [4]bool) error {
	if !has[kind] {
		return malformed("%v frame without its body", kind)
	}
	for k := KindData; k <= KindHello; k++ {
		if k != kind && has[k] {
			return malformed("%v frame also carries a body of kind %v", kind, k)
		}
	}
	return nil // unreachable
}

// checkScalars bounds-checks scalar fields given as (slot, size) pairs.
func checkScalars(t *table, what string, slotSize ...int) error {
	for i := 0; i+1 < len(slotSize); i += 2 {
		if _, err := t.field(slotSize[i], slotSize[i+1], what); err != nil {
			return err
		}
	}
	return nil
}
