package stream

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"
)

// The watchdog's liveness probe. An operation still running at lead
// before its deadline pings the peers of its unfinished lanes, so that
// when the deadline passes its error can say whether the peer it waited
// for was alive (and waiting itself) or silent. Operations with less than
// minProbeBudget in all are not probed.
const (
	maxProbeLead   = time.Second
	minProbeBudget = 200 * time.Millisecond
	// minReportWait is the least time a rank whose own peers all answered
	// the probe waits, after its deadline, for a peer's abort naming the
	// rank that stalled: the neighbours of a silent rank abort at their
	// deadline and the abort reaches the others within a few link hops.
	minReportWait = 250 * time.Millisecond
)

// Probe is what became of the liveness probe of a peer in an operation;
// collective.Probe has the same values.
type Probe uint8

// Probe states.
const (
	ProbeNone     Probe = iota // not probed
	ProbePending               // pinged, no answer yet
	ProbeAnswered              // it answered: alive
	ProbeSilent                // no answer before the deadline
)

// watchdog is an operation's probe. Its fields are guarded by Op.mu, but
// for the ping goroutines' wait group.
type watchdog struct {
	lead   time.Duration      // how long before the deadline the probe fires; 0: none
	probed bool               // the probe fired
	probes map[int]Probe      // peer -> state, for this operation
	cancel context.CancelFunc // ends the pings
	pings  sync.WaitGroup
}

// arm resets o's watchdog for an operation bounded by ctx and timeout and
// returns when its probe should fire (0: never).
func (o *Op) arm(ctx context.Context, timeout time.Duration) (after time.Duration) {
	now := time.Now()
	deadline, ok := ctx.Deadline()
	if !ok && timeout > 0 {
		deadline, ok = now.Add(timeout), true
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	d := &o.dog
	d.lead, d.probed = 0, false
	clear(d.probes)
	if budget := deadline.Sub(now); ok && budget >= minProbeBudget {
		d.lead = min(maxProbeLead, budget/4)
		return budget - d.lead
	}
	return 0
}

// probe pings the peers of o's unfinished lanes, each ping bounded by the
// deadline (lead from now), and records who answered.
func (e *Engine) probe(o *Op) {
	if e.ping == nil {
		return
	}
	var peers []int
	for _, l := range o.Progress(nil) {
		if !l.Done && !slices.Contains(peers, l.Peer) {
			peers = append(peers, l.Peer)
		}
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	d := &o.dog
	d.probed = true
	if len(peers) == 0 {
		return
	}
	if d.probes == nil {
		d.probes = make(map[int]Probe)
	}
	ctx, cancel := context.WithTimeout(e.life, d.lead)
	d.cancel = cancel
	for _, p := range peers {
		d.probes[p] = ProbePending
		d.pings.Add(1)
		go func() {
			defer d.pings.Done()
			state := ProbeSilent
			if e.ping(ctx, p) == nil {
				state = ProbeAnswered
			}
			o.mu.Lock()
			if d.probes[p] == ProbePending {
				d.probes[p] = state
			}
			o.mu.Unlock()
		}()
	}
}

// disarm ends the probe's pings and waits for them; their answers stay.
func (o *Op) disarm() {
	o.mu.Lock()
	cancel := o.dog.cancel
	o.dog.cancel = nil
	o.mu.Unlock()
	if cancel != nil {
		cancel()
	}
	o.dog.pings.Wait()
}

// probeOf is the probe state of peer; the caller holds o.mu.
func (o *Op) probeOf(peer int) Probe { return o.dog.probes[peer] }

// ReportWait is how long an operation that ran out of time, and whose own
// peers all answered the probe, waits for a peer's abort naming the rank
// that stalled: the ranks' deadlines differ by how much later each
// entered the call, so the wait grows with the probe's lead (a quarter of
// the operation's time, at most a second).
func (o *Op) ReportWait() time.Duration {
	o.mu.Lock()
	defer o.mu.Unlock()
	return max(minReportWait, o.dog.lead)
}

// Stall is what an operation that ran out of time was waiting for.
type Stall struct {
	// Report says it for the error, one entry per unfinished lane,
	// receives first: "waiting for step 3 of 6 (reduce-scatter) chunk 0
	// of 2 from rank 4, which did not answer a ping ...".
	Report string
	Silent []int // peers that did not answer the probe
	Alive  bool  // every peer waited for answered the probe: the stall is further away
}

// Stall describes where o stood when it failed; the caller is the
// operation's goroutine, after Run returned. phase names a lane's step's
// part of the schedule, if it has one.
func (o *Op) Stall(phase func(step int) string) Stall {
	if !o.prepared {
		return Stall{Report: "while connecting to a peer"}
	}
	lanes := o.Progress(nil)
	o.mu.Lock()
	defer o.mu.Unlock()
	st := Stall{Alive: o.dog.probed}
	var parts []string
	for _, l := range lanes {
		if l.Done {
			continue
		}
		dir, peer := "waiting for", fmt.Sprintf(" from rank %d", l.Peer)
		if l.Send {
			dir, peer = "sending", fmt.Sprintf(" to rank %d", l.Peer)
		}
		p := fmt.Sprintf("%s step %d of %d", dir, l.Step, l.Steps)
		if ph := phase(l.Step); ph != "" {
			p += " (" + ph + ")"
		}
		p += fmt.Sprintf(" chunk %d of %d", l.Chunk, l.Chunks) + peer
		switch o.probeOf(l.Peer) {
		case ProbeAnswered:
			p += " (alive: it answered a ping)"
		case ProbePending, ProbeSilent:
			p += fmt.Sprintf(", which did not answer a ping for %v: stopped, partitioned or overloaded", o.dog.lead.Round(time.Millisecond))
			if !slices.Contains(st.Silent, l.Peer) {
				st.Silent = append(st.Silent, l.Peer)
			}
			st.Alive = false
		default:
			st.Alive = false
		}
		parts = append(parts, p)
	}
	if len(parts) == 0 {
		st.Report, st.Alive = "before the first frame moved", false
		return st
	}
	st.Report = "while " + strings.Join(parts, "; ")
	return st
}
