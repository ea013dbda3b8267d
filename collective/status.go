package collective

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/ringo-ml/ringo/internal/engine"
	"github.com/ringo-ml/ringo/internal/engine/stream"
	"github.com/ringo-ml/ringo/internal/wire"
)

// Status is a snapshot of a communicator: who it is, how far it got, why it
// failed if it did, and every operation in flight with its progress on
// each link. It is what an operator looks at when a job seems stuck
// (allreduce-bench prints it on SIGUSR1).
type Status struct {
	Group string
	Epoch uint64
	Rank  int
	World int
	// Completed is the sequence number of the last operation that ended
	// (successfully or not); 0 before the first.
	Completed uint64
	// Err is the failure that poisoned the communicator, nil while it is
	// usable.
	Err error
	// Closed reports that Close was called.
	Closed bool
	// Ops lists the operations in flight. Operations on one communicator
	// run one at a time, so it holds at most one today.
	Ops []OpStatus
}

// OpStatus is one operation in flight.
type OpStatus struct {
	Seq       uint64
	Call      string    // as error messages name it: "AllReduce(float32[1024], sum) #17"
	Algorithm Algorithm // the schedule's family: Ring or Tree
	Schedule  Schedule  // the schedule itself
	Bytes     int       // this rank's buffer, in bytes
	Started   time.Time
	Deadline  time.Time // zero when the operation has none
	// Connecting is true while the operation waits for links to be made;
	// Links is empty then.
	Connecting bool
	Links      []LinkStatus // receives first, then sends, in schedule order
	// Detail says where an operation on the shared-memory data path
	// stands (which rank it waits for, in which window); Links is empty.
	Detail string
}

// LinkStatus is the progress of one direction of one link in an operation.
// Steps are counted within the link: one step per segment the schedule
// moves over the link, after an empty opening frame (step 0) where the
// operation opens with one (a rank whose first transfer to its ring
// successor would wait for another).
type LinkStatus struct {
	Peer   int
	Send   bool  // true: this rank sends to Peer; false: it receives from Peer
	Step   int   // the step being worked on (== Steps when Done)
	Steps  int   // steps on this link in the operation
	Chunk  int   // chunk of Step being worked on
	Chunks int   // chunks in Step
	Phase  Phase // for a ring AllReduce: PhaseReduceScatter or PhaseAllGather
	Done   bool
	// Probe is the answer to the liveness probe that an operation sends to
	// the peers of its unfinished links shortly before its deadline.
	Probe Probe
}

// Phase is the part of a ring AllReduce that a link's step belongs to.
type Phase uint8

// Phases of a ring AllReduce; other schedules have none.
const (
	PhaseNone          Phase = iota
	PhaseReduceScatter       // steps 0..n-2 on both links of the ring
	PhaseAllGather           // steps n-1..2n-3
)

func (p Phase) String() string {
	switch p {
	case PhaseReduceScatter:
		return "reduce-scatter"
	case PhaseAllGather:
		return "allgather"
	}
	return ""
}

// Probe is what became of the liveness probe an operation sends to the
// peers of its unfinished links shortly before its deadline.
type Probe uint8 // numbered as stream.Probe

// Probe states of a peer in an operation.
const (
	ProbeNone     Probe = iota // not probed
	ProbePending               // pinged, no answer yet
	ProbeAnswered              // it answered: alive
	ProbeSilent                // no answer before the deadline
)

func (p Probe) String() string {
	switch p {
	case ProbePending:
		return "pending"
	case ProbeAnswered:
		return "answered"
	case ProbeSilent:
		return "no answer"
	}
	return ""
}

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

// String formats the status for people, one line per link.
func (s Status) String() string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "rank %d of %d, group %q epoch %d: %d operations completed", s.Rank, s.World, s.Group, s.Epoch, s.Completed)
	switch {
	case s.Err != nil:
		fmt.Fprintf(&sb, "; failed: %v", s.Err)
	case s.Closed:
		sb.WriteString("; closed")
	}
	if len(s.Ops) == 0 {
		sb.WriteString("; no operation in flight\n")
		return sb.String()
	}
	sb.WriteString("\n")
	now := time.Now()
	for _, op := range s.Ops {
		fmt.Fprintf(&sb, "  %s over the %s, %d bytes, running for %v", op.Call, op.Schedule, op.Bytes, now.Sub(op.Started).Round(time.Millisecond))
		if !op.Deadline.IsZero() {
			fmt.Fprintf(&sb, ", deadline in %v", op.Deadline.Sub(now).Round(time.Millisecond))
		}
		if op.Connecting {
			sb.WriteString(", connecting to its peers")
		}
		if op.Detail != "" {
			sb.WriteString(", " + op.Detail)
		}
		sb.WriteString("\n")
		for _, l := range op.Links {
			sb.WriteString("    ")
			sb.WriteString(l.String())
			sb.WriteString("\n")
		}
	}
	return sb.String()
}

func (l LinkStatus) String() string {
	dir := fmt.Sprintf("from rank %d", l.Peer)
	if l.Send {
		dir = fmt.Sprintf("to rank %d", l.Peer)
	}
	if l.Done {
		return fmt.Sprintf("%-12s done (%d steps)", dir, l.Steps)
	}
	s := fmt.Sprintf("%-12s step %d of %d, chunk %d of %d", dir, l.Step, l.Steps, l.Chunk, l.Chunks)
	if l.Phase != PhaseNone {
		s += " (" + l.Phase.String() + ")"
	}
	if l.Probe != ProbeNone {
		s += ", probe: " + l.Probe.String()
	}
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
