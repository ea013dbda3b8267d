package wire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	flatbuffers "github.com/google/flatbuffers/go"

	"github.com/ringo-ml/ringo/internal/wire/fb"
)

var lim = Limits{MaxPayload: 1 << 20, MaxWorld: 1024}

func dataHeader() Header {
	return Header{Epoch: 7, Seq: 42, Op: OpAllReduce, DType: Float32, Count: 1 << 20,
		Reduce: RedSum, Root: -1, Algo: AlgoRing, Step: 3, Chunk: 9, PayloadLen: 65536}
}

func sampleFrames() []Frame {
	return []Frame{
		{Kind: KindData, Data: dataHeader()},
		{Kind: KindAbort, Abort: Abort{Epoch: 7, Seq: 42, Rank: 3, Code: CodeMismatch, Reason: "rank 3 called AllReduce, rank 0 called Broadcast"}},
		{Kind: KindHello, Hello: Hello{Version: Version, Group: "job-17", Epoch: 7, World: 8, Rank: 5}},
		{Kind: KindHello, Hello: Hello{Version: Version, Group: "job-17", Epoch: 7, World: 8, Rank: 5, Channel: 3, Channels: 4}},
	}
}

func encode(e *Encoder, f *Frame) []byte {
	switch f.Kind {
	case KindData:
		return e.EncodeData(&f.Data)
	case KindAbort:
		return e.EncodeAbort(&f.Abort)
	case KindHello:
		return e.EncodeHello(&f.Hello)
	}
	panic("bad kind")
}

// roundTrip encodes f, decodes it with l and checks the result equals f.
func roundTrip(t *testing.T, e *Encoder, f Frame, l Limits) {
	t.Helper()
	buf := append([]byte(nil), encode(e, &f)...)
	if n := binary.LittleEndian.Uint32(buf); int(n) != len(buf)-PrefixLen || n > MaxHeader {
		t.Fatalf("size prefix %d, frame %d bytes", n, len(buf))
	}
	var got Frame
	if err := Decode(buf, l, &got); err != nil {
		t.Fatalf("Decode(%+v): %v", f, err)
	}
	if got != f {
		t.Fatalf("round trip:\n got %+v\nwant %+v", got, f)
	}
	// ReadFrame reads exactly the header, never into the payload.
	r := &strictReader{t: t, data: buf}
	got = Frame{}
	if err := ReadFrame(r, make([]byte, PrefixLen+MaxHeader), l, &got); err != nil {
		t.Fatalf("ReadFrame: %v", err)
	}
	if got != f {
		t.Fatalf("ReadFrame:\n got %+v\nwant %+v", got, f)
	}
	if len(r.data) != 0 {
		t.Fatalf("ReadFrame left %d header bytes unread", len(r.data))
	}
}

func TestRoundTripAllKinds(t *testing.T) {
	e := NewEncoder()
	for _, f := range sampleFrames() {
		roundTrip(t, e, f, lim)
	}
}

func TestRoundTripDataExtremes(t *testing.T) {
	e := NewEncoder()
	big := Limits{MaxPayload: math.MaxUint32, MaxWorld: math.MaxInt32}
	for op := OpAllReduce; op <= OpSendRecv; op++ {
		for dt := Float32; dt <= Float64; dt++ {
			for al := AlgoRing; al <= AlgoTree; al++ {
				reds := []ReduceOp{RedNone}
				if op.Reduces() {
					reds = []ReduceOp{RedSum, RedProd, RedMin, RedMax, RedAvg}
				}
				roots := []int32{-1}
				if op.Rooted() {
					roots = []int32{0, math.MaxInt32 - 1}
				} else if op == OpSendRecv {
					roots = []int32{-1, 0, math.MaxInt32 - 1}
				}
				for _, red := range reds {
					for _, root := range roots {
						h := Header{Epoch: math.MaxUint64, Seq: math.MaxUint64, Op: op, DType: dt,
							Count: math.MaxInt64 / uint64(dt.Size()), Reduce: red, Root: root, Algo: al,
							Step: math.MaxUint32, Chunk: math.MaxUint32,
							PayloadLen: math.MaxUint32 / uint32(dt.Size()) * uint32(dt.Size())}
						roundTrip(t, e, Frame{Kind: KindData, Data: h}, big)
						h = Header{Op: op, DType: dt, Reduce: red, Root: root, Algo: al} // zeros
						roundTrip(t, e, Frame{Kind: KindData, Data: h}, big)
					}
				}
			}
		}
	}
}

func TestRoundTripAbortHelloExtremes(t *testing.T) {
	e := NewEncoder()
	big := Limits{MaxWorld: math.MaxInt32}
	maxReason := strings.Repeat("é", MaxReason/2) // 512 bytes of 2-byte runes
	maxGroup := strings.Repeat("g", MaxGroup)
	for code := CodeMismatch; code <= CodePong; code++ {
		roundTrip(t, e, Frame{Kind: KindAbort, Abort: Abort{Epoch: math.MaxUint64, Seq: math.MaxUint64,
			Rank: math.MaxInt32 - 1, Code: code, Reason: maxReason}}, big)
		roundTrip(t, e, Frame{Kind: KindAbort, Abort: Abort{Code: code}}, lim)
	}
	roundTrip(t, e, Frame{Kind: KindHello, Hello: Hello{Version: Version, Group: maxGroup,
		Epoch: math.MaxUint64, World: math.MaxInt32, Rank: math.MaxInt32 - 1, View: math.MaxUint64}}, big)
	roundTrip(t, e, Frame{Kind: KindHello, Hello: Hello{Version: Version, World: 1}}, lim)
}

// TestFrameSizes pins the sizes the documentation states.
func TestFrameSizes(t *testing.T) {
	e := NewEncoder()
	if n := len(e.EncodeData(&Header{})) - PrefixLen; n != 76 {
		t.Errorf("data frame flatbuffer is %d bytes, documented 76", n)
	}
	a := Abort{Epoch: 1, Seq: 1, Rank: 1, Code: CodeInternal, Reason: strings.Repeat("x", MaxReason)}
	if n := len(e.EncodeAbort(&a)) - PrefixLen; n != 604 {
		t.Errorf("largest abort flatbuffer is %d bytes, documented 604", n)
	}
	h := Hello{Version: Version, Group: strings.Repeat("x", MaxGroup), Epoch: 1, World: 2, Rank: 1}
	if n := len(e.EncodeHello(&h)) - PrefixLen; n != 212 {
		t.Errorf("largest hello flatbuffer is %d bytes, documented 212", n)
	}
}

// TestEncodeDataMatchesBuilder checks the template path of EncodeData against
// a frame built field by field with the flatbuffers Builder.
func TestEncodeDataMatchesBuilder(t *testing.T) {
	e := NewEncoder()
	b := flatbuffers.NewBuilder(0)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 10000; i++ {
		h := Header{Epoch: rng.Uint64(), Seq: rng.Uint64(), Op: Op(rng.Uint32()), DType: DType(rng.Uint32()),
			Count: rng.Uint64(), Reduce: ReduceOp(rng.Uint32()), Root: int32(rng.Uint32()), Algo: Algo(rng.Uint32()),
			Step: rng.Uint32(), Chunk: rng.Uint32(), PayloadLen: rng.Uint32()}
		if i == 0 {
			h = Header{}
		}
		got, want := e.EncodeData(&h), buildData(b, &h)
		if !bytes.Equal(got, want) {
			t.Fatalf("header %+v:\nEncodeData %x\nBuilder    %x", h, got, want)
		}
		// The generated reader sees the same values.
		fr := fb.GetSizePrefixedRootAsFrame(got, 0)
		d := fr.Data(nil)
		if fr.Kind() != fb.KindData || d == nil || d.Epoch() != h.Epoch || d.Seq() != h.Seq ||
			d.Count() != h.Count || d.PayloadLen() != h.PayloadLen || d.Step() != h.Step ||
			d.Chunk() != h.Chunk || d.Root() != h.Root || Op(d.Op()) != h.Op || DType(d.Dtype()) != h.DType ||
			ReduceOp(d.Reduce()) != h.Reduce || Algo(d.Algo()) != h.Algo {
			t.Fatalf("generated reader disagrees for %+v", h)
		}
	}
}

func TestEnumsMatchSchema(t *testing.T) {
	check := func(name string, ours, theirs uint8) {
		t.Helper()
		if ours != theirs {
			t.Errorf("%s: wire %d, schema %d", name, ours, theirs)
		}
	}
	check("KindData", uint8(KindData), uint8(fb.KindData))
	check("KindAbort", uint8(KindAbort), uint8(fb.KindAbort))
	check("KindHello", uint8(KindHello), uint8(fb.KindHello))
	for o := OpAllReduce; o <= OpSendRecv; o++ {
		check(o.String(), uint8(o), uint8(fb.EnumValuesOp[o.String()]))
	}
	if len(fb.EnumNamesOp) != int(OpSendRecv)+1 {
		t.Errorf("schema has %d ops", len(fb.EnumNamesOp)-1)
	}
	check("Float32", uint8(Float32), uint8(fb.DTypeFloat32))
	check("Float64", uint8(Float64), uint8(fb.DTypeFloat64))
	for r := RedNone; r <= RedAvg; r++ {
		check(r.String(), uint8(r), uint8(fb.EnumValuesReduceOp[strings.ToUpper(r.String()[:1])+r.String()[1:]]))
	}
	check("AlgoRing", uint8(AlgoRing), uint8(fb.AlgoRing))
	check("AlgoTree", uint8(AlgoTree), uint8(fb.AlgoTree))
	codes := []fb.Code{0, fb.CodeMismatch, fb.CodePeerLost, fb.CodeClosed, fb.CodeTimeout,
		fb.CodeCanceled, fb.CodeProtocol, fb.CodeInternal, fb.CodeInvalid, fb.CodeBye, fb.CodePing, fb.CodePong}
	for c := CodeMismatch; c <= CodePong; c++ {
		check(c.String(), uint8(c), uint8(codes[c]))
	}
}

func TestEnumStrings(t *testing.T) {
	for _, c := range []struct{ got, want string }{
		{KindData.String(), "data"}, {Kind(0).String(), "Kind(0)"},
		{OpAllReduce.String(), "AllReduce"}, {OpSendRecv.String(), "SendRecv"}, {Op(9).String(), "Op(9)"},
		{Float32.String(), "float32"}, {Float64.String(), "float64"}, {BFloat16.String(), "bfloat16"}, {DType(8).String(), "DType(8)"},
		{RedNone.String(), "none"}, {RedAvg.String(), "avg"}, {ReduceOp(6).String(), "ReduceOp(6)"},
		{AlgoRing.String(), "ring"}, {AlgoTree.String(), "tree"}, {Algo(0).String(), "Algo(0)"},
		{CodePeerLost.String(), "peer-lost"}, {Code(0).String(), "Code(0)"},
	} {
		if c.got != c.want {
			t.Errorf("got %q, want %q", c.got, c.want)
		}
	}
	if Float32.Size() != 4 || Float64.Size() != 8 || DType(0).Size() != 0 {
		t.Error("DType.Size")
	}
	if Kind(0).Valid() || Op(0).Valid() || DType(0).Valid() || Algo(0).Valid() || Code(0).Valid() || !RedNone.Valid() {
		t.Error("zero validity")
	}
	if Kind(4).Valid() || Op(9).Valid() || DType(8).Valid() || ReduceOp(6).Valid() || Algo(3).Valid() || Code(12).Valid() {
		t.Error("upper bound validity")
	}
}

// decodeErr encodes f and returns Decode's error.
func decodeErr(f Frame, l Limits) error {
	var got Frame
	return Decode(append([]byte(nil), encode(NewEncoder(), &f)...), l, &got)
}

func TestInvalidFields(t *testing.T) {
	data := func(m func(*Header)) Frame {
		h := dataHeader()
		m(&h)
		return Frame{Kind: KindData, Data: h}
	}
	abort := func(m func(*Abort)) Frame {
		f := sampleFrames()[1]
		m(&f.Abort)
		return f
	}
	hello := func(m func(*Hello)) Frame {
		f := sampleFrames()[2]
		m(&f.Hello)
		return f
	}
	for _, c := range []struct {
		f    Frame
		want string
	}{
		{data(func(h *Header) { h.Op = 0 }), "op 0 out of range"},
		{data(func(h *Header) { h.Op = 9 }), "op 9 out of range"},
		{data(func(h *Header) { h.DType = 0 }), "dtype 0 out of range"},
		{data(func(h *Header) { h.DType = 8 }), "dtype 8 out of range"},
		{data(func(h *Header) { h.Reduce = 6 }), "reduce op 6 out of range"},
		{data(func(h *Header) { h.Algo = 0 }), "algo 0 out of range"},
		{data(func(h *Header) { h.Algo = 3 }), "algo 3 out of range"},
		{data(func(h *Header) { h.Reduce = RedNone }), "AllReduce without a reduce op"},
		{data(func(h *Header) { h.Op, h.Root = OpBroadcast, 0 }), "Broadcast with reduce op sum"},
		{data(func(h *Header) { h.Root = -2 }), "root -2 below -1"},
		{data(func(h *Header) { h.Op, h.Reduce, h.Root = OpSendRecv, RedNone, math.MinInt32 }), "root -2147483648 below -1"},
		{data(func(h *Header) { h.Op, h.Root = OpReduce, 1024 }), "root 1024 not below max world 1024"},
		{data(func(h *Header) { h.Op, h.Root = OpReduce, -1 }), "Reduce without a root (root -1)"},
		{data(func(h *Header) { h.Root = 0 }), "AllReduce has no root but root is 0, want -1"},
		{data(func(h *Header) { h.Count = math.MaxInt64/4 + 1 }), "count 2305843009213693952 of float32 overflows int64 bytes"},
		{data(func(h *Header) { h.PayloadLen = 1<<20 + 4 }), "payload length 1048580 exceeds limit 1048576"},
		{data(func(h *Header) { h.PayloadLen = 6 }), "payload length 6 not a multiple of float32 size 4"},
		{data(func(h *Header) { h.DType, h.PayloadLen = Float64, 12 }), "payload length 12 not a multiple of float64 size 8"},
		{data(func(h *Header) { h.Count = 0 }), "payload length 65536 with count 0"},
		{abort(func(a *Abort) { a.Code = 0 }), "abort code 0 out of range"},
		{abort(func(a *Abort) { a.Code = 12 }), "abort code 12 out of range"},
		{abort(func(a *Abort) { a.Rank = -1 }), "abort rank -1 negative"},
		{abort(func(a *Abort) { a.Rank = 1024 }), "abort rank 1024 not below max world 1024"},
		{hello(func(h *Hello) { h.Version = 0 }), "hello version 0 unsupported (want 1)"},
		{hello(func(h *Hello) { h.Version = 2 }), "hello version 2 unsupported (want 1)"},
		{hello(func(h *Hello) { h.Group = strings.Repeat("g", MaxGroup+1) }), "hello group of 129 bytes exceeds 128"},
		{hello(func(h *Hello) { h.Group = "bad\xff" }), "hello group is not valid UTF-8"},
		{hello(func(h *Hello) { h.World = 0 }), "hello world 0 below 1"},
		{hello(func(h *Hello) { h.World, h.Rank = 1025, 0 }), "hello world 1025 exceeds max world 1024"},
		{hello(func(h *Hello) { h.Rank = 8 }), "hello rank 8 out of range for world 8"},
		{hello(func(h *Hello) { h.Rank = -1 }), "hello rank -1 out of range for world 8"},
		{hello(func(h *Hello) { h.Channels = MaxChannels + 1 }), "hello offers 65 channels, more than 64"},
		{hello(func(h *Hello) { h.Channel, h.Channels = 2, 2 }), "hello opens channel 2 of 2"},
		{hello(func(h *Hello) { h.Channel = 1 }), "hello opens channel 1 of 1"},
	} {
		err := decodeErr(c.f, lim)
		if !errors.Is(err, ErrMalformed) {
			t.Errorf("%+v: error %v does not wrap ErrMalformed", c.f, err)
			continue
		}
		if want := "wire: malformed frame: " + c.want; err.Error() != want {
			t.Errorf("got  %q\nwant %q", err, want)
		}
		if vErr := c.f.Validate(lim); vErr == nil || vErr.Error() != err.Error() {
			t.Errorf("Validate %v, Decode %v", vErr, err)
		}
	}
}

func TestDefaultLimits(t *testing.T) {
	h := dataHeader()
	h.PayloadLen = DefaultMaxPayload
	if err := decodeErr(Frame{Kind: KindData, Data: h}, Limits{}); err != nil {
		t.Errorf("payload at default limit: %v", err)
	}
	h.PayloadLen += 4
	if err := decodeErr(Frame{Kind: KindData, Data: h}, Limits{}); err == nil {
		t.Error("payload over default limit accepted")
	}
	hl := Hello{Version: Version, World: DefaultMaxWorld, Rank: DefaultMaxWorld - 1}
	if err := decodeErr(Frame{Kind: KindHello, Hello: hl}, Limits{}); err != nil {
		t.Errorf("world at default limit: %v", err)
	}
	hl.World++
	if err := decodeErr(Frame{Kind: KindHello, Hello: hl}, Limits{}); err == nil {
		t.Error("world over default limit accepted")
	}
}

func TestEncodeAbortClampsReason(t *testing.T) {
	e := NewEncoder()
	for _, reason := range []string{
		strings.Repeat("x", MaxReason+100),
		strings.Repeat("x", MaxReason-1) + "é", // the rune would straddle the limit
		strings.Repeat("€", 400),               // 1200 bytes of 3-byte runes
		"bad \xff\xfe utf-8 " + strings.Repeat("y", 600),
	} {
		var f Frame
		if err := Decode(e.EncodeAbort(&Abort{Rank: 1, Code: CodeInternal, Reason: reason}), lim, &f); err != nil {
			t.Fatalf("reason %.20q...: %v", reason, err)
		}
		if len(f.Abort.Reason) > MaxReason || len(f.Abort.Reason) < MaxReason-3 {
			t.Errorf("clamped reason has %d bytes", len(f.Abort.Reason))
		}
	}
}

// TestStructuralErrors checks frames that are wrong below the field level.
func TestStructuralErrors(t *testing.T) {
	e := NewEncoder()
	valid := append([]byte(nil), e.EncodeData(ptr(dataHeader()))...)
	patch := func(m func(b []byte)) []byte {
		b := append([]byte(nil), valid...)
		m(b)
		return b
	}
	b := flatbuffers.NewBuilder(0)
	build := func(kind fb.Kind, data, abort, hello bool) []byte {
		b.Reset()
		var ao, ho flatbuffers.UOffsetT
		if abort {
			fb.AbortBodyStart(b)
			fb.AbortBodyAddCode(b, fb.CodeClosed)
			ao = fb.AbortBodyEnd(b)
		}
		if hello {
			fb.HelloBodyStart(b)
			fb.HelloBodyAddVersion(b, Version)
			fb.HelloBodyAddWorld(b, 1)
			ho = fb.HelloBodyEnd(b)
		}
		fb.FrameStart(b)
		if data {
			fb.FrameAddData(b, fb.CreateDataHeader(b, 0, 0, 1, 4, 0, 0, -1, fb.OpAllReduce, fb.DTypeFloat32, fb.ReduceOpSum, fb.AlgoRing))
		}
		if abort {
			fb.FrameAddAbort(b, ao)
		}
		if hello {
			fb.FrameAddHello(b, ho)
		}
		fb.FrameAddKind(b, kind)
		b.FinishSizePrefixedWithFileIdentifier(fb.FrameEnd(b), fileIDBytes)
		return append([]byte(nil), b.FinishedBytes()...)
	}
	for _, c := range []struct {
		name string
		buf  []byte
		want string
	}{
		{"empty", nil, "0 bytes, shorter than the size prefix"},
		{"prefix only", valid[:4], "size prefix 76 but 0 bytes follow it"},
		{"trailing byte", append(append([]byte(nil), valid...), 0), "size prefix 76 but 77 bytes follow it"},
		{"tiny prefix", []byte{15, 0, 0, 0}, "size prefix 15 outside [16, 1024]"},
		{"huge prefix", []byte{0xff, 0xff, 0xff, 0xff}, "size prefix 4294967295 outside [16, 1024]"},
		{"identifier", patch(func(b []byte) { b[8] = 'X' }), `file identifier "XNG1", want "RNG1"`},
		{"root out of range", patch(func(b []byte) { binary.LittleEndian.PutUint32(b[4:], 1000) }), "frame table at 1000 outside 76-byte header"},
		{"vtable out of range", patch(func(b []byte) {
			root := binary.LittleEndian.Uint32(b[4:])
			binary.LittleEndian.PutUint32(b[4+root:], 0x80000000)
		}), "outside 76-byte header"},
		{"no kind", build(0, true, false, false), "kind 0 out of range"},
		{"unknown kind", build(4, true, false, false), "kind 4 out of range"},
		{"data without body", build(fb.KindData, false, false, false), "data frame without its body"},
		{"data plus abort", build(fb.KindData, true, true, false), "data frame also carries a body of kind abort"},
		{"hello plus data", build(fb.KindHello, true, false, true), "hello frame also carries a body of kind data"},
		{"abort without body", build(fb.KindAbort, false, false, false), "abort frame without its body"},
	} {
		var f Frame
		err := Decode(c.buf, lim, &f)
		if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want ...%s", c.name, err, c.want)
		}
		if f != (Frame{}) {
			t.Errorf("%s: Decode modified f on error", c.name)
		}
	}
	// The builder-made frames are otherwise fine.
	var f Frame
	for _, buf := range [][]byte{build(fb.KindData, true, false, false), build(fb.KindAbort, false, true, false), build(fb.KindHello, false, false, true)} {
		if err := Decode(buf, lim, &f); err != nil {
			t.Errorf("control frame: %v", err)
		}
	}
}

func ptr[T any](v T) *T { return &v }

// TestTruncated checks every truncation of every kind of valid frame, both
// with the original prefix and with the prefix rewritten to the truncated
// length, and through ReadFrame.
func TestTruncated(t *testing.T) {
	e := NewEncoder()
	for _, f := range sampleFrames() {
		valid := append([]byte(nil), encode(e, &f)...)
		for i := 0; i < len(valid); i++ {
			var got Frame
			if err := Decode(valid[:i], lim, &got); !errors.Is(err, ErrMalformed) {
				t.Fatalf("%v frame cut to %d bytes: %v", f.Kind, i, err)
			}
			if i >= PrefixLen {
				b := append([]byte(nil), valid[:i]...)
				binary.LittleEndian.PutUint32(b, uint32(i-PrefixLen))
				// Cutting only trailing padding leaves a valid frame.
				if err := Decode(b, lim, &got); err == nil && got != f || err != nil && !errors.Is(err, ErrMalformed) {
					t.Fatalf("%v frame cut to %d bytes, prefix fixed: %v, %+v", f.Kind, i, err, got)
				}
			}
			err := ReadFrame(bytes.NewReader(valid[:i]), make([]byte, PrefixLen+MaxHeader), lim, &got)
			want := io.ErrUnexpectedEOF
			if i == 0 {
				want = io.EOF
			}
			if err != want {
				t.Fatalf("ReadFrame of %v frame cut to %d bytes: %v, want %v", f.Kind, i, err, want)
			}
		}
	}
}

// strictReader serves data and fails the test on any read beyond it.
type strictReader struct {
	t    *testing.T
	data []byte
}

func (r *strictReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		r.t.Fatal("read beyond the size prefix")
	}
	n := copy(p, r.data)
	r.data = r.data[n:]
	return n, nil
}

func TestReadFrameRejectsSizeBeforeReading(t *testing.T) {
	scratch := make([]byte, PrefixLen+MaxHeader)
	for _, size := range []uint32{MaxHeader + 1, math.MaxUint32, 0, minHeader - 1} {
		var p [4]byte
		binary.LittleEndian.PutUint32(p[:], size)
		var f Frame
		err := ReadFrame(&strictReader{t: t, data: p[:]}, scratch, lim, &f)
		if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), "size prefix") {
			t.Errorf("size %d: %v", size, err)
		}
	}
	if err := ReadFrame(bytes.NewReader(nil), scratch[:MaxHeader], lim, new(Frame)); err == nil || errors.Is(err, ErrMalformed) {
		t.Errorf("short scratch: %v", err)
	}
}

func TestReadFrameIOError(t *testing.T) {
	boom := errors.New("boom")
	r := io.MultiReader(bytes.NewReader([]byte{76, 0}), &errReader{boom})
	if err := ReadFrame(r, make([]byte, PrefixLen+MaxHeader), lim, new(Frame)); err != boom {
		t.Errorf("got %v, want the reader's error", err)
	}
}

type errReader struct{ err error }

func (r *errReader) Read([]byte) (int, error) { return 0, r.err }

// TestCorruption flips bytes of valid frames: Decode must never panic, the
// structural checks must catch everything before the runtime would panic, and
// whatever decodes must be valid and re-encode to itself.
func TestCorruption(t *testing.T) {
	iters := 100000
	if testing.Short() {
		iters = 10000
	}
	e := NewEncoder()
	var frames [][]byte
	for _, f := range append(sampleFrames(),
		Frame{Kind: KindAbort, Abort: Abort{Rank: 1, Code: CodeTimeout}},
		Frame{Kind: KindHello, Hello: Hello{Version: Version, World: 1}}) {
		frames = append(frames, append([]byte(nil), encode(e, &f)...))
	}
	rng := rand.New(rand.NewPCG(3, 4))
	buf := make([]byte, 0, PrefixLen+MaxHeader)
	ok := 0
	for i := 0; i < iters; i++ {
		buf = append(buf[:0], frames[i%len(frames)]...)
		for n := 1 + rng.IntN(4); n > 0; n-- {
			j := rng.IntN(len(buf))
			if rng.IntN(2) == 0 {
				buf[j] ^= 1 << rng.IntN(8)
			} else {
				buf[j] = byte(rng.Uint32())
			}
		}
		var f Frame
		err := Decode(buf, lim, &f)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			if strings.Contains(err.Error(), "flatbuffers:") {
				t.Fatalf("runtime panic reached recover: %v\nframe %x", err, buf)
			}
			continue
		}
		ok++
		checkReencode(t, e, &f, buf)
	}
	t.Logf("%d of %d corrupted frames still decoded (to valid frames)", ok, iters)
}

func checkReencode(t testing.TB, e *Encoder, f *Frame, orig []byte) {
	t.Helper()
	if err := f.Validate(lim); err != nil {
		t.Fatalf("decoded frame fails Validate: %v\n%x", err, orig)
	}
	var g Frame
	if err := Decode(encode(e, f), lim, &g); err != nil {
		t.Fatalf("re-encoded frame does not decode: %v\nfrom %x", err, orig)
	}
	if g != *f {
		t.Fatalf("re-encode changed the frame:\n%+v\n%+v", *f, g)
	}
}

func TestNoAllocs(t *testing.T) {
	e := NewEncoder()
	h := dataHeader()
	if n := testing.AllocsPerRun(1000, func() { e.EncodeData(&h) }); n != 0 {
		t.Errorf("EncodeData: %v allocs", n)
	}
	buf := append([]byte(nil), e.EncodeData(&h)...)
	var f Frame
	if n := testing.AllocsPerRun(1000, func() {
		if err := Decode(buf, lim, &f); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Errorf("Decode: %v allocs", n)
	}
	r := bytes.NewReader(buf)
	scratch := make([]byte, PrefixLen+MaxHeader)
	if n := testing.AllocsPerRun(1000, func() {
		r.Reset(buf)
		if err := ReadFrame(r, scratch, lim, &f); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Errorf("ReadFrame: %v allocs", n)
	}
}

func TestZeroEncoder(t *testing.T) {
	for _, f := range sampleFrames() {
		var e Encoder
		var g Frame
		if err := Decode(encode(&e, &f), lim, &g); err != nil || g != f {
			t.Errorf("zero Encoder, %v frame: %v", f.Kind, err)
		}
	}
}

func BenchmarkEncodeData(b *testing.B) {
	e := NewEncoder()
	h := dataHeader()
	b.ReportAllocs()
	for b.Loop() {
		e.EncodeData(&h)
	}
}

// BenchmarkEncodeDataBuilder is the Builder-per-call alternative to the
// template that EncodeData uses, for comparison.
func BenchmarkEncodeDataBuilder(b *testing.B) {
	fbb := flatbuffers.NewBuilder(2 * MaxHeader)
	h := dataHeader()
	b.ReportAllocs()
	for b.Loop() {
		buildData(fbb, &h)
	}
}

func BenchmarkEncodeAbort(b *testing.B) {
	e := NewEncoder()
	a := sampleFrames()[1].Abort
	b.ReportAllocs()
	for b.Loop() {
		e.EncodeAbort(&a)
	}
}

func BenchmarkDecode(b *testing.B) {
	buf := append([]byte(nil), NewEncoder().EncodeData(ptr(dataHeader()))...)
	var f Frame
	b.ReportAllocs()
	for b.Loop() {
		if err := Decode(buf, lim, &f); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeAbort(b *testing.B) {
	a := sampleFrames()[1].Abort
	buf := append([]byte(nil), NewEncoder().EncodeAbort(&a)...)
	var f Frame
	b.ReportAllocs()
	for b.Loop() {
		if err := Decode(buf, lim, &f); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkReadFrame(b *testing.B) {
	buf := append([]byte(nil), NewEncoder().EncodeData(ptr(dataHeader()))...)
	r := bytes.NewReader(buf)
	scratch := make([]byte, PrefixLen+MaxHeader)
	var f Frame
	b.ReportAllocs()
	for b.Loop() {
		r.Reset(buf)
		if err := ReadFrame(r, scratch, lim, &f); err != nil {
			b.Fatal(err)
		}
	}
}

// TestDataHeaderLayout checks the struct offsets Decode reads directly
// against the generated code.
func TestDataHeaderLayout(t *testing.T) {
	b := flatbuffers.NewBuilder(0)
	b.Prep(8, 0)
	before := b.Offset()
	end := fb.CreateDataHeader(b, 0x0101010101010101, 0x0202020202020202, 0x0303030303030303,
		0x04040404, 0x05050505, 0x06060606, 0x07070707, 8, 9, 10, 11)
	if n := int(end - before); n != dataHeaderSize {
		t.Fatalf("DataHeader is %d bytes, dataHeaderSize %d", n, dataHeaderSize)
	}
	s := b.Bytes[b.Head() : int(b.Head())+dataHeaderSize]
	var d fb.DataHeader
	d.Init(s, 0)
	le := binary.LittleEndian
	for _, c := range []struct {
		name      string
		gen, ours uint64
	}{
		{"epoch", d.Epoch(), le.Uint64(s[dhEpoch:])},
		{"seq", d.Seq(), le.Uint64(s[dhSeq:])},
		{"count", d.Count(), le.Uint64(s[dhCount:])},
		{"payload_len", uint64(d.PayloadLen()), uint64(le.Uint32(s[dhPayloadLen:]))},
		{"step", uint64(d.Step()), uint64(le.Uint32(s[dhStep:]))},
		{"chunk", uint64(d.Chunk()), uint64(le.Uint32(s[dhChunk:]))},
		{"root", uint64(d.Root()), uint64(int32(le.Uint32(s[dhRoot:])))},
		{"op", uint64(d.Op()), uint64(s[dhOp])},
		{"dtype", uint64(d.Dtype()), uint64(s[dhDType])},
		{"reduce", uint64(d.Reduce()), uint64(s[dhReduce])},
		{"algo", uint64(d.Algo()), uint64(s[dhAlgo])},
	} {
		if c.gen != c.ours {
			t.Errorf("%s: generated accessor reads %#x, Decode's offset %#x", c.name, c.gen, c.ours)
		}
	}
}
