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
	offReg    = 256  // per-call words: two slots of (dst region id, dst offset, mapped, src region id, src offset)
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

// AllocFloat32 returns n float32s (zeroed) that collectives can move
// without copies: on the shared-memory data path the memory is a segment
// the other ranks map. An AllReduce of at least 1 MiB whose buffers all
// come from here reduces each rank's share straight from the others'
// buffers and writes the result into all of them (half the memory traffic
// of the windows); a Broadcast whose root's buffer does, and an AllGather
// or ReduceScatter whose inputs do, read them in place (one copy instead
// of two). On other data paths it is ordinary memory. Sub-slices work too. The memory stays valid until
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
	if n > (shm.MaxSize-regHeader)/es {
		return nil, fmt.Errorf("collective: %w: Alloc of %d elements of %d bytes exceeds the %d bytes a region may hold", ErrInvalid, n, es, shm.MaxSize-regHeader)
	}
	size := regHeader + n*es
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

// zcWords are the per-call words: which buffers a call names, and whether
// the rank mapped what the zero-copy path needs.
const (
	zcDstID = iota
	zcDstOff
	zcMapped
	zcSrcID
	zcSrcOff
)

// nameBuffers stores, before the operation's first wait, which registered
// regions hold its buffers (id 0: ordinary memory, or an operation the
// zero-copy path does not take).
func (r *shmRun) nameBuffers() {
	g, o, me := r.g, r.o, r.c.rank
	w := &g.reg5[me][o.hdr.Seq%2]
	var dID, dOff, sID, sOff uint64
	if zeroCopyOp(o.hdr.Op) && len(o.dst)+len(o.src) >= regMin {
		if len(o.dst) > 0 {
			id, off := g.reg.lookup(unsafe.Pointer(unsafe.SliceData(o.dst)), len(o.dst))
			dID, dOff = uint64(id), off
		}
		if len(o.src) > 0 {
			id, off := g.reg.lookup(unsafe.Pointer(unsafe.SliceData(o.src)), len(o.src))
			sID, sOff = uint64(id), off
		}
	}
	atomic.StoreUint64(w[zcDstID], dID)
	atomic.StoreUint64(w[zcDstOff], dOff)
	atomic.StoreUint64(w[zcMapped], 0)
	atomic.StoreUint64(w[zcSrcID], sID)
	atomic.StoreUint64(w[zcSrcOff], sOff)
}

// zeroCopyOp reports whether op has a zero-copy path.
func zeroCopyOp(op wire.Op) bool {
	switch op {
	case wire.OpAllReduce, wire.OpBroadcast, wire.OpAllGather, wire.OpReduceScatter:
		return true
	}
	return false
}

// tryZeroCopy decides, after the operation's first wait, whether it takes
// the zero-copy path: the buffers the other ranks read or write must all
// be registered (AllReduce: every rank's buffer; Broadcast: the root's;
// AllGather and ReduceScatter: every rank's input), and every rank must
// map the ones it needs, which takes one more wait to learn. It reports
// whether the operation is done (err then says how it ended). Every rank
// reaches the same decision.
func (r *shmRun) tryZeroCopy() (bool, error) {
	c, g, o := r.c, r.g, r.o
	h := &o.hdr
	n, me, es := c.world, c.rank, o.es
	count := int(h.Count)
	if !zeroCopyOp(h.Op) {
		return false, nil
	}
	slot := h.Seq % 2
	word := func(j, k int) uint64 { return atomic.LoadUint64(g.reg5[j][slot][k]) }
	// Which rank's which buffer the others need, and its length.
	var need []int // ranks
	idw, offw, length := zcSrcID, zcSrcOff, count*es
	switch h.Op {
	case wire.OpAllReduce:
		idw, offw = zcDstID, zcDstOff
		need = g.ranks[:n]
	case wire.OpBroadcast:
		idw, offw = zcDstID, zcDstOff
		need = g.ranks[h.Root : h.Root+1]
	case wire.OpAllGather:
		need = g.ranks[:n]
	case wire.OpReduceScatter:
		need, length = g.ranks[:n], n*count*es
	}
	if length == 0 {
		return false, nil
	}
	for _, j := range need {
		if word(j, idw) == 0 {
			return false, nil // ordinary memory: the windows, on every rank
		}
	}
	bufs := g.zbufs[:n]
	clear(bufs)
	ok := uint64(1)
	for _, j := range need {
		if j == me {
			if idw == zcDstID {
				bufs[j] = o.dst
			} else {
				bufs[j] = o.src
			}
			continue
		}
		if bufs[j] = g.peer(j, uint32(word(j, idw)), word(j, offw), length); bufs[j] == nil {
			ok = 2
		}
	}
	atomic.StoreUint64(g.reg5[me][slot][zcMapped], ok)
	if err := r.sync(); err != nil {
		return true, err
	}
	for j := range n {
		if word(j, zcMapped) != 1 {
			return false, nil
		}
	}
	g.phase.Store(3)
	g.zeroCopies.Add(1)
	var err error
	switch h.Op {
	case wire.OpAllReduce:
		err = r.zcAllReduce(bufs)
	case wire.OpBroadcast:
		if me != int(h.Root) {
			err = r.zcCopy(o.dst, bufs[h.Root])
		}
	case wire.OpAllGather:
		for j := 0; j < n && err == nil; j++ {
			err = r.zcCopy(o.dst[j*count*es:(j+1)*count*es], bufs[j])
		}
	case wire.OpReduceScatter:
		err = r.zcReduce(o.dst, bufs, me*count*es)
	}
	if err != nil {
		return true, err
	}
	return true, r.sync() // the others are done with this rank's buffers
}

// zcCheck reports why the zero-copy path must stop, if it must: this
// operation or communicator failed, its time ran out, or a peer aborted
// (then this rank stops writing into the peers' buffers within a tile).
func (r *shmRun) zcCheck() error {
	if r.o.failed.Load() {
		return r.o.firstErr()
	}
	if r.g.stop.Load() {
		return r.c.stopCause()
	}
	for j, w := range r.g.abort {
		if j != r.c.rank && atomic.LoadUint32(w) != 0 {
			return r.stopped(j)
		}
	}
	return r.expired()
}

// zcCopy copies src into dst a tile at a time, checking between tiles.
func (r *shmRun) zcCopy(dst, src []byte) error {
	for lo := 0; lo < len(dst); lo += regTile {
		if err := r.zcCheck(); err != nil {
			return err
		}
		hi := min(lo+regTile, len(dst))
		copy(dst[lo:hi], src[lo:hi])
	}
	return nil
}

// zcReduce sets dst to the reduction, in rank order, of bytes [at,
// at+len(dst)) of every rank's buffer in bufs, a tile at a time.
func (r *shmRun) zcReduce(dst []byte, bufs [][]byte, at int) error {
	for lo := 0; lo < len(dst); lo += regTile {
		if err := r.zcCheck(); err != nil {
			return err
		}
		hi := min(lo+regTile, len(dst))
		r.reduceInto(dst[lo:hi], bufs, at+lo, at+hi)
	}
	return nil
}

// zcAllReduce: this rank reduces its share straight from every rank's
// buffer, a tile at a time into scratch, and stores the tile into every
// buffer.
func (r *shmRun) zcAllReduce(bufs [][]byte) error {
	c, g, o := r.c, r.g, r.o
	es := o.es
	a, b := part(int(o.hdr.Count), c.world, c.rank)
	a, b = a*es, b*es
	for lo := a; lo < b; lo += regTile {
		if err := r.zcCheck(); err != nil {
			return err
		}
		hi := min(lo+regTile, b)
		scratch := g.scratch[:hi-lo]
		r.reduceInto(scratch, bufs, lo, hi)
		for j := range bufs {
			copy(bufs[j][lo:hi], scratch)
		}
	}
	return nil
}
