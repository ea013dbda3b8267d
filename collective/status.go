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
type Probe uint8

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

// Liveness probe timing. An operation still running at probeLead before
// its deadline pings the peers of its unfinished links, so that when the
// deadline passes its error can say whether the peer it waited for was
// alive (and waiting itself) or silent. Operations with less than
// minProbeBudget in all are not probed.
const (
	maxProbeLead   = time.Second
	minProbeBudget = 200 * time.Millisecond
	// peerReportWait is the least time a rank whose own peers all answered
	// the probe waits, after its deadline, for a peer's abort naming the
	// rank that stalled (see reportWait): the neighbours of a silent rank
	// abort at their deadline and the abort reaches the others within a
	// few link hops. A rank whose operation failed on a link waits as long
	// for the abort that says why.
	peerReportWait = 250 * time.Millisecond
	// abortLinger bounds how long Close of a failed communicator waits
	// for its aborts to reach the peers before it closes the connections.
	abortLinger = 250 * time.Millisecond
)

// reportWait is how long an operation that ran out of time, and whose
// own peers all answered the probe, waits for a peer's abort naming the
// rank that stalled: the ranks' deadlines differ by how much later each
// entered the call, so the wait grows with the probe's lead (a quarter of
// the operation's time, at most a second).
func (b *statusBoard) reportWait() time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	return max(peerReportWait, b.lead)
}

// statusBoard publishes the operation in flight to Status and runs the
// liveness probe before its deadline. It is its own lock's domain: the
// operation goroutine writes the opState only while running is false, or
// (atomics aside) not at all, so Status may read it under mu while
// running is true.
type statusBoard struct {
	c *Communicator

	mu       sync.Mutex
	active   bool // an operation is between begin and end
	running  bool // its state is prepared: Status may read the opState
	hdr      wire.Header
	sched    Schedule
	o        *stream.Op
	started  time.Time
	deadline time.Time
	lead     time.Duration // how long before the deadline the probe fires

	timer    *time.Timer // the probe; made once, reset per operation
	progress []stream.LaneProgress
	probes   map[int]Probe // peer -> probe state, for this operation
	probed   bool          // the probe ran for this operation
	cancel   context.CancelFunc
	probeWG  sync.WaitGroup
}

// begin publishes an operation: its call and deadline. The caller holds
// opMu and has numbered the call. It does not allocate (but for the
// probe's timer, once per communicator).
func (b *statusBoard) begin(c *Communicator, ctx context.Context, h *wire.Header, sched Schedule) {
	now := time.Now()
	deadline, ok := ctx.Deadline()
	if !ok && c.timeout > 0 {
		deadline = now.Add(c.timeout)
	}
	b.mu.Lock()
	b.c = c
	b.active, b.running = true, false
	b.hdr, b.sched, b.o = *h, sched, nil
	b.started, b.deadline = now, deadline
	b.probed = false
	clear(b.probes)
	b.lead = 0
	if budget := deadline.Sub(now); !deadline.IsZero() && budget >= minProbeBudget {
		b.lead = min(maxProbeLead, budget/4)
		if b.timer == nil {
			b.timer = time.AfterFunc(budget-b.lead, b.probe)
		} else {
			b.timer.Reset(budget - b.lead)
		}
	}
	b.mu.Unlock()
}

// run marks the operation's state prepared: from now until end, Status and
// the probe read it.
func (b *statusBoard) run(o *stream.Op) {
	b.mu.Lock()
	b.o, b.running = o, true
	b.mu.Unlock()
}

// end withdraws the operation, stops its probe and waits for the probe's
// pings to return.
func (b *statusBoard) end() {
	b.mu.Lock()
	b.active, b.running, b.o = false, false, nil
	if b.cancel != nil {
		b.cancel()
		b.cancel = nil
	}
	t := b.timer
	b.mu.Unlock()
	if t != nil {
		t.Stop()
	}
	b.probeWG.Wait()
}

// probe runs on the timer's goroutine near the operation's deadline: it
// pings the peers of the unfinished links, each ping bounded by the
// deadline, and records who answered.
func (b *statusBoard) probe() {
	b.mu.Lock()
	// A timer armed for an earlier operation may fire late, into this one:
	// it is early for this one's deadline, and this one's own timer follows.
	if !b.running || b.probed || time.Until(b.deadline) > b.lead+100*time.Millisecond {
		b.mu.Unlock()
		return
	}
	b.probed = true
	var peers []int
	for _, l := range b.links(nil) {
		if !l.Done && !containsInt(peers, l.Peer) {
			peers = append(peers, l.Peer)
		}
	}
	if len(peers) == 0 {
		b.mu.Unlock()
		return
	}
	if b.probes == nil {
		b.probes = make(map[int]Probe)
	}
	ctx, cancel := context.WithDeadline(b.c.life, b.deadline)
	b.cancel = cancel
	c := b.c
	for _, p := range peers {
		b.probes[p] = ProbePending
		b.probeWG.Add(1)
		go func() {
			defer b.probeWG.Done()
			state := ProbeSilent
			if l := c.linkTo(p); l != nil && l.Ping(ctx) == nil {
				state = ProbeAnswered
			}
			b.mu.Lock()
			if b.probes[p] == ProbePending {
				b.probes[p] = state
			}
			b.mu.Unlock()
		}()
	}
	b.mu.Unlock()
}

func containsInt(s []int, v int) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// links describes every lane of the running operation, receives first;
// the caller holds mu and running is true (or it is the operation
// goroutine itself).
func (b *statusBoard) links(dst []LinkStatus) []LinkStatus {
	b.progress = b.o.Progress(b.progress[:0])
	for _, p := range b.progress {
		s := LinkStatus{Peer: p.Peer, Send: p.Send, Step: p.Step, Steps: p.Steps, Chunk: p.Chunk, Chunks: p.Chunks, Done: p.Done}
		if !p.Done {
			s.Phase = phase(&b.hdr, b.c.world, p.Step)
			s.Probe = b.probes[p.Peer]
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

// stall is what an operation that ran out of time was waiting for, for
// its error: one entry per unfinished link, receives first.
type stall struct {
	report string // "waiting for step 3 of 6 (reduce-scatter) chunk 0 of 2 from rank 4, which did not answer ..."
	silent []int  // peers that did not answer the probe
	alive  bool   // every peer waited for answered the probe (the stall is further away)
}

// stallReport describes where o stood when it failed; the caller is the
// operation goroutine, after every lane returned.
func (c *Communicator) stallReport() stall {
	b := &c.board
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.running {
		if c.shm != nil {
			return stall{report: c.shm.Report()}
		}
		return stall{report: "while connecting to a peer"}
	}
	var parts []string
	st := stall{alive: b.probed}
	for _, l := range b.links(nil) {
		if l.Done {
			continue
		}
		var p string
		if l.Send {
			p = fmt.Sprintf("sending step %d of %d", l.Step, l.Steps)
		} else {
			p = fmt.Sprintf("waiting for step %d of %d", l.Step, l.Steps)
		}
		if l.Phase != PhaseNone {
			p += " (" + l.Phase.String() + ")"
		}
		p += fmt.Sprintf(" chunk %d of %d", l.Chunk, l.Chunks)
		if l.Send {
			p += fmt.Sprintf(" to rank %d", l.Peer)
		} else {
			p += fmt.Sprintf(" from rank %d", l.Peer)
		}
		switch b.probes[l.Peer] {
		case ProbeAnswered:
			p += " (alive: it answered a ping)"
		case ProbePending, ProbeSilent:
			p += fmt.Sprintf(", which did not answer a ping for %v: stopped, partitioned or overloaded", b.lead.Round(time.Millisecond))
			if !containsInt(st.silent, l.Peer) {
				st.silent = append(st.silent, l.Peer)
			}
			st.alive = false
		default:
			st.alive = false
		}
		parts = append(parts, p)
	}
	if len(parts) == 0 {
		st.report, st.alive = "before the first frame moved", false
		return st
	}
	st.report = "while " + strings.Join(parts, "; ")
	return st
}
