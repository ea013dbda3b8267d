//go:build unix

package faults

import (
	"context"
	"fmt"
	"strings"
	"syscall"
	"time"

	"github.com/ringo-ml/ringo/internal/netem"
)

// Script says how the parent plays a round's fault and what it expects.
type Script struct {
	// Resume, for FaultStop, sends SIGCONT this long after the rank froze
	// (a slow rank: every call must still succeed). Zero: the rank stays
	// frozen until the others have failed, then it is killed.
	Resume time.Duration
	// Partition, for FaultMark, cuts the victim off the network at the mark
	// (the round must have been formed with a Net).
	Partition bool
	// Bound is how long after the fault every survivor must have failed.
	Bound time.Duration
	// Names must all appear in every survivor's error (but the victim's).
	Names []string
}

// Problem kinds.
const (
	ProblemWrong      = "wrong result"     // a call succeeded with wrong bits, or ranks disagree
	ProblemHang       = "hang"             // a survivor failed later than the bound, or never
	ProblemLeak       = "leak"             // goroutines left after Close, or a process that would not exit
	ProblemFalseAbort = "false abort"      // a call failed with no fault to cause it
	ProblemPoison     = "not poisoned"     // the call after a failure was not refused at once
	ProblemMessage    = "vague error"      // an error that does not name what it should
	ProblemOther      = "other"            // anything else: a rank that could not run, a bad exit
	ProblemMissed     = "no failure"       // a fatal fault that no survivor noticed
	ProblemVictimExit = "victim exit code" // the victim ended otherwise than its fault says
)

// Problem is one broken promise found in a round.
type Problem struct {
	Kind string
	Msg  string
}

// Verdict is what a round showed.
type Verdict struct {
	Fault   *Report // nil if none struck
	Results []RankResult
	Calls   int // calls reported by every rank together
	Failed  int // of them, failed
	// Detect is, for a fatal fault, how long after it the last survivor
	// failed (zero otherwise).
	Detect   time.Duration
	Problems []Problem
}

func (v *Verdict) add(kind, format string, args ...any) {
	v.Problems = append(v.Problems, Problem{kind, fmt.Sprintf(format, args...)})
}

// Play drives a formed round to its end: it waits for the fault, plays the
// parent's part (SIGCONT, a partition, SIGKILL of a frozen rank) and judges
// every rank's reports against "exact or error".
func (c *Cluster) Play(ctx context.Context, rd *Round, sc Script) Verdict {
	var v Verdict
	plan := &rd.Plan
	f := plan.Fault
	faulty := f.Kind != FaultNone && f.Rank >= 0
	var survivors []int
	for r := range rd.Procs {
		if !faulty || r != f.Rank || f.Kind == FaultMark || sc.Resume > 0 {
			survivors = append(survivors, r)
		}
	}
	if faulty {
		rep, _, err := rd.WaitFault(ctx)
		if err != nil {
			v.add(ProblemHang, "%v\n%s", err, DescribeResults(rd.Results()))
			return v
		}
		v.Fault = rep
		switch {
		case sc.Partition:
			rd.SetNet(f.Rank, netem.Config{Drop: true})
		case f.Kind == FaultStop && sc.Resume > 0:
			select {
			case <-time.After(sc.Resume):
			case <-ctx.Done():
			}
			_ = c.Signal(rd.Procs[f.Rank], syscall.SIGCONT)
		}
	}
	if err := rd.WaitEnd(ctx, survivors); err != nil {
		v.add(ProblemHang, "%v\n%s", err, DescribeResults(rd.Results()))
	}
	if faulty && f.Kind == FaultStop && sc.Resume == 0 {
		_ = c.Signal(rd.Procs[f.Rank], syscall.SIGKILL) // frozen: the others are done
	}
	if err := rd.WaitEnd(ctx, nil); err != nil && len(v.Problems) == 0 {
		v.add(ProblemHang, "%v", err)
	}
	res := rd.Results()
	v.Results = res
	for _, rr := range res {
		v.Calls += len(rr.Calls)
		if rr.Failed() != nil {
			v.Failed++
		}
	}
	v.judgeExact(res, plan.Calls)
	expectFailure := faulty && sc.Resume == 0
	for _, r := range survivors {
		rr := &res[r]
		for _, e := range rr.Fatal {
			v.add(ProblemOther, "rank %d: %s", r, e)
		}
		if rr.End == nil {
			v.add(ProblemOther, "rank %d did not finish the epoch (%s): %s", r, rr.State, c.Stderr(rr.Proc))
			continue
		}
		if rr.End.Leaks != "" {
			v.add(ProblemLeak, "rank %d leaked goroutines after Close:\n%s", r, rr.End.Leaks)
		}
		failed := rr.Failed()
		switch {
		case !expectFailure && failed != nil:
			v.add(ProblemFalseAbort, "rank %d: call %d failed with no fault to cause it: %s", r, failed.Call, failed.Err)
		case !expectFailure && len(rr.Calls) != plan.Calls:
			v.add(ProblemOther, "rank %d ran %d of %d calls", r, len(rr.Calls), plan.Calls)
		case expectFailure && failed == nil:
			// A survivor whose part of the calls after the fault never
			// involved the victim (a Broadcast down the ring, away from
			// it) can finish them all, exactly; but some survivor must
			// notice (checked below).
			continue
		case expectFailure:
			// A survivor may fail in an earlier call than the victim's:
			// the victim can run calls ahead of a slow peer, its frames
			// for them still in its socket buffers (or in the network a
			// partition cuts) when it dies. But no survivor may fail before
			// the fault struck.
			if failed.End < v.Fault.At {
				v.add(ProblemFalseAbort, "rank %d: call %d failed %v before the fault struck at call %d: %s",
					r, failed.Call, time.Duration(v.Fault.At-failed.End), v.Fault.Call, failed.Err)
			}
			took := time.Duration(failed.End - v.Fault.At)
			v.Detect = max(v.Detect, took)
			if took > sc.Bound {
				v.add(ProblemHang, "rank %d failed %v after the fault; bound %v: %s", r, took, sc.Bound, failed.Err)
			}
			if !failed.Poisoned {
				v.add(ProblemPoison, "rank %d: the call after the failure was not refused at once: %s", r, failed.PoisonErr)
			}
			if r != f.Rank {
				for _, w := range sc.Names {
					if !strings.Contains(failed.Err, w) {
						v.add(ProblemMessage, "rank %d: error does not name %q: %s", r, w, failed.Err)
					}
				}
			}
		}
	}
	if expectFailure {
		// Some rank must fail; or the victim finished every call itself (a
		// SIGTERM that landed after its last call needed the context), and
		// then there was nothing to notice.
		vr := &res[f.Rank]
		noticed := vr.Failed() == nil && len(vr.Calls) == plan.Calls
		for _, r := range survivors {
			if res[r].Failed() != nil {
				noticed = true
			}
		}
		if !noticed {
			v.add(ProblemMissed, "no survivor failed after the %s of rank %d at call %d (%s)\n%s",
				f.Kind, f.Rank, v.Fault.Call, v.Fault.Point, DescribeResults(res))
		}
	}
	if !faulty || sc.Resume > 0 || f.Kind == FaultMark {
		return v
	}
	victim := rd.Procs[f.Rank]
	if err := c.WaitExit(ctx, victim); err != nil {
		v.add(ProblemLeak, "the victim (rank %d) did not exit after its %s: %v", f.Rank, f.Kind, err)
		return v
	}
	_, code, state := c.Exited(victim)
	want := map[string]string{FaultKill: "signal: killed", FaultStop: "signal: killed", FaultTerm: "exit status 143", FaultExit: "exit status 0"}[f.Kind]
	if state != want {
		v.add(ProblemVictimExit, "the victim ended with %q (code %d), want %q: %s", state, code, want, c.Stderr(victim))
	}
	return v
}

// judgeExact: every call that succeeded is exact, and the ranks that
// succeeded in a replicated call hold the same bits.
func (v *Verdict) judgeExact(res []RankResult, calls int) {
	for i := range calls {
		digest, from := "", -1
		for r, rr := range res {
			for _, rep := range rr.Calls {
				if rep.Call != i || !rep.OK {
					continue
				}
				if rep.Wrong != 0 {
					v.add(ProblemWrong, "rank %d call %s: %d wrong elements, first %s", r, rep.Desc, rep.Wrong, rep.First)
				}
				if !replicatedDesc(rep.Desc) {
					continue
				}
				if from < 0 {
					digest, from = rep.Digest, r
				} else if rep.Digest != digest {
					v.add(ProblemWrong, "call %s: rank %d and rank %d hold different bits", rep.Desc, from, r)
				}
			}
		}
	}
}

func replicatedDesc(desc string) bool {
	for _, k := range []string{KindAllReduce, KindBroadcast, KindAllGather, KindBarrier} {
		if strings.Contains(desc, " "+k+"(") {
			return true
		}
	}
	return false
}

// DescribeResults formats a round's results, one line per rank.
func DescribeResults(res []RankResult) string {
	var b strings.Builder
	for r, rr := range res {
		fmt.Fprintf(&b, "rank %d (proc %d): %d calls", r, rr.Proc.ID, len(rr.Calls))
		if f := rr.Failed(); f != nil {
			fmt.Fprintf(&b, ", call %d failed after %.3fs: %s", f.Call, f.Took, f.Err)
		}
		if rr.Fault != nil {
			fmt.Fprintf(&b, ", struck %s at %s", rr.Fault.Kind, rr.Fault.Point)
		}
		if rr.Exited {
			fmt.Fprintf(&b, ", %s", rr.State)
		}
		b.WriteString("\n")
	}
	return b.String()
}
