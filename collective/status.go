package collective

import (
	"context"
	"sync"
	"time"

	"github.com/ringo-ml/ringo/internal/engine"
	"github.com/ringo-ml/ringo/internal/engine/stream"
	"github.com/ringo-ml/ringo/internal/wire"
)

// Status is a snapshot of a communicator: who it is, how far it got, why it
// failed if it did, and every operation in flight with its progress on
// each link. It is what an operator looks at when a job seems stuck
// (allreduce-bench prints it on SIGUSR1). OpStatus is one operation in
// flight and LinkStatus one direction of one of its links; Phase is the
// part of a ring AllReduce a link's step belongs to, and Probe what became
// of the liveness probe an operation sends shortly before its deadline.
type (
	Status     = engine.Status
	OpStatus   = engine.OpStatus
	LinkStatus = engine.LinkStatus
	Phase      = engine.Phase
	Probe      = engine.Probe
)

// Phases of a ring AllReduce, and probe states of a peer.
const (
	PhaseNone          = engine.PhaseNone
	PhaseReduceScatter = engine.PhaseReduceScatter
	PhaseAllGather     = engine.PhaseAllGather

	ProbeNone     = engine.ProbeNone
	ProbePending  = engine.ProbePending
	ProbeAnswered = engine.ProbeAnswered
	ProbeSilent   = engine.ProbeSilent
)

// Status returns a snapshot of the communicator. It is safe to call at
// any time from any goroutine, including while an operation runs, and it
// does not wait for the operation.
func (c *Communicator) Status() Status {
	c.mu.Lock()
	s := Status{Group: c.group, Epoch: c.epoch, Rank: c.rank, World: c.world,
		Completed: c.doneSeq, Err: c.cause, Closed: c.closed}
	c.mu.Unlock()
	b := &c.board
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.active {
		return s
	}
	algo := Ring
	if b.hdr.Algo == wire.AlgoTree {
		algo = Tree
	}
	op := OpStatus{Seq: b.hdr.Seq, Call: engine.Describe(&b.hdr), Algorithm: algo, Schedule: b.sched,
		Bytes: int(b.hdr.Count) * b.hdr.DType.Size(), Started: b.started, Deadline: b.deadline,
		Connecting: !b.running}
	switch {
	case b.running:
		op.Links = b.links(nil)
	case c.shm != nil:
		// The shared-memory path has no links to report; it keeps its own
		// progress in atomics.
		op.Connecting, op.Detail = false, c.shm.Report()
	}
	s.Ops = []OpStatus{op}
	return s
}

const (
	// peerReportWait is how long a rank whose operation failed on a link
	// waits for the abort that says why: a peer that failed sends its
	// abort and may close at once, and the connection's end can overtake
	// the abort.
	peerReportWait = 250 * time.Millisecond
	// abortLinger bounds how long Close of a failed communicator waits
	// for its aborts to reach the peers before it closes the connections.
	abortLinger = 250 * time.Millisecond
)

// statusBoard publishes the operation in flight to Status. It is its own
// lock's domain: the operation goroutine writes the engine's operation
// only while running is false, or (atomics aside) not at all, so Status
// may read its progress under mu while running is true.
type statusBoard struct {
	mu       sync.Mutex
	world    int
	active   bool // an operation is between begin and end
	running  bool // its state is prepared: Status may read its progress
	hdr      wire.Header
	sched    Schedule
	o        *stream.Op
	started  time.Time
	deadline time.Time
	progress []stream.LaneProgress
}

// begin publishes an operation: its call and deadline. The caller holds
// opMu and has numbered the call.
func (b *statusBoard) begin(c *Communicator, ctx context.Context, h *wire.Header, sched Schedule) {
	now := time.Now()
	deadline, ok := ctx.Deadline()
	if !ok && c.timeout > 0 {
		deadline = now.Add(c.timeout)
	}
	b.mu.Lock()
	b.world = c.world
	b.active, b.running = true, false
	b.hdr, b.sched, b.o = *h, sched, nil
	b.started, b.deadline = now, deadline
	b.mu.Unlock()
}

// run marks the operation's state prepared: from now until end, Status
// reads its progress.
func (b *statusBoard) run(o *stream.Op) {
	b.mu.Lock()
	b.o, b.running = o, true
	b.mu.Unlock()
}

// end withdraws the operation.
func (b *statusBoard) end() {
	b.mu.Lock()
	b.active, b.running, b.o = false, false, nil
	b.mu.Unlock()
}

// links describes every lane of the running operation, receives first;
// the caller holds mu and running is true.
func (b *statusBoard) links(dst []LinkStatus) []LinkStatus {
	b.progress = b.o.Progress(b.progress[:0])
	for _, p := range b.progress {
		s := LinkStatus{Peer: p.Peer, Send: p.Send, Step: p.Step, Steps: p.Steps, Chunk: p.Chunk, Chunks: p.Chunks, Done: p.Done,
			Probe: Probe(p.Probe)}
		if !p.Done {
			s.Phase = phase(&b.hdr, b.world, p.Step)
		}
		dst = append(dst, s)
	}
	return dst
}

// phase names the part of a ring AllReduce that a link's step belongs to:
// steps 0..n-2 are the reduce-scatter and n-1..2n-3 the allgather, on both
// links of the ring (the ring needs no empty opening frame: its first
// chunk opens the operation).
func phase(h *wire.Header, world, step int) Phase {
	switch {
	case h.Op != wire.OpAllReduce || h.Algo != wire.AlgoRing || world < 2:
		return PhaseNone
	case step < world-1:
		return PhaseReduceScatter
	}
	return PhaseAllGather
}

// stallReport describes where operation o stood when it failed; the
// caller is the operation goroutine.
func (c *Communicator) stallReport(o *stream.Op) stream.Stall {
	if c.shm != nil {
		return stream.Stall{Report: c.shm.Report()}
	}
	return o.Stall(func(step int) string { return phase(&o.Hdr, c.world, step).String() })
}
