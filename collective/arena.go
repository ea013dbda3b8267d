package collective

import "fmt"

// Arena is one registered buffer (AllocFloat32, AllocFloat64) handed out
// as tensors: a training loop takes every layer's gradient from it, so
// that all of them take the zero-copy path on shared memory (an AllReduce
// of registered buffers reads the peers' buffers in place: 2 to 6 times
// the bandwidth of ordinary slices, docs/performance.md), and frees them
// all at once. Fusing several layers into one call is slicing: the
// tensors of an Arena are consecutive, in the order taken, so any run of
// them is one slice of All. On other data paths it is ordinary memory.
type Arena[T float32 | float64] struct {
	c   *Communicator
	buf []T
	off int
}

// NewArena allocates n elements from c for an Arena.
func NewArena[T float32 | float64](c *Communicator, n int) (*Arena[T], error) {
	var buf []T
	var err error
	switch any(T(0)).(type) {
	case float32:
		var b []float32
		b, err = c.AllocFloat32(n)
		buf = any(b).([]T)
	default:
		var b []float64
		b, err = c.AllocFloat64(n)
		buf = any(b).([]T)
	}
	if err != nil {
		return nil, err
	}
	return &Arena[T]{c: c, buf: buf}, nil
}

// Take hands out the next n elements (zeroed when the Arena is new).
func (a *Arena[T]) Take(n int) ([]T, error) {
	if n < 0 || n > len(a.buf)-a.off {
		return nil, fmt.Errorf("collective: %w: Arena.Take(%d) with %d of %d elements left", ErrInvalid, n, len(a.buf)-a.off, len(a.buf))
	}
	s := a.buf[a.off : a.off+n : a.off+n]
	a.off += n
	return s, nil
}

// All is the whole buffer: every tensor taken, and what is left.
func (a *Arena[T]) All() []T { return a.buf }

// Free releases the buffer (see Free); no tensor of the Arena may be used
// afterwards.
func (a *Arena[T]) Free() error { return a.c.Free(a.buf) }
