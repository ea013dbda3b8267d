package wire

import (
	"strings"
	"unicode/utf8"

	flatbuffers "github.com/google/flatbuffers/go"

	"github.com/ringo-ml/ringo/internal/wire/fb"
)

var fileIDBytes = []byte(fileID)

// dataTemplate is a complete data frame (size prefix included) built with the
// flatbuffers Builder from a zero Header, and dataPos the position of its
// DataHeader struct within the flatbuffer (after the prefix). A data frame's
// bytes outside that struct never depend on the header's values.
var dataTemplate, dataPos = makeDataTemplate()

func makeDataTemplate() ([]byte, flatbuffers.UOffsetT) {
	b := flatbuffers.NewBuilder(256)
	t := append([]byte(nil), buildData(b, &Header{})...)
	var f Frame
	pos, err := decode(t, Limits{}, &f, true)
	if err != nil {
		panic("wire: data frame template does not decode: " + err.Error())
	}
	return t, flatbuffers.UOffsetT(pos)
}

// buildData builds a data frame with the Builder. EncodeData produces the
// same bytes without running the Builder.
func buildData(b *flatbuffers.Builder, h *Header) []byte {
	b.Reset()
	fb.FrameStart(b)
	fb.FrameAddData(b, fb.CreateDataHeader(b, h.Epoch, h.Seq, h.Count, h.PayloadLen,
		h.Step, h.Chunk, h.Root, fb.Op(h.Op), fb.DType(h.DType), fb.ReduceOp(h.Reduce), fb.Algo(h.Algo)))
	fb.FrameAddKind(b, fb.KindData)
	b.FinishSizePrefixedWithFileIdentifier(fb.FrameEnd(b), fileIDBytes)
	return b.FinishedBytes()
}

// Encoder builds frames. It is not safe for concurrent use; the slice each
// method returns (size prefix + flatbuffer) is valid until the next call.
// Encoders do not validate: a receiver rejects what Validate would reject.
type Encoder struct {
	b    *flatbuffers.Builder
	data []byte
}

// NewEncoder returns an Encoder.
func NewEncoder() *Encoder {
	return &Encoder{
		b:    flatbuffers.NewBuilder(2 * MaxHeader),
		data: make([]byte, len(dataTemplate)),
	}
}

// EncodeData encodes a data frame's header; the caller writes h.PayloadLen
// bytes of payload after it. It does not allocate.
func (e *Encoder) EncodeData(h *Header) []byte {
	if e.data == nil {
		*e = *NewEncoder()
	}
	copy(e.data, dataTemplate)
	var d fb.DataHeader
	d.Init(e.data[PrefixLen:], dataPos)
	d.MutateEpoch(h.Epoch)
	d.MutateSeq(h.Seq)
	d.MutateCount(h.Count)
	d.MutatePayloadLen(h.PayloadLen)
	d.MutateStep(h.Step)
	d.MutateChunk(h.Chunk)
	d.MutateRoot(h.Root)
	d.MutateOp(fb.Op(h.Op))
	d.MutateDtype(fb.DType(h.DType))
	d.MutateReduce(fb.ReduceOp(h.Reduce))
	d.MutateAlgo(fb.Algo(h.Algo))
	return e.data
}

// EncodeAbort encodes an abort frame. A Reason that is not valid UTF-8 has
// its bad bytes replaced by U+FFFD, and one longer than MaxReason bytes is
// cut at a rune boundary, so that the frame stays decodable.
func (e *Encoder) EncodeAbort(a *Abort) []byte {
	if e.b == nil {
		*e = *NewEncoder()
	}
	b := e.b
	b.Reset()
	reason := b.CreateString(clampReason(a.Reason))
	fb.AbortBodyStart(b)
	fb.AbortBodyAddEpoch(b, a.Epoch)
	fb.AbortBodyAddSeq(b, a.Seq)
	fb.AbortBodyAddReason(b, reason)
	fb.AbortBodyAddRank(b, a.Rank)
	fb.AbortBodyAddCode(b, fb.Code(a.Code))
	body := fb.AbortBodyEnd(b)
	fb.FrameStart(b)
	fb.FrameAddAbort(b, body)
	fb.FrameAddKind(b, fb.KindAbort)
	b.FinishSizePrefixedWithFileIdentifier(fb.FrameEnd(b), fileIDBytes)
	return b.FinishedBytes()
}

func clampReason(s string) string {
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	if len(s) > MaxReason {
		n := MaxReason
		for n > 0 && !utf8.RuneStart(s[n]) {
			n--
		}
		s = s[:n]
	}
	return s
}

// EncodeHello encodes a hello frame. It encodes h as given; a receiver
// rejects a hello that Hello.Validate rejects, so validate the communicator's
// configuration once up front.
func (e *Encoder) EncodeHello(h *Hello) []byte {
	if e.b == nil {
		*e = *NewEncoder()
	}
	b := e.b
	b.Reset()
	group := b.CreateString(h.Group)
	fb.HelloBodyStart(b)
	fb.HelloBodyAddEpoch(b, h.Epoch)
	fb.HelloBodyAddVersion(b, h.Version)
	fb.HelloBodyAddGroup(b, group)
	fb.HelloBodyAddWorld(b, h.World)
	fb.HelloBodyAddRank(b, h.Rank)
	fb.HelloBodyAddChannel(b, h.Channel)
	fb.HelloBodyAddChannels(b, h.Channels)
	fb.HelloBodyAddView(b, h.View)
	body := fb.HelloBodyEnd(b)
	fb.FrameStart(b)
	fb.FrameAddHello(b, body)
	fb.FrameAddKind(b, fb.KindHello)
	b.FinishSizePrefixedWithFileIdentifier(fb.FrameEnd(b), fileIDBytes)
	return b.FinishedBytes()
}
