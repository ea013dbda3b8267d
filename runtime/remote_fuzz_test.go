package runtime

import (
	"bytes"
	"testing"
)

// FuzzDecodeRequest: a worker decodes whatever a connection sends. It
// must never panic, never accept an argument over its limit, and what it
// accepts must encode back to the same bytes.
func FuzzDecodeRequest(f *testing.F) {
	for _, q := range []request{
		{op: opTask, name: "square", argType: "int64", resType: "int64", arg: []byte{1, 0, 0, 0, 0, 0, 0, 0}},
		{op: opSpawn, actor: 7, name: "counter", argType: "int64", resType: "*main.Counter"},
		{op: opCall, actor: 7, name: "counter", method: "add", argType: "int64", resType: "int64", arg: make([]byte, 8)},
		{op: opKill, actor: 7},
		{op: opPing},
	} {
		f.Add(q.encode(nil)[4:])
	}
	f.Add([]byte{1, 9})
	f.Fuzz(func(t *testing.T, b []byte) {
		const limit = 1 << 10
		q, err := decodeRequest(b, limit)
		if err != nil {
			return
		}
		if len(q.arg) > limit || len(q.name) > maxNameBytes || q.op == 0 || q.op >= opLimit {
			t.Fatalf("accepted %+v", q)
		}
		if again := q.encode(nil)[4:]; !bytes.Equal(again, b) {
			t.Fatalf("re-encoded %x, decoded from %x", again, b)
		}
	})
}

// FuzzDecodeResponse: a driver decodes whatever a worker sends.
func FuzzDecodeResponse(f *testing.F) {
	for _, r := range []response{
		{result: []byte("ok")},
		{status: stError, msg: "disk full"},
		{status: stPanic, msg: "boom", stack: []byte("goroutine 1 [running]:")},
		{status: stNotRegistered, msg: `function "x" is not registered`},
	} {
		f.Add(r.encode(nil)[4:])
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		const limit = 1 << 10
		r, err := decodeResponse(b, limit)
		if err != nil {
			return
		}
		if len(r.result) > limit || len(r.msg) > maxMsgBytes || len(r.stack) > maxStackBytes || r.status >= stLimit {
			t.Fatalf("accepted %+v", r)
		}
		if again := r.encode(nil)[4:]; !bytes.Equal(again, b) {
			t.Fatalf("re-encoded %x, decoded from %x", again, b)
		}
	})
}

// FuzzReadFrame: the length prefix is checked before allocating.
func FuzzReadFrame(f *testing.F) {
	f.Add([]byte{3, 0, 0, 0, 1, 2, 3})
	f.Add([]byte{255, 255, 255, 255})
	f.Fuzz(func(t *testing.T, b []byte) {
		body, err := readFrame(bytes.NewReader(b), 64)
		if err == nil && (len(body) > 64 || len(body) != len(b)-4 && len(b) < 4+len(body)) {
			t.Fatalf("read %d bytes from %d", len(body), len(b))
		}
	})
}

// FuzzBuiltinCodecs: the built-in codecs decode network bytes; they must
// not panic, and what they accept must encode back to the same bytes.
func FuzzBuiltinCodecs(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{1})
	f.Add([]byte{1, 2, 3, 4, 5, 6, 7, 8})
	f.Add([]byte(`{"A":1}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		fuzzCodec[int64](t, b)
		fuzzCodec[int32](t, b)
		fuzzCodec[uint16](t, b)
		fuzzCodec[int8](t, b)
		fuzzCodec[float64](t, b)
		fuzzCodec[bool](t, b)
		fuzzCodec[string](t, b)
		fuzzCodec[[]byte](t, b)
		fuzzCodec[[]float32](t, b)
		fuzzCodec[[]int64](t, b)
		fuzzCodec[struct{}](t, b)
		type pair struct{ A, B int32 }
		_, _ = JSONCodec[pair]().Decode(b)
		_, _ = BinaryCodec[pair]().Decode(b)
	})
}

func fuzzCodec[T any](t *testing.T, b []byte) {
	c, err := codecFor[T]()
	if err != nil {
		t.Fatal(err)
	}
	v, err := c.Decode(b)
	if err != nil {
		return
	}
	again, err := c.Encode(nil, v)
	if err != nil || !bytes.Equal(again, b) {
		t.Fatalf("%T: re-encoded %x (%v), decoded from %x", v, again, err, b)
	}
}
