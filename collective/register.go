package collective

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/ringo-ml/ringo/internal/shm"
	"github.com/ringo-ml/ringo/internal/wire"
)

// Registered buffers: tensors that live in shared memory which the other
// ranks of the host have mapped, so that an AllReduce on them reads the
// peers' inputs and writes the results in place, with no copy through the
// segments' windows (what NCCL's user-buffer registration and MPI's
// MPI_Alloc_mem are for).
//
// Each region is a segment of its own: a header holding its token, then the
// tensor. The owner lists it in a table in its communicator segment's
// header (id, size, name, token); a peer maps it the first time a call
// names it. A call names its buffer by (region id, byte offset) in its
// slot of the per-call words next to the fingerprint; once every rank has
// entered the call (the first wait) all see whether every buffer is
// registered, map what they must, say whether they could, and after one
// more wait either all take the zero-copy path or all go on with the
// windows.
const (
	regHeader = 64   // a region's first bytes: its token; the tensor starts here
	offReg    = 256  // per-call words: two slots of (region id, byte offset, mapped)
	offRegTab = 1024 // the region table in the communicator segment's header
	regEntry  = 64   // one table entry: id u32, size u64 at 8, name 12 bytes at 16, token at 28
	regSlots  = (shmHeader - offRegTab) / regEntry
	// regMin is the smallest AllReduce (bytes) that takes the zero-copy
	// path: below it the windows' one wait beats the path's two, and
	// the copies are cheap.
	regMin = 1 << 20
	// regTile is the part of a rank's share reduced at a time, into
	// scratch, before it is stored into every rank's buffer.
	regTile = 64 << 10
)

// region is one of this rank's registered buffers.
type region struct {
	id     uint32
	seg    *shm.Segment
	entry  int     // its row in the table
	lo, hi uintptr // the tensor's bytes
}

// registry holds this rank's regions and its mappings of the peers'.
type registry struct {
	mu     sync.Mutex
	next   uint32
	mine   []*region
	peers  map[[2]uint32]*shm.Segment // (rank, id) → mapping
	closed bool                       // the communicator closed: the segments' headers are gone
}

// AllocFloat32 returns n float32s (zeroed) that AllReduce can move without
// copies when every rank's buffer comes from here: on the shared-memory
// data path the memory is a segment the other ranks map, and an AllReduce
// of at least 1 MiB whose buffers are all such memory reduces each rank's
// share straight from the others' buffers and writes the result into all
// of them (half the memory traffic of the windows). On other data paths
// it is ordinary memory. Sub-slices work too. The memory stays valid until
// Free, even after Close; after Free it must not be touched. At most 48
// regions per rank at a time, each under 1 GiB.
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
	size := regHeader + n*es
	if n > (shm.MaxSize-regHeader)/es {
		return nil, fmt.Errorf("collective: %w: Alloc of %d elements of %d bytes exceeds the %d bytes a region may hold", ErrInvalid, n, es, shm.MaxSize-regHeader)
	}
	r := &g.reg
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil, fmt.Errorf("collective: Alloc: %w", ErrClosed)
	}
	entry := -1
	for i := range regSlots {
		if !r.used(i) {
			entry = i
			break
		}
	}
	if entry < 0 {
		return nil, fmt.Errorf("collective: %w: %d registered buffers already; Free one first", ErrInvalid, regSlots)
	}
	seg, err := shm.Create(size)
	if err != nil {
		return nil, fmt.Errorf("collective: Alloc: %w", err)
	}
	r.next++
	reg := &region{id: r.next, seg: seg, entry: entry}
	reg.lo = uintptr(unsafe.Pointer(&seg.Mem[regHeader]))
	reg.hi = reg.lo + uintptr(n*es)
	row := g.segs[c.rank].Mem[offRegTab+entry*regEntry : offRegTab+(entry+1)*regEntry]
	binary.LittleEndian.PutUint64(row[8:], uint64(size))
	raw, _ := hex.DecodeString(seg.Name[len(shm.Prefix):])
	copy(row[16:28], raw)
	copy(row[28:28+shm.TokenLen], seg.Token[:])
	atomic.StoreUint32(shm.Word(row, 0), reg.id) // the row is complete
	r.mine = append(r.mine, reg)
	return unsafe.Pointer(&seg.Mem[regHeader]), nil
}

// used reports whether table row i of this rank holds a region.
func (r *registry) used(i int) bool {
	for _, m := range r.mine {
		if m.entry == i {
			return true
		}
	}
	return false
}

// Free releases a buffer from AllocFloat32 or AllocFloat64 (given whole,
// as returned): the peers can no longer map it and its memory is unmapped.
// It must not be in use, nor touched afterwards. Buffers that were
// ordinary memory (other data paths) are left to the garbage collector.
// Free works after Close too.
func (c *Communicator) Free(buf any) error {
	var p uintptr
	switch b := buf.(type) {
	case []float32:
		if len(b) > 0 {
			p = uintptr(unsafe.Pointer(&b[0]))
		}
	case []float64:
		if len(b) > 0 {
			p = uintptr(unsafe.Pointer(&b[0]))
		}
	default:
		return fmt.Errorf("collective: %w: Free of a %T", ErrInvalid, buf)
	}
	g := c.shm
	if g == nil || p == 0 {
		return nil
	}
	r := &g.reg
	r.mu.Lock()
	defer r.mu.Unlock()
	for i, m := range r.mine {
		if m.lo == p {
			if !r.closed {
				row := g.segs[c.rank].Mem[offRegTab+m.entry*regEntry:]
				atomic.StoreUint32(shm.Word(row, 0), 0)
			}
			r.mine = append(r.mine[:i], r.mine[i+1:]...)
			return m.seg.Close()
		}
	}
	return nil // not a registered buffer: ordinary memory
}

// lookup finds the region holding the n bytes at p: its id and the bytes'
// offset in it; id 0 when they are not registered memory.
func (r *registry) lookup(p unsafe.Pointer, n int) (id uint32, off uint64) {
	a := uintptr(p)
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, m := range r.mine {
		if a >= m.lo && a+uintptr(n) <= m.hi {
			return m.id, uint64(a - m.lo)
		}
	}
	return 0, 0
}

// peer returns the n bytes at off of rank j's region id, mapping the
// region the first time; nil when it cannot be mapped or is too short.
func (g *shmGroup) peer(j int, id uint32, off uint64, n int) []byte {
	r := &g.reg
	r.mu.Lock()
	defer r.mu.Unlock()
	key := [2]uint32{uint32(j), id}
	seg := r.peers[key]
	if seg == nil {
		tab := g.segs[j].Mem
		// Forget this peer's regions that it has freed since: a mapping
		// would keep their memory alive.
		for k, s := range r.peers {
			if k[0] != uint32(j) {
				continue
			}
			listed := false
			for i := range regSlots {
				if atomic.LoadUint32(shm.Word(tab, offRegTab+i*regEntry)) == k[1] {
					listed = true
					break
				}
			}
			if !listed {
				_ = s.Close()
				delete(r.peers, k)
			}
		}
		for i := range regSlots {
			row := tab[offRegTab+i*regEntry : offRegTab+(i+1)*regEntry]
			if atomic.LoadUint32(shm.Word(row, 0)) != id {
				continue
			}
			size := binary.LittleEndian.Uint64(row[8:])
			if size < regHeader || size > shm.MaxSize {
				return nil
			}
			name := shm.Prefix + hex.EncodeToString(row[16:28])
			s, err := shm.Open(name, [shm.TokenLen]byte(row[28:28+shm.TokenLen]), int(size))
			if err != nil {
				return nil
			}
			if r.peers == nil {
				r.peers = map[[2]uint32]*shm.Segment{}
			}
			r.peers[key] = s
			seg = s
			break
		}
		if seg == nil {
			return nil
		}
	}
	end := regHeader + off + uint64(n)
	if off > uint64(len(seg.Mem)) || end > uint64(len(seg.Mem)) || end < off {
		return nil
	}
	return seg.Mem[regHeader+off : end : end]
}

// closeRegions unmaps the peers' regions and lets go of this rank's files,
// keeping this rank's buffers mapped for the caller.
func (g *shmGroup) closeRegions() {
	r := &g.reg
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closed = true
	for _, s := range r.peers {
		_ = s.Close()
	}
	r.peers = nil
	for _, m := range r.mine {
		_ = m.seg.Detach()
	}
}

// zeroCopy runs an AllReduce whose buffers are all registered (bufs[j] is
// rank j's, mapped here): this rank reduces its share straight from every
// buffer, a tile at a time into scratch, stores the tile into every
// buffer, and waits for the others to have done the same.
func (r *shmRun) zeroCopy(bufs [][]byte) error {
	c, g, o := r.c, r.g, r.o
	es, n, me := o.es, c.world, c.rank
	count := int(o.hdr.Count)
	a, b := part(count, n, me)
	tile := regTile / es
	g.phase.Store(3)
	g.zeroCopies.Add(1)
	for lo := a; lo < b; lo += tile {
		hi := min(lo+tile, b)
		if o.failed.Load() {
			return o.firstErr()
		}
		if g.stop.Load() {
			return c.stopCause()
		}
		if err := r.expired(); err != nil {
			return err
		}
		scratch := g.scratch[:(hi-lo)*es]
		r.reduceInto(scratch, bufs, lo*es, hi*es)
		for j := range bufs {
			copy(bufs[j][lo*es:hi*es], scratch)
		}
	}
	return r.sync()
}

// tryZeroCopy decides, after the operation's first wait, whether an
// AllReduce takes the zero-copy path: every rank must have named a
// registered buffer, and every rank must map all of them, which takes one
// more wait to learn. It reports whether the operation is done (err then
// says how it ended). Every rank reaches the same decision.
func (r *shmRun) tryZeroCopy() (bool, error) {
	c, g, o := r.c, r.g, r.o
	h := &o.hdr
	bytes := int(h.Count) * o.es
	if h.Op != wire.OpAllReduce || bytes < regMin {
		return false, nil
	}
	slot := h.Seq % 2
	for j := range c.world {
		if atomic.LoadUint64(g.reg3[j][slot][0]) == 0 {
			return false, nil // someone's buffer is ordinary memory
		}
	}
	bufs := g.zbufs[:c.world]
	ok := uint64(1)
	for j := range c.world {
		id := uint32(atomic.LoadUint64(g.reg3[j][slot][0]))
		off := atomic.LoadUint64(g.reg3[j][slot][1])
		if j == c.rank {
			bufs[j] = o.dst
			continue
		}
		if bufs[j] = g.peer(j, id, off, bytes); bufs[j] == nil {
			ok = 2
		}
	}
	atomic.StoreUint64(g.reg3[c.rank][slot][2], ok)
	if err := r.sync(); err != nil {
		return true, err
	}
	for j := range c.world {
		if atomic.LoadUint64(g.reg3[j][slot][2]) != 1 {
			return false, nil // the windows, on every rank
		}
	}
	return true, r.zeroCopy(bufs)
}
