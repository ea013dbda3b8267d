//go:build !linux

package shm

import (
	"io/fs"
	"time"
	"unsafe"
)

// Supported reports whether this platform has the shared-memory transport.
const Supported = false

// Create fails: no shared-memory transport on this platform.
func Create(size int) (*Segment, error) { return nil, ErrUnsupported }

// Open fails: no shared-memory transport on this platform.
func Open(name string, token [TokenLen]byte, size int) (*Segment, error) {
	return nil, ErrUnsupported
}

// Unlink does nothing.
func (s *Segment) Unlink() error { return nil }

// Close does nothing.
func (s *Segment) Close() error { return nil }

// Detach does nothing on this platform.
func (s *Segment) Detach() error { return nil }

// Alive reports false.
func (s *Segment) Alive() bool { return false }

func stale(string) bool                   { return false }
func ownedByMe(fs.FileInfo) bool          { return false }
func Wait(*uint32, uint32, time.Duration) {}
func Wake(*uint32)                        {}
func Yield()                              {}

// Word returns the aligned 32-bit word at byte offset off of b.
func Word(b []byte, off int) *uint32 { return (*uint32)(unsafe.Pointer(&b[off])) }

// Word64 returns the aligned 64-bit word at byte offset off of b.
func Word64(b []byte, off int) *uint64 { return (*uint64)(unsafe.Pointer(&b[off])) }
