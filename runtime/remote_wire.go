package runtime

import (
	"encoding/binary"
	"fmt"
	"io"
	"unicode/utf8"
)

// The envelope of remote calls. Every call is one QUIC stream: the driver
// writes one request frame and closes its side, the worker writes one
// response frame and closes its side. A frame is a 4-byte little-endian
// length and that many bytes; the receiver checks the length against its
// limit before allocating anything.
//
//	request:  version u8 | op u8 | actor u64 | name | method | argType | resType | arg
//	response: version u8 | status u8 | message | stack | result
//
// where name, method, argType, resType are u16-length-prefixed strings
// and arg, message, stack, result u32-length-prefixed byte strings. Every
// length is checked against what is left of the frame and against its
// field's limit; strings must be UTF-8 without control characters; trailing
// bytes are an error.

const (
	wireVersion = 1

	maxNameBytes  = 256       // function, actor type and method names
	maxTypeBytes  = 512       // type names
	maxMsgBytes   = 16 << 10  // error messages (longer ones are cut)
	maxStackBytes = 64 << 10  // panic stacks (longer ones are cut)
	frameOverhead = 128 << 10 // a frame's bytes beyond its argument or result, at most

	// DefaultMaxMessageBytes bounds a remote call's encoded argument and
	// its encoded result unless configured otherwise.
	DefaultMaxMessageBytes = 16 << 20
	// MaxMessageBytesLimit is the largest configurable bound.
	MaxMessageBytesLimit = 1 << 30
)

// op is what a request asks for.
type op uint8

const (
	opTask  op = 1 + iota // run a registered function
	opSpawn               // build an actor instance
	opCall                // call a method of an actor instance
	opKill                // drop an actor instance
	opPing                // answer (a liveness check)
	opLimit
)

func (o op) String() string {
	switch o {
	case opTask:
		return "task"
	case opSpawn:
		return "spawn"
	case opCall:
		return "call"
	case opKill:
		return "kill"
	case opPing:
		return "ping"
	}
	return fmt.Sprintf("op(%d)", uint8(o))
}

// status is how a request ended.
type status uint8

const (
	stOK            status = iota
	stError                // the function or method returned an error
	stPanic                // it panicked
	stNotRegistered        // no function, actor type or method of that name
	stTypeMismatch         // the call's types differ from the registered ones
	stTooLarge             // the argument or the result is over the limit
	stCanceled             // the driver cancelled the call
	stActorGone            // no such actor instance, or it died
	stBadRequest           // the request did not decode
	stClosing              // the worker is shutting down
	stLimit
)

type request struct {
	op      op
	actor   uint64 // spawn, call, kill: the instance's id, chosen by the driver
	name    string // task: the function; spawn, call: the actor type
	method  string // call: the method
	argType string // task, spawn, call
	resType string // task, call
	arg     []byte
}

type response struct {
	status status
	msg    string
	stack  []byte
	result []byte
}

func appendStr16(b []byte, s string) []byte {
	b = binary.LittleEndian.AppendUint16(b, uint16(len(s)))
	return append(b, s...)
}

func appendBytes32(b, s []byte) []byte {
	b = binary.LittleEndian.AppendUint32(b, uint32(len(s)))
	return append(b, s...)
}

// encode appends the request's frame (length prefix included). The
// caller has checked the limits of names and the argument.
func (r *request) encode(b []byte) []byte {
	at := len(b)
	b = append(b, 0, 0, 0, 0, wireVersion, byte(r.op))
	b = binary.LittleEndian.AppendUint64(b, r.actor)
	b = appendStr16(b, r.name)
	b = appendStr16(b, r.method)
	b = appendStr16(b, r.argType)
	b = appendStr16(b, r.resType)
	b = appendBytes32(b, r.arg)
	binary.LittleEndian.PutUint32(b[at:], uint32(len(b)-at-4))
	return b
}

// encode appends the response's frame; overlong messages and stacks are
// cut to their limits.
func (r *response) encode(b []byte) []byte {
	msg, stack := r.msg, r.stack
	if len(msg) > maxMsgBytes {
		msg = truncUTF8(msg, maxMsgBytes)
	}
	if len(stack) > maxStackBytes {
		stack = stack[:maxStackBytes]
	}
	at := len(b)
	b = append(b, 0, 0, 0, 0, wireVersion, byte(r.status))
	b = appendBytes32(b, []byte(msg))
	b = appendBytes32(b, stack)
	b = appendBytes32(b, r.result)
	binary.LittleEndian.PutUint32(b[at:], uint32(len(b)-at-4))
	return b
}

// truncUTF8 cuts s to at most n bytes without splitting a character.
func truncUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// reader walks a frame, checking every length.
type reader struct {
	b   []byte
	err error
}

func (r *reader) fail(format string, args ...any) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: "+format, append([]any{ErrProtocol}, args...)...)
	}
}

func (r *reader) take(n int, what string) []byte {
	if r.err != nil {
		return nil
	}
	if n > len(r.b) {
		r.fail("%s needs %d bytes, %d left", what, n, len(r.b))
		return nil
	}
	out := r.b[:n:n]
	r.b = r.b[n:]
	return out
}

func (r *reader) u8(what string) uint8 {
	b := r.take(1, what)
	if b == nil {
		return 0
	}
	return b[0]
}

func (r *reader) u64(what string) uint64 {
	b := r.take(8, what)
	if b == nil {
		return 0
	}
	return binary.LittleEndian.Uint64(b)
}

// str reads a u16-prefixed string of at most limit bytes, UTF-8 without
// control characters.
func (r *reader) str(limit int, what string) string {
	h := r.take(2, what+" length")
	if h == nil {
		return ""
	}
	n := int(binary.LittleEndian.Uint16(h))
	if n > limit {
		r.fail("%s is %d bytes, the limit is %d", what, n, limit)
		return ""
	}
	b := r.take(n, what)
	if b == nil {
		return ""
	}
	if !printableName(b) {
		r.fail("%s is not printable UTF-8", what)
		return ""
	}
	return string(b)
}

// bytes32 reads a u32-prefixed byte string of at most limit bytes; the
// result aliases the frame.
func (r *reader) bytes32(limit int, what string) []byte {
	h := r.take(4, what+" length")
	if h == nil {
		return nil
	}
	n := uint64(binary.LittleEndian.Uint32(h))
	if n > uint64(limit) {
		if r.err == nil {
			r.err = fmt.Errorf("%w: %s is %d bytes, the limit is %d", ErrTooLarge, what, n, limit)
		}
		return nil
	}
	return r.take(int(n), what)
}

func (r *reader) end() {
	if r.err == nil && len(r.b) != 0 {
		r.fail("%d bytes after the end", len(r.b))
	}
}

func printableName(b []byte) bool {
	if !utf8.Valid(b) {
		return false
	}
	for _, c := range string(b) {
		if c < 0x20 || c == 0x7f {
			return false
		}
	}
	return true
}

// decodeRequest parses a request frame's body (without its length
// prefix). maxArg bounds the argument. The request aliases b.
func decodeRequest(b []byte, maxArg int) (request, error) {
	rd := reader{b: b}
	var q request
	if v := rd.u8("version"); rd.err == nil && v != wireVersion {
		return q, fmt.Errorf("%w: version %d, this process speaks %d", ErrProtocol, v, wireVersion)
	}
	q.op = op(rd.u8("op"))
	if rd.err == nil && (q.op == 0 || q.op >= opLimit) {
		rd.fail("unknown op %d", uint8(q.op))
	}
	q.actor = rd.u64("actor id")
	q.name = rd.str(maxNameBytes, "name")
	q.method = rd.str(maxNameBytes, "method")
	q.argType = rd.str(maxTypeBytes, "argument type")
	q.resType = rd.str(maxTypeBytes, "result type")
	q.arg = rd.bytes32(maxArg, "argument")
	rd.end()
	if rd.err != nil {
		return request{}, rd.err
	}
	switch {
	case (q.op == opTask || q.op == opSpawn || q.op == opCall) && q.name == "":
		return request{}, fmt.Errorf("%w: %v request without a name", ErrProtocol, q.op)
	case q.op == opCall && q.method == "":
		return request{}, fmt.Errorf("%w: call request without a method", ErrProtocol)
	}
	return q, nil
}

// decodeResponse parses a response frame's body. maxResult bounds the
// result. The response aliases b.
func decodeResponse(b []byte, maxResult int) (response, error) {
	rd := reader{b: b}
	var p response
	if v := rd.u8("version"); rd.err == nil && v != wireVersion {
		return p, fmt.Errorf("%w: version %d, this process speaks %d", ErrProtocol, v, wireVersion)
	}
	p.status = status(rd.u8("status"))
	if rd.err == nil && p.status >= stLimit {
		rd.fail("unknown status %d", uint8(p.status))
	}
	msg := rd.bytes32(maxMsgBytes, "message")
	if rd.err == nil && !utf8.Valid(msg) {
		rd.fail("message is not UTF-8")
	}
	p.msg = string(msg)
	p.stack = rd.bytes32(maxStackBytes, "stack")
	p.result = rd.bytes32(maxResult, "result")
	rd.end()
	if rd.err != nil {
		return response{}, rd.err
	}
	if p.status != stOK && len(p.result) != 0 {
		return response{}, fmt.Errorf("%w: a failed call carries a result", ErrProtocol)
	}
	return p, nil
}

// frameTooLarge reports a frame over the receiver's limit.
type frameTooLarge struct{ size, limit uint64 }

func (e *frameTooLarge) Error() string {
	return fmt.Sprintf("message of %d bytes exceeds the limit of %d", e.size, e.limit)
}

func (e *frameTooLarge) Unwrap() error { return ErrTooLarge }

// readFrame reads one length-prefixed frame of at most limit bytes. The
// length is checked before anything is allocated.
func readFrame(r io.Reader, limit int) ([]byte, error) {
	var h [4]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return nil, err
	}
	n := uint64(binary.LittleEndian.Uint32(h[:]))
	if n > uint64(limit) {
		return nil, &frameTooLarge{size: n, limit: uint64(limit)}
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	return b, nil
}
