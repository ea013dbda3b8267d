package shmem

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/ringo-ml/ringo/internal/engine"
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
	regHeader = 64 // a region's first bytes: its token; the tensor starts here
	regEntry  = 64 // one table entry: id u32, size u64 at 8, name 12 bytes at 16, token at 28
	// MaxRegions is how many registered buffers a rank may hold at once.
	MaxRegions = (header - offRegTab) / regEntry
	// MaxRegionBytes bounds one registered buffer.
	MaxRegionBytes = shm.MaxSize - regHeader
	// ZeroCopyMin is the smallest call (bytes of its buffers) that takes
	// the zero-copy path: below it the windows' one wait beats the path's
	// two, and the copies are cheap.
	ZeroCopyMin = 1 << 20
	// regTile is the part of a rank's share reduced at a time, into
	// scratch, before it is stored into every rank's buffer.
	regTile = 64 << 10
)

// callWords are the per-call words: which buffers a call names, and
// whether the rank mapped what the zero-copy path needs.
const (
	cwDstID = iota
	cwDstOff
	cwMapped
	cwSrcID
	cwSrcOff
	callWords
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
	closed bool                       // the group closed: the segments' headers are gone
}

// ErrFull: MaxRegions buffers are registered already.
var ErrFull = fmt.Errorf("%w: %d registered buffers already; Free one first", engine.ErrInvalid, MaxRegions)

// Alloc makes a registered region of n bytes (n > 0, at most
// MaxRegionBytes) and returns its memory, aligned for float64.
func (g *Group) Alloc(n int) (unsafe.Pointer, error) {
	r := &g.reg
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil, engine.ErrClosed
	}
	entry := -1
	for i := range MaxRegions {
		if !r.used(i) {
			entry = i
			break
		}
	}
	if entry < 0 {
		return nil, ErrFull
	}
	seg, err := shm.Create(regHeader + n)
	if err != nil {
		return nil, err
	}
	r.next++
	reg := &region{id: r.next, seg: seg, entry: entry}
	reg.lo = uintptr(unsafe.Pointer(&seg.Mem[regHeader]))
	reg.hi = reg.lo + uintptr(n)
	row := g.row(g.rank, entry)
	binary.LittleEndian.PutUint64(row[8:], uint64(regHeader+n))
	raw, _ := hex.DecodeString(seg.Name[len(shm.Prefix):])
	copy(row[16:28], raw)
	copy(row[28:28+shm.TokenLen], seg.Token[:])
	atomic.StoreUint32(shm.Word(row, 0), reg.id) // the row is complete
	r.mine = append(r.mine, reg)
	return unsafe.Pointer(&seg.Mem[regHeader]), nil
}

// row is rank j's table row i.
func (g *Group) row(j, i int) []byte {
	return g.segs[j].Mem[offRegTab+i*regEntry : offRegTab+(i+1)*regEntry]
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

// Free releases the region that starts at p: the peers can no longer map
// it and its memory is unmapped. Memory that is not a region is left
// alone.
func (g *Group) Free(p uintptr) error {
	r := &g.reg
	r.mu.Lock()
	defer r.mu.Unlock()
	for i, m := range r.mine {
		if m.lo == p {
			if !r.closed {
				atomic.StoreUint32(shm.Word(g.row(g.rank, m.entry), 0), 0)
			}
			r.mine = append(r.mine[:i], r.mine[i+1:]...)
			return m.seg.Close()
		}
	}
	return nil
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

// Mappings is how many of rank j's regions this rank has mapped.
func (g *Group) Mappings(j int) int {
	g.reg.mu.Lock()
	defer g.reg.mu.Unlock()
	n := 0
	for k := range g.reg.peers {
		if k[0] == uint32(j) {
			n++
		}
	}
	return n
}

// peer returns the n bytes at off of rank j's region id, mapping the
// region the first time; nil when it cannot be mapped or is too short.
func (g *Group) peer(j int, id uint32, off uint64, n int) []byte {
	r := &g.reg
	r.mu.Lock()
	defer r.mu.Unlock()
	key := [2]uint32{uint32(j), id}
	seg := r.peers[key]
	if seg == nil {
		g.forgetFreed(j)
		if seg = g.mapRegion(j, id); seg == nil {
			return nil
		}
		if r.peers == nil {
			r.peers = map[[2]uint32]*shm.Segment{}
		}
		r.peers[key] = seg
	}
	end := regHeader + off + uint64(n)
	if off > uint64(len(seg.Mem)) || end > uint64(len(seg.Mem)) || end < off {
		return nil
	}
	return seg.Mem[regHeader+off : end : end]
}

// forgetFreed unmaps rank j's regions that it has freed since they were
// mapped: a mapping would keep their memory alive. Under reg.mu.
func (g *Group) forgetFreed(j int) {
	for k, s := range g.reg.peers {
		if k[0] != uint32(j) {
			continue
		}
		listed := false
		for i := range MaxRegions {
			if atomic.LoadUint32(shm.Word(g.row(j, i), 0)) == k[1] {
				listed = true
				break
			}
		}
		if !listed {
			_ = s.Close()
			delete(g.reg.peers, k)
		}
	}
}

// mapRegion maps rank j's region id from its table; nil when it is not
// listed or cannot be mapped.
func (g *Group) mapRegion(j int, id uint32) *shm.Segment {
	for i := range MaxRegions {
		row := g.row(j, i)
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
		return s
	}
	return nil
}

// closeRegions unmaps the peers' regions and lets go of this rank's files,
// keeping this rank's buffers mapped for the caller.
func (g *Group) closeRegions() {
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

// nameBuffers stores, before the operation's first wait, which registered
// regions hold its buffers (id 0: ordinary memory, or an operation the
// zero-copy path does not take).
func (r *run) nameBuffers() {
	g, c := r.g, r.call
	w := &g.callBufs[g.rank][c.Hdr.Seq%2]
	var dID, dOff, sID, sOff uint64
	if zeroCopyOp(c.Hdr.Op) && len(c.Dst)+len(c.Src) >= ZeroCopyMin {
		if len(c.Dst) > 0 {
			id, off := g.reg.lookup(unsafe.Pointer(unsafe.SliceData(c.Dst)), len(c.Dst))
			dID, dOff = uint64(id), off
		}
		if len(c.Src) > 0 {
			id, off := g.reg.lookup(unsafe.Pointer(unsafe.SliceData(c.Src)), len(c.Src))
			sID, sOff = uint64(id), off
		}
	}
	atomic.StoreUint64(w[cwDstID], dID)
	atomic.StoreUint64(w[cwDstOff], dOff)
	atomic.StoreUint64(w[cwMapped], 0)
	atomic.StoreUint64(w[cwSrcID], sID)
	atomic.StoreUint64(w[cwSrcOff], sOff)
}

// zeroCopyOp reports whether op has a zero-copy path.
func zeroCopyOp(op wire.Op) bool {
	switch op {
	case wire.OpAllReduce, wire.OpBroadcast, wire.OpAllGather, wire.OpReduceScatter:
		return true
	}
	return false
}

// needs says whose registered buffers the other ranks read or write in
// the zero-copy path (AllReduce: every rank's buffer; Broadcast: the
// root's; AllGather and ReduceScatter: every rank's input), which of the
// call's words name them, and their length in bytes.
func (r *run) needs() (ranks []int, idw, offw, length int) {
	h := &r.call.Hdr
	count, es := int(h.Count), r.call.ES
	switch h.Op {
	case wire.OpAllReduce:
		return r.g.ranks, cwDstID, cwDstOff, count * es
	case wire.OpBroadcast:
		return r.g.ranks[h.Root : h.Root+1], cwDstID, cwDstOff, count * es
	case wire.OpAllGather:
		return r.g.ranks, cwSrcID, cwSrcOff, count * es
	case wire.OpReduceScatter:
		return r.g.ranks, cwSrcID, cwSrcOff, r.n * count * es
	}
	return nil, 0, 0, 0
}

// tryZeroCopy decides, after the operation's first wait, whether it takes
// the zero-copy path: the buffers the other ranks need must all be
// registered, and every rank must map the ones it needs, which takes one
// more wait to learn. It reports whether the operation is done (err then
// says how it ended). Every rank reaches the same decision.
func (r *run) tryZeroCopy() (bool, error) {
	g, c, me := r.g, r.call, r.g.rank
	slot := c.Hdr.Seq % 2
	word := func(j, k int) uint64 { return atomic.LoadUint64(g.callBufs[j][slot][k]) }
	need, idw, offw, length := r.needs()
	if length == 0 {
		return false, nil
	}
	for _, j := range need {
		if word(j, idw) == 0 {
			return false, nil // ordinary memory: the windows, on every rank
		}
	}
	bufs := g.zbufs
	clear(bufs)
	ok := uint64(1)
	for _, j := range need {
		switch {
		case j == me && idw == cwDstID:
			bufs[j] = c.Dst
		case j == me:
			bufs[j] = c.Src
		default:
			if bufs[j] = g.peer(j, uint32(word(j, idw)), word(j, offw), length); bufs[j] == nil {
				ok = 2
			}
		}
	}
	atomic.StoreUint64(g.callBufs[me][slot][cwMapped], ok)
	if err := r.sync(Publishing); err != nil {
		return true, err
	}
	for j := range r.n {
		if word(j, cwMapped) != 1 {
			return false, nil
		}
	}
	g.phase.Store(int32(InPlace))
	g.zeroCopies.Add(1)
	if err := r.zeroCopy(bufs); err != nil {
		return true, err
	}
	return true, r.sync(InPlace) // the others are done with this rank's buffers
}

// zeroCopy runs the operation straight on the registered buffers.
func (r *run) zeroCopy(bufs [][]byte) error {
	c, me := r.call, r.g.rank
	count, es := int(c.Hdr.Count), c.ES
	switch c.Hdr.Op {
	case wire.OpAllReduce:
		return r.zcAllReduce(bufs)
	case wire.OpBroadcast:
		if me != int(c.Hdr.Root) {
			return r.zcCopy(c.Dst, bufs[c.Hdr.Root])
		}
	case wire.OpAllGather:
		for j := range r.n {
			if err := r.zcCopy(c.Dst[j*count*es:(j+1)*count*es], bufs[j]); err != nil {
				return err
			}
		}
	case wire.OpReduceScatter:
		return r.zcReduce(c.Dst, bufs, me*count*es)
	}
	return nil
}

// zcCheck reports why the zero-copy path must stop, if it must: the
// communicator failed, its time ran out, or a peer aborted (then this
// rank stops writing into the peers' buffers within a tile).
func (r *run) zcCheck() error {
	if r.g.stop.Load() {
		return r.g.stopped()
	}
	for j, w := range r.g.abort {
		if j != r.g.rank && atomic.LoadUint32(w) != 0 {
			return r.stopped(j)
		}
	}
	return r.expired()
}

// zcCopy copies src into dst a tile at a time, checking between tiles.
func (r *run) zcCopy(dst, src []byte) error {
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
func (r *run) zcReduce(dst []byte, bufs [][]byte, at int) error {
	for lo := 0; lo < len(dst); lo += regTile {
		if err := r.zcCheck(); err != nil {
			return err
		}
		hi := min(lo+regTile, len(dst))
		r.reduceInto(dst[lo:hi], nil, bufs, at+lo, at+hi)
	}
	return nil
}

// zcAllReduce: this rank reduces its share straight from every rank's
// buffer, a tile at a time into scratch, and stores the tile into every
// buffer.
func (r *run) zcAllReduce(bufs [][]byte) error {
	es := r.call.ES
	a, b := engine.Part(int(r.call.Hdr.Count), r.n, r.g.rank)
	a, b = a*es, b*es
	for lo := a; lo < b; lo += regTile {
		if err := r.zcCheck(); err != nil {
			return err
		}
		hi := min(lo+regTile, b)
		scratch := r.g.scratch[:hi-lo]
		r.reduceInto(scratch, nil, bufs, lo, hi)
		for j := range bufs {
			copy(bufs[j][lo:hi], scratch)
		}
	}
	return nil
}
