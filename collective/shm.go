package collective

import (
	"context"
	"fmt"
	"log/slog"
	"unsafe"

	"github.com/ringo-ml/ringo/internal/engine"
	"github.com/ringo-ml/ringo/internal/engine/shmem"
)

// ShmConfig tunes the shared-memory engine (package doc, "Data paths").
// A zero field takes its default, or the environment variable named
// beside it when that is set (a way to tune a program without
// rebuilding it); docs/tuning.md gives the measured reasons for the
// defaults.
type ShmConfig struct {
	// Window is the bytes of one slot's input (and output) area: an
	// operation moves its tensor in windows of this size, one wait per
	// window. Every rank must use the same value (ranks that differ
	// cannot map each other's segments: Auto falls back to the network,
	// TransportShm fails). Default (RINGO_SHM_WINDOW) 256 KiB on a host
	// with at least two cores per rank, else 1 MiB (fewer waits, each of
	// which may cost a switch between processes); at least 4 KiB, at most
	// 64 MiB, rounded down to a multiple of 64.
	Window int
	// Small: windows of up to this many bytes are reduced whole by every
	// rank, which saves a wait; larger ones are reduced a part per rank.
	// Default 32 KiB (RINGO_SHM_SMALL); negative for 0 (always split).
	Small int
	// Spin is how many times a waiting rank polls before it yields the
	// processor. Default 64 (RINGO_SHM_SPIN); negative for 0.
	Spin int
	// Yield is how many times it yields before it sleeps on a futex.
	// Default 64 (RINGO_SHM_YIELD); negative for 0.
	Yield int
}

// tuning resolves c's zero fields from the environment and the defaults
// for a group of n ranks.
func (c ShmConfig) tuning(log *slog.Logger, n int) (shmem.Tuning, error) {
	return shmem.Resolve(log, shmem.Tuning{Window: c.Window, Small: c.Small, Spin: c.Spin, Yield: c.Yield}, n)
}

// setupShm tries to move the data path to shared memory: every rank
// creates a segment and announces it (over the QUIC links, which
// authenticate the peers), maps everyone else's, and the ranks agree
// (AllReduce of a flag) whether all of them succeeded.
func (c *Communicator) setupShm(ctx context.Context) error {
	if c.transport != TransportAuto && c.transport != TransportShm || c.world == 1 || c.noShm {
		return nil
	}
	s := shmem.NewSetup(c.rank, c.world, c.shmTuning)
	all := make([]float64, len(s.Announcement())*c.world)
	if err := c.AllGather(ctx, all, s.Announcement(), Using(Ring)); err != nil {
		s.Abandon()
		return fmt.Errorf("collective: announcing shared-memory segments: %w", err)
	}
	flag := []float64{0}
	if s.Map(all) {
		flag[0] = 1
	}
	err := c.AllReduce(ctx, flag, Min, Using(Ring))
	if err == nil && flag[0] == 1 {
		g := s.Group(c.stopCause)
		c.mu.Lock()
		c.shm = g
		c.mu.Unlock()
		c.log.Debug("collective: data path on shared memory", "segment", s.Name())
		return nil
	}
	s.Abandon()
	if err != nil {
		return fmt.Errorf("collective: agreeing on shared memory: %w", err)
	}
	if c.transport == TransportShm {
		return fmt.Errorf("collective: %w: Transport is shm but the ranks cannot share memory: %v", ErrInvalid, s.Reason())
	}
	c.log.Debug("collective: data path on the network", "why not shared memory", s.Reason())
	return nil
}

// stopCause is the communicator's failure, once it has one.
func (c *Communicator) stopCause() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cause != nil {
		return c.cause
	}
	if c.closed {
		return fmt.Errorf("%w: rank %d closed its communicator", ErrClosed, c.rank)
	}
	return nil
}

// AllocFloat32 returns n float32s (zeroed) that collectives can move
// without copies: on the shared-memory data path the memory is a segment
// the other ranks map. An AllReduce of at least 1 MiB whose buffers all
// come from here reduces each rank's share straight from the others'
// buffers and writes the result into all of them (half the memory traffic
// of the windows); a Broadcast whose root's buffer does, and an AllGather
// or ReduceScatter whose inputs do, read them in place (one copy instead
// of two). On other data paths it is ordinary memory. Sub-slices work
// too. The memory stays valid until Free, even after Close; after Free it
// must not be touched. At most 48 regions per rank at a time, each under
// 1 GiB.
func (c *Communicator) AllocFloat32(n int) ([]float32, error) {
	p, err := c.alloc(n, 4)
	if err != nil || p == nil {
		return make([]float32, max(n, 0)), err
	}
	return unsafe.Slice((*float32)(p), n), nil
}

// AllocFloat64 is AllocFloat32 for float64 tensors.
func (c *Communicator) AllocFloat64(n int) ([]float64, error) {
	p, err := c.alloc(n, 8)
	if err != nil || p == nil {
		return make([]float64, max(n, 0)), err
	}
	return unsafe.Slice((*float64)(p), n), nil
}

// alloc makes a region of n elements of es bytes; nil (and no error) when
// this communicator has no shared-memory path, or n is 0.
func (c *Communicator) alloc(n, es int) (unsafe.Pointer, error) {
	if n < 0 {
		return nil, fmt.Errorf("collective: %w: Alloc of %d elements", ErrInvalid, n)
	}
	g := c.shm
	if g == nil || n == 0 {
		return nil, nil
	}
	if n > shmem.MaxRegionBytes/es {
		return nil, fmt.Errorf("collective: %w: Alloc of %d elements of %d bytes exceeds the %d bytes a region may hold",
			ErrInvalid, n, es, shmem.MaxRegionBytes)
	}
	p, err := g.Alloc(n * es)
	if err != nil {
		return nil, fmt.Errorf("collective: Alloc: %w", err)
	}
	return p, nil
}

// Free releases a buffer from AllocFloat32 or AllocFloat64 (given whole,
// as returned): the peers can no longer map it and its memory is unmapped.
// It must not be in use, nor touched afterwards. Buffers that were
// ordinary memory (other data paths) are left to the garbage collector.
// Free works after Close too.
func (c *Communicator) Free(buf any) error {
	var b []byte
	switch s := buf.(type) {
	case []float32:
		b = engine.Bytes(s)
	case []float64:
		b = engine.Bytes(s)
	default:
		return fmt.Errorf("collective: %w: Free of a %T", ErrInvalid, buf)
	}
	if c.shm == nil || len(b) == 0 {
		return nil
	}
	return c.shm.Free(uintptr(unsafe.Pointer(unsafe.SliceData(b))))
}
