package runtime

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"
)

func TestWireRoundTrip(t *testing.T) {
	q := request{op: opCall, actor: 42, name: "counter", method: "add", argType: "int64", resType: "int64", arg: []byte{1, 2, 3}}
	frame := q.encode(nil)
	body, err := readFrame(bytes.NewReader(frame), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	got, err := decodeRequest(body, 1<<20)
	if err != nil || !reflect.DeepEqual(got, q) {
		t.Fatalf("request: %+v, %v; want %+v", got, err, q)
	}
	p := response{status: stPanic, msg: strings.Repeat("é", maxMsgBytes), stack: make([]byte, maxStackBytes+10)}
	body, err = readFrame(bytes.NewReader(p.encode(nil)), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	r, err := decodeResponse(body, 1<<20)
	if err != nil || r.status != stPanic || len(r.msg) > maxMsgBytes || len(r.stack) != maxStackBytes || !strings.HasPrefix(p.msg, r.msg) {
		t.Fatalf("response: status %v, %d-byte message, %d-byte stack, %v", r.status, len(r.msg), len(r.stack), err)
	}
}

func TestWireRefusals(t *testing.T) {
	good := (&request{op: opTask, name: "f", argType: "int64", resType: "int64", arg: make([]byte, 60)}).encode(nil)[4:]
	for _, tc := range []struct {
		name string
		body []byte
		want string
	}{
		{"empty", nil, "version"},
		{"version", append([]byte{9}, good[1:]...), "version 9"},
		{"op", append([]byte{1, 0}, good[2:]...), "unknown op"},
		{"truncated", good[:len(good)-1], "needs"},
		{"trailing", append(bytes.Clone(good), 0), "after the end"},
		{"argument", good, "limit is 50"},
		{"no name", (&request{op: opTask}).encode(nil)[4:], "without a name"},
		{"control", (&request{op: opTask, name: "a\nb"}).encode(nil)[4:], "printable"},
	} {
		limit := 100
		if tc.name == "argument" {
			limit = 50
		}
		_, err := decodeRequest(tc.body, limit)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error about %q", tc.name, err, tc.want)
		}
	}
	if _, err := decodeRequest(good, 50); !errors.Is(err, ErrTooLarge) {
		t.Errorf("oversized argument: %v, want ErrTooLarge", err)
	}
	var h [4]byte
	binary.LittleEndian.PutUint32(h[:], math.MaxUint32)
	if _, err := readFrame(bytes.NewReader(h[:]), 1<<20); !errors.Is(err, ErrTooLarge) {
		t.Errorf("huge frame length: %v", err)
	}
	bad := (&response{status: stError, result: []byte{1}}).encode(nil)[4:]
	if _, err := decodeResponse(bad, 10); !errors.Is(err, ErrProtocol) {
		t.Errorf("failed response with a result: %v", err)
	}
}

func TestBuiltinCodecs(t *testing.T) {
	roundTrip(t, int64(-5))
	roundTrip(t, -7)
	roundTrip(t, uint8(200))
	roundTrip(t, float32(1.5))
	roundTrip(t, math.Inf(-1))
	roundTrip(t, true)
	roundTrip(t, "héllo")
	roundTrip(t, []byte{0, 1, 2})
	roundTrip(t, []float32{1, -2, 3.5})
	roundTrip(t, []float64{math.Pi})
	roundTrip(t, []int32{-1, 2})
	roundTrip(t, []int64{math.MinInt64})
	roundTrip(t, struct{}{})
	type pair struct{ A, B int32 }
	bc := BinaryCodec[pair]()
	b, _ := bc.Encode(nil, pair{1, -2})
	if v, err := bc.Decode(b); err != nil || v != (pair{1, -2}) {
		t.Fatalf("binary codec: %v, %v", v, err)
	}
	if _, err := bc.Decode(b[:7]); err == nil {
		t.Fatal("binary codec took 7 bytes")
	}
	jc := JSONCodec[pair]()
	for _, in := range []string{`{"A":1,"C":2}`, `{"A":1} {}`, `[`} {
		if _, err := jc.Decode([]byte(in)); err == nil {
			t.Errorf("json codec took %q", in)
		}
	}
	c, _ := codecFor[[]float32]()
	if _, err := c.Decode(make([]byte, 7)); err == nil {
		t.Error("[]float32 took 7 bytes")
	}
	cb, _ := codecFor[bool]()
	if _, err := cb.Decode([]byte{2}); err == nil {
		t.Error("bool took 2")
	}
}

func roundTrip[T any](t *testing.T, v T) {
	t.Helper()
	c, err := codecFor[T]()
	if err != nil {
		t.Fatal(err)
	}
	b, err := c.Encode(nil, v)
	if err != nil {
		t.Fatal(err)
	}
	got, err := c.Decode(b)
	if err != nil || !reflect.DeepEqual(got, v) {
		t.Fatalf("%T: %v, %v; want %v", v, got, err, v)
	}
}
