package runtime

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"sync"
)

// Codec turns values of one type into bytes and back, for remote calls'
// arguments and results. Decode gets exactly the bytes Encode appended (the
// envelope delimits them, and its size limit bounds them) and must
// validate them: they come from the network. Decode must not keep b.
type Codec[T any] interface {
	// Encode appends v's encoding to dst.
	Encode(dst []byte, v T) ([]byte, error)
	// Decode parses an encoding made by Encode.
	Decode(b []byte) (T, error)
}

var codecs = struct {
	sync.RWMutex
	m map[reflect.Type]any // reflect.Type -> Codec[T]
}{m: make(map[reflect.Type]any)}

// RegisterCodec makes c the codec of T for remote calls, on every process
// of a cluster (drivers and workers alike, before Register names a
// function that uses T). Built in: bool, string, []byte, the sized and
// unsized integers, float32, float64, []float32, []float64, []int32,
// []int64 and struct{}; for other types register JSONCodec[T]() or
// BinaryCodec[T](), or a codec of your own. It panics when T already has
// a codec or c is nil: registration is a program's set-up, like
// http.Handle.
func RegisterCodec[T any](c Codec[T]) {
	t := reflect.TypeFor[T]()
	if c == nil {
		panic(fmt.Sprintf("runtime: RegisterCodec: nil codec for %s", t))
	}
	codecs.Lock()
	defer codecs.Unlock()
	if _, dup := codecs.m[t]; dup {
		panic(fmt.Sprintf("runtime: RegisterCodec: %s already has a codec", t))
	}
	codecs.m[t] = c
}

// codecFor finds T's codec.
func codecFor[T any]() (Codec[T], error) {
	t := reflect.TypeFor[T]()
	codecs.RLock()
	c, ok := codecs.m[t]
	codecs.RUnlock()
	if !ok {
		return nil, fmt.Errorf("%w: no codec for %s: register one with RegisterCodec (JSONCodec[%s]() for small structs)",
			ErrInvalid, typeName(t), t)
	}
	return c.(Codec[T]), nil
}

// typeName names t on the wire, where both ends compare names to catch
// calls made with other types than the function was registered with:
// the package path and name for a named type, else Go's spelling.
func typeName(t reflect.Type) string {
	if t.Name() != "" && t.PkgPath() != "" {
		return t.PkgPath() + "." + t.Name()
	}
	return t.String()
}

// JSONCodec encodes T with encoding/json, for small structs. Decoding is
// strict: unknown fields and trailing data are refused. Its input is
// bounded by the cluster's message limit.
func JSONCodec[T any]() Codec[T] { return jsonCodec[T]{} }

type jsonCodec[T any] struct{}

func (jsonCodec[T]) Encode(dst []byte, v T) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return dst, err
	}
	return append(dst, b...), nil
}

func (jsonCodec[T]) Decode(b []byte) (T, error) {
	var v T
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(&v); err != nil {
		return v, fmt.Errorf("json: %w", err)
	}
	if d.More() {
		return v, errors.New("json: trailing data after the value")
	}
	return v, nil
}

// BinaryCodec encodes T with encoding/binary, little-endian: T must have a
// fixed size (numbers, bools, arrays and structs of them); it panics
// otherwise. Decoding requires exactly binary.Size bytes.
func BinaryCodec[T any]() Codec[T] {
	var zero T
	n := binary.Size(zero)
	if n < 0 {
		panic(fmt.Sprintf("runtime: BinaryCodec: %s has no fixed size", reflect.TypeFor[T]()))
	}
	return binaryCodec[T]{size: n}
}

type binaryCodec[T any] struct{ size int }

func (c binaryCodec[T]) Encode(dst []byte, v T) ([]byte, error) {
	return binary.Append(dst, binary.LittleEndian, v)
}

func (c binaryCodec[T]) Decode(b []byte) (T, error) {
	var v T
	if len(b) != c.size {
		return v, fmt.Errorf("binary: %d bytes, want %d", len(b), c.size)
	}
	_, err := binary.Decode(b, binary.LittleEndian, &v)
	return v, err
}

// funcCodec adapts a pair of functions.
type funcCodec[T any] struct {
	enc func([]byte, T) []byte
	dec func([]byte) (T, error)
}

func (c funcCodec[T]) Encode(dst []byte, v T) ([]byte, error) { return c.enc(dst, v), nil }
func (c funcCodec[T]) Decode(b []byte) (T, error)             { return c.dec(b) }

func fixed[T any](size int, enc func([]byte, T) []byte, get func([]byte) T) Codec[T] {
	return funcCodec[T]{enc: enc, dec: func(b []byte) (T, error) {
		if len(b) != size {
			var zero T
			return zero, fmt.Errorf("%d bytes, want %d", len(b), size)
		}
		return get(b), nil
	}}
}

// vector encodes slices of fixed-size numbers, little-endian, with no
// header: the envelope delimits them.
func vector[T any](size int, put func([]byte, T), get func([]byte) T) Codec[[]T] {
	return funcCodec[[]T]{
		enc: func(dst []byte, v []T) []byte {
			at := len(dst)
			dst = append(dst, make([]byte, size*len(v))...)
			for i, x := range v {
				put(dst[at+i*size:], x)
			}
			return dst
		},
		dec: func(b []byte) ([]T, error) {
			if len(b)%size != 0 {
				return nil, fmt.Errorf("%d bytes is not a whole number of %d-byte elements", len(b), size)
			}
			out := make([]T, len(b)/size)
			for i := range out {
				out[i] = get(b[i*size:])
			}
			return out, nil
		},
	}
}

func init() {
	le := binary.LittleEndian
	i64 := func(b []byte) int64 { return int64(le.Uint64(b)) }
	RegisterCodec(fixed(8, func(d []byte, v int64) []byte { return le.AppendUint64(d, uint64(v)) }, i64))
	RegisterCodec(fixed(8, func(d []byte, v int) []byte { return le.AppendUint64(d, uint64(v)) },
		func(b []byte) int { return int(i64(b)) }))
	RegisterCodec(fixed(4, func(d []byte, v int32) []byte { return le.AppendUint32(d, uint32(v)) },
		func(b []byte) int32 { return int32(le.Uint32(b)) }))
	RegisterCodec(fixed(2, func(d []byte, v int16) []byte { return le.AppendUint16(d, uint16(v)) },
		func(b []byte) int16 { return int16(le.Uint16(b)) }))
	RegisterCodec(fixed(1, func(d []byte, v int8) []byte { return append(d, byte(v)) },
		func(b []byte) int8 { return int8(b[0]) }))
	RegisterCodec(fixed(8, func(d []byte, v uint64) []byte { return le.AppendUint64(d, v) }, le.Uint64))
	RegisterCodec(fixed(8, func(d []byte, v uint) []byte { return le.AppendUint64(d, uint64(v)) },
		func(b []byte) uint { return uint(le.Uint64(b)) }))
	RegisterCodec(fixed(4, func(d []byte, v uint32) []byte { return le.AppendUint32(d, v) }, le.Uint32))
	RegisterCodec(fixed(2, func(d []byte, v uint16) []byte { return le.AppendUint16(d, v) }, le.Uint16))
	RegisterCodec(fixed(1, func(d []byte, v uint8) []byte { return append(d, v) },
		func(b []byte) uint8 { return b[0] }))
	RegisterCodec(fixed(8, func(d []byte, v float64) []byte { return le.AppendUint64(d, math.Float64bits(v)) },
		func(b []byte) float64 { return math.Float64frombits(le.Uint64(b)) }))
	RegisterCodec(fixed(4, func(d []byte, v float32) []byte { return le.AppendUint32(d, math.Float32bits(v)) },
		func(b []byte) float32 { return math.Float32frombits(le.Uint32(b)) }))
	RegisterCodec[bool](funcCodec[bool]{
		enc: func(d []byte, v bool) []byte {
			if v {
				return append(d, 1)
			}
			return append(d, 0)
		},
		dec: func(b []byte) (bool, error) {
			if len(b) != 1 || b[0] > 1 {
				return false, fmt.Errorf("a bool is one byte, 0 or 1; got %d bytes", len(b))
			}
			return b[0] == 1, nil
		},
	})
	RegisterCodec[struct{}](funcCodec[struct{}]{
		enc: func(d []byte, _ struct{}) []byte { return d },
		dec: func(b []byte) (struct{}, error) {
			if len(b) != 0 {
				return struct{}{}, fmt.Errorf("struct{} has no bytes; got %d", len(b))
			}
			return struct{}{}, nil
		},
	})
	RegisterCodec[string](funcCodec[string]{
		enc: func(d []byte, v string) []byte { return append(d, v...) },
		dec: func(b []byte) (string, error) { return string(b), nil },
	})
	RegisterCodec[[]byte](funcCodec[[]byte]{
		enc: func(d []byte, v []byte) []byte { return append(d, v...) },
		dec: func(b []byte) ([]byte, error) { return bytes.Clone(b), nil },
	})
	RegisterCodec(vector(4, func(b []byte, v float32) { le.PutUint32(b, math.Float32bits(v)) },
		func(b []byte) float32 { return math.Float32frombits(le.Uint32(b)) }))
	RegisterCodec(vector(8, func(b []byte, v float64) { le.PutUint64(b, math.Float64bits(v)) },
		func(b []byte) float64 { return math.Float64frombits(le.Uint64(b)) }))
	RegisterCodec(vector(4, func(b []byte, v int32) { le.PutUint32(b, uint32(v)) },
		func(b []byte) int32 { return int32(le.Uint32(b)) }))
	RegisterCodec(vector(8, func(b []byte, v int64) { le.PutUint64(b, uint64(v)) },
		func(b []byte) int64 { return int64(le.Uint64(b)) }))
}
