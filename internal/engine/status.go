package engine

import (
	"fmt"
	"strings"
	"time"
)

// Algorithm selects how a collective moves data (collective.Algorithm).
type Algorithm uint8

// Algorithms.
const (
	// AlgoAuto lets the communicator choose.
	AlgoAuto Algorithm = iota
	// AlgoRing runs the pipelined ring schedules of package ring.
	AlgoRing
	// AlgoTree runs the tree schedules of package tree (recursive
	// doubling, double binary tree, binomial trees), where a call has one.
	AlgoTree
)

func (a Algorithm) String() string {
	switch a {
	case AlgoAuto:
		return "auto"
	case AlgoRing:
		return "ring"
	case AlgoTree:
		return "tree"
	}
	return fmt.Sprintf("Algorithm(%d)", uint8(a))
}

// Status is a snapshot of a communicator: who it is, how far it got, why it
// failed if it did, and every operation in flight with its progress on
// each link. It is what an operator looks at when a job seems stuck
// (allreduce-bench prints it on SIGUSR1). collective.Status is this type.
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
