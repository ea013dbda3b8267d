// Package shmem is the shared-memory engine: when every rank of a group is
// on one host, each rank creates a segment (package shm) and maps every
// peer's, and operations move no byte over the network.
//
// A segment holds a header — a phase counter (a futex word), an abort
// word, the fingerprints of the last two calls, the per-call words of
// registered buffers and the table of this rank's registered regions —
// and two slots, each with an input and an output area of Tuning.Window
// bytes.
//
// Every operation walks its tensor in windows of at most Window bytes,
// alternating slots, one wait per window:
//
//	publish  copy this rank's input for the window into its input area;
//	         bump the counter; wait until every rank has bumped it
//	combine  read the peers' input areas: reduce this rank's part of the
//	         window (1/n of it) from every input in rank order, into the
//	         output area, or copy what the operation needs
//	collect  copy the peers' reduced parts of the previous window out of
//	         their output areas (they wrote them before publishing this
//	         window); after the last window, one more wait, then collect
//
// so an AllReduce reads and writes each byte a fixed small number of times
// and every element is reduced once, by its owner, in rank order: the bits
// are identical on every rank and depend only on the world size and the
// inputs. Slot reuse needs no further synchronisation: a rank writes a
// slot's input area two windows later, after every rank published the
// window in between (so finished combining from it), and its output area
// after every rank published the window that reuses it (so finished
// collecting from it).
//
// Waiting spins Tuning.Spin times, then yields the processor Tuning.Yield
// times (ranks often outnumber cores), then sleeps on the peer's counter
// word with a futex. A waiter also watches the peer's abort word and,
// every probe interval, whether the peer still holds its segment's lock,
// so a rank killed in the middle of an operation is reported as lost at
// once rather than at the deadline.
//
// Mismatched calls: each rank stores its call's fingerprint (slot seq%2)
// before its first bump, and compares every peer's after the first wait;
// ranks that called different things fail with a *engine.Mismatch.
//
// The engine touches its communicator through three things only: the Call
// it runs, a function that says whether the communicator has failed or
// closed (Group's stop), and Halt, which the communicator calls when it
// does.
package shmem

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/ringo-ml/ringo/internal/engine"
	"github.com/ringo-ml/ringo/internal/shm"
	"github.com/ringo-ml/ringo/internal/wire"
)

// The segment's layout.
const (
	header      = 4096
	offCtr      = 64   // this rank's phase counter, a futex word
	offWaiters  = 68   // how many peers sleep on it
	offAbort    = 128  // the wire.Code this rank aborted with; 0 while it runs
	offFP       = 192  // two slots of fpWords: the call's fingerprint
	offCallBufs = 256  // two slots of callWords: which registered buffers the call names
	offRegTab   = 1024 // the table of this rank's registered regions
	fpWords     = 3    // seq, packed call, count
	recWords    = 4    // float64 words of a segment's announcement

	sleepMax = 2 * time.Millisecond  // longest futex sleep between checks
	probe    = 50 * time.Millisecond // liveness probe interval while sleeping
	localNap = 20 * time.Microsecond // sleep between polls of a peer in this process
)

// Tuning are the engine's settings; collective.ShmConfig documents them
// and docs/tuning.md gives the measured reasons for the defaults.
type Tuning struct {
	Window int // bytes of one slot's input (and output) area; the same on every rank
	Small  int // windows up to this many bytes are reduced whole by every rank
	Spin   int // polls before a waiter yields
	Yield  int // yields before it sleeps
}

// Default tuning. Its Window is the one for a host with at least two
// cores per rank; DefaultWindow gives the window for any host.
var Default = Tuning{Window: 256 << 10, Small: 32 << 10, Spin: 64, Yield: 64}

// Windows by the host's cores per rank (docs/tuning.md has the figures).
const (
	// CrowdedWindow is the window when the host has fewer than two cores
	// per rank: every wait may then cost a switch between processes, and
	// fewer, larger windows win (4 ranks on 2 cores, 64 MiB: 1.3-1.6x the
	// bandwidth of 256 KiB windows).
	CrowdedWindow = 1 << 20
)

// DefaultWindow is the window for n ranks on a host of cpus cores. Every
// rank of a group must compute the same value, so cpus is the host's
// count of online processors, not this process's affinity.
func DefaultWindow(n, cpus int) int {
	if cpus < 2*n {
		return CrowdedWindow
	}
	return Default.Window
}

// Limits of Tuning.Window.
const (
	MinWindow = 4 << 10
	MaxWindow = 64 << 20
)

// Resolve fills set's zero fields from the environment (RINGO_SHM_WINDOW,
// RINGO_SHM_SMALL, RINGO_SHM_SPIN, RINGO_SHM_YIELD) or the defaults for a
// group of n ranks on this host; a negative field means 0. An
// environment value out of range is ignored with a warning; a Window out
// of range is an error wrapping engine.ErrInvalid.
func Resolve(log *slog.Logger, set Tuning, n int) (Tuning, error) {
	d := Default
	t := Tuning{
		Window: setting(log, set.Window, "RINGO_SHM_WINDOW", DefaultWindow(n, shm.HostCPUs()), MinWindow, MaxWindow),
		Small:  setting(log, set.Small, "RINGO_SHM_SMALL", d.Small, 0, MaxWindow),
		Spin:   setting(log, set.Spin, "RINGO_SHM_SPIN", d.Spin, 0, 1<<20),
		Yield:  setting(log, set.Yield, "RINGO_SHM_YIELD", d.Yield, 0, 1<<20),
	}
	if t.Window < MinWindow || t.Window > MaxWindow {
		return t, fmt.Errorf("%w: Shm.Window %d outside [%d, %d]", engine.ErrInvalid, t.Window, MinWindow, MaxWindow)
	}
	t.Window &^= 63
	return t, nil
}

// setting is a field's value: v when set (negative meaning 0), else the
// environment variable name when it holds an integer in [lo, hi], else
// def.
func setting(log *slog.Logger, v int, name string, def, lo, hi int) int {
	switch {
	case v < 0:
		return 0
	case v > 0:
		return v
	}
	s, ok := os.LookupEnv(name)
	if !ok {
		return def
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < lo || n > hi {
		log.Warn("collective: ignoring a setting outside its range", "name", name, "value", s, "min", lo, "max", hi)
		return def
	}
	return n
}

func (t Tuning) segSize() int { return header + 4*t.Window }

// Phase is where an operation on the engine is, for hang reports.
type Phase int32

// Phases.
const (
	Publishing Phase = iota + 1 // copying inputs in and waiting for every rank's
	Combining                   // waiting for the last window's results
	InPlace                     // reducing registered buffers in place
)

// Group is one rank's view of every rank's segment. Operations on it run
// one at a time.
type Group struct {
	rank    int
	t       Tuning
	segs    []*shm.Segment
	ctr     []*uint32
	waiters []*uint32
	abort   []*uint32
	fp      [][2][fpWords]*uint64
	in, out [2][][]byte // [slot][rank]
	slot    uint64      // windows run so far: a window uses slot%2
	v32     [][]float32 // views of the input areas for the n-ary kernels
	v64     [][]float64
	stopped func() error // the communicator's failure or close, once it has one

	stop atomic.Bool // Halt was called

	// Registered buffers (register.go).
	reg      registry
	callBufs [][2][callWords]*uint64 // per rank and call slot
	zbufs    [][]byte                // the zero-copy path's view of every rank's buffer
	scratch  []byte                  // one tile of the zero-copy path's reduction
	ranks    []int                   // 0..n-1
	// zeroCopies counts the operations that took the zero-copy path.
	zeroCopies atomic.Int64

	// Progress of the operation in flight, for hang reports.
	waitRank atomic.Int32
	window   atomic.Int64
	windows  atomic.Int64
	phase    atomic.Int32
}

// Setup is a group in the making: this rank's segment, announced to the
// peers and then their segments mapped, until every rank agrees.
type Setup struct {
	rank, world int
	t           Tuning
	segs        []*shm.Segment
	reason      error // why this rank cannot share memory; nil while it can
}

// NewSetup creates this rank's segment. Whatever fails is kept as the
// reason the group cannot form (Reason), not returned: the ranks agree on
// the outcome together.
func NewSetup(rank, world int, t Tuning) *Setup {
	s := &Setup{rank: rank, world: world, t: t, segs: make([]*shm.Segment, world)}
	if !shm.Supported {
		s.reason = shm.ErrUnsupported
		return s
	}
	shm.Sweep(time.Minute)
	seg, err := shm.Create(t.segSize())
	if err != nil {
		s.reason = err
		return s
	}
	s.segs[rank] = seg
	return s
}

// Announcement is what this rank tells the peers of its segment (its
// name and token), as float64 words for an AllGather that moves them bit
// for bit; all zero when it has none.
func (s *Setup) Announcement() []float64 {
	rec := make([]float64, recWords)
	mine := s.segs[s.rank]
	if mine == nil {
		return rec
	}
	var b [8 * recWords]byte
	raw, _ := hex.DecodeString(mine.Name[len(shm.Prefix):])
	b[0] = 1
	copy(b[1:13], raw)
	copy(b[13:13+shm.TokenLen], mine.Token[:])
	for i := range rec {
		rec[i] = math.Float64frombits(binary.LittleEndian.Uint64(b[8*i:]))
	}
	return rec
}

// Map maps every peer's segment from all ranks' announcements, in rank
// order, and reports whether this rank could.
func (s *Setup) Map(all []float64) bool {
	if len(all) != recWords*s.world {
		s.reason = fmt.Errorf("%d announcement words for %d ranks", len(all), s.world)
	}
	for j := 0; j < s.world && s.reason == nil; j++ {
		if j == s.rank {
			continue
		}
		var b [8 * recWords]byte
		for i := range recWords {
			binary.LittleEndian.PutUint64(b[8*i:], math.Float64bits(all[j*recWords+i]))
		}
		if b[0] != 1 {
			s.reason = fmt.Errorf("rank %d has no segment", j)
			break
		}
		name := shm.Prefix + hex.EncodeToString(b[1:13])
		seg, err := shm.Open(name, [shm.TokenLen]byte(b[13:13+shm.TokenLen]), s.t.segSize())
		if err != nil {
			s.reason = fmt.Errorf("rank %d's segment: %w", j, err)
			break
		}
		s.segs[j] = seg
	}
	return s.reason == nil
}

// Reason says why the group could not form: this rank's reason, or that
// another rank failed.
func (s *Setup) Reason() error {
	if s.reason != nil {
		return s.reason
	}
	return errors.New("another rank could not map every segment")
}

// Name is this rank's segment's name, for logs.
func (s *Setup) Name() string {
	if s.segs[s.rank] == nil {
		return ""
	}
	return s.segs[s.rank].Name
}

// Abandon unmaps every segment: the ranks agreed not to share memory.
func (s *Setup) Abandon() {
	for _, seg := range s.segs {
		if seg != nil {
			_ = seg.Close()
		}
	}
}

// Group makes the group once every rank has mapped every segment: the
// files can go. stopped reports the communicator's failure or close.
func (s *Setup) Group(stopped func() error) *Group {
	_ = s.segs[s.rank].Unlink()
	return newGroup(s.segs, s.rank, s.t, stopped)
}

func newGroup(segs []*shm.Segment, rank int, t Tuning, stopped func() error) *Group {
	n := len(segs)
	g := &Group{rank: rank, t: t, segs: segs, stopped: stopped,
		ctr: make([]*uint32, n), waiters: make([]*uint32, n), abort: make([]*uint32, n),
		fp: make([][2][fpWords]*uint64, n), v32: make([][]float32, n), v64: make([][]float64, n),
		callBufs: make([][2][callWords]*uint64, n), zbufs: make([][]byte, n), scratch: engine.AlignedBytes(regTile)}
	g.ranks = make([]int, n)
	for j := range g.ranks {
		g.ranks[j] = j
	}
	for s := range 2 {
		g.in[s], g.out[s] = make([][]byte, n), make([][]byte, n)
	}
	w := t.Window
	for j, seg := range segs {
		m := seg.Mem
		g.ctr[j] = shm.Word(m, offCtr)
		g.waiters[j] = shm.Word(m, offWaiters)
		g.abort[j] = shm.Word(m, offAbort)
		for s := range 2 {
			for k := range fpWords {
				g.fp[j][s][k] = shm.Word64(m, offFP+8*(fpWords*s+k))
			}
			for k := range callWords {
				g.callBufs[j][s][k] = shm.Word64(m, offCallBufs+8*(callWords*s+k))
			}
			base := header + s*2*w
			g.in[s][j] = m[base : base+w : base+w]
			g.out[s][j] = m[base+w : base+2*w : base+2*w]
		}
	}
	return g
}

// Close unmaps every segment and the peers' registered regions, keeping
// this rank's registered buffers mapped for the caller. No operation may
// be running.
func (g *Group) Close() {
	g.closeRegions()
	for _, s := range g.segs {
		_ = s.Close()
	}
}

// Halt makes every wait of this rank's operation stop, and tells the
// peers (who watch this rank's abort word) with code.
func (g *Group) Halt(code wire.Code) {
	g.stop.Store(true)
	atomic.CompareAndSwapUint32(g.abort[g.rank], 0, uint32(code))
	for _, w := range g.ctr {
		shm.Wake(w)
	}
}

// ZeroCopies is how many operations took the zero-copy path.
func (g *Group) ZeroCopies() int64 { return g.zeroCopies.Load() }

// Report says where an operation was when it ran out of time.
func (g *Group) Report() string {
	j := g.waitRank.Load()
	phase := "publishing"
	switch Phase(g.phase.Load()) {
	case Combining:
		phase = "combining"
	case InPlace:
		if j < 0 {
			return "reducing its share of registered buffers in place (shared memory)"
		}
		return fmt.Sprintf("while waiting for rank %d to finish its share of registered buffers (shared memory)", j)
	}
	if j < 0 {
		return fmt.Sprintf("in window %d of %d (shared memory)", g.window.Load(), g.windows.Load())
	}
	return fmt.Sprintf("while waiting for rank %d to finish %s window %d of %d (shared memory)",
		j, phase, g.window.Load(), g.windows.Load())
}
