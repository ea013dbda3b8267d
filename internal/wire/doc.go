// Package wire defines ringo's frame format: how ranks frame the headers of
// collective transfers, aborts and link greetings on a byte stream, and how a
// receiver validates them before trusting a single field.
//
// # Frame layout
//
// Every frame on a stream is
//
//	[size: uint32 LE][flatbuffer: size bytes, root fb.Frame, id "RNG1"][payload]
//
// where payload is present only in data frames and is Header.PayloadLen bytes.
//
// The size prefix counts the flatbuffer bytes only, never the prefix itself
// and never the payload. The flatbuffer is a standard size-prefixed
// flatbuffer with file identifier "RNG1" (bytes 4..8 after the prefix) whose
// root table is Frame (schema: frame.fbs, generated code: package fb). Its
// kind field names the body that is present: a fixed 48-byte DataHeader
// struct for [KindData], an AbortBody table for [KindAbort], a HelloBody table
// for [KindHello]. Bulk tensor data is never inside the flatbuffer: a data
// frame's PayloadLen raw bytes follow the flatbuffer and the caller reads
// them straight into its own memory after [ReadFrame] returns.
//
// A data frame from [Encoder.EncodeData] is always 80 bytes (4 + 76). The
// largest frame the Encoder can produce (an abort with a MaxReason-byte
// reason) is well under [MaxHeader]; any conforming encoder must keep the
// flatbuffer within [MaxHeader] bytes, and a decoder rejects frames whose
// size prefix is below 16 or above MaxHeader before reading them.
//
// # Validation
//
// The Go flatbuffers runtime has no verifier and panics or returns garbage on
// malformed input, so [Decode] does both jobs itself:
//
//  1. sizes: the prefix must equal len(buf)-4 and lie in [16, MaxHeader];
//     the file identifier must be "RNG1";
//  2. structure: every table, vtable, field, uoffset and string that is read
//     is bounds-checked against the buffer (strings must also be
//     NUL-terminated), and any panic from the runtime is recovered into an
//     error as a second line of defence;
//  3. meaning: the kind must be known and exactly its body must be present;
//     every field must be in range, see [Header.Validate], [Abort.Validate]
//     and [Hello.Validate].
//
// Every error about the bytes wraps [ErrMalformed] and names the offending
// field and value. Unknown table fields (a newer schema) are ignored, as
// flatbuffers intends; incompatible changes bump [Version].
//
// # Allocation
//
// EncodeData, Decode of a data frame and ReadFrame of a data frame do not
// allocate. EncodeData does not run the flatbuffers Builder per call: a data
// frame's layout does not depend on the values (the header is an inline
// struct), so the Encoder builds a template once with the Builder and then
// writes each header into a copy of it with the generated Mutate accessors;
// tests check the result is byte-identical to a Builder-built frame. Decode
// likewise reads the verified DataHeader at its fixed struct offsets, which a
// test checks against the generated accessors.
package wire

//go:generate flatc --go -o . frame.fbs
