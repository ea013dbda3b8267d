package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"time"

	"github.com/ringo-ml/ringo/collective"
)

// errGrow ends a sweep on every rank at once when workers wait to join.
var errGrow = errors.New("a new worker is waiting to join")

// awaitJoinTimeout bounds the -test-await-join wait between sizes.
const awaitJoinTimeout = time.Minute

// elasticRun is one worker's sweep in an elastic group (-min, -max). When
// a worker is lost, every survivor's operation fails with ErrPeerLost; the
// survivors re-form at the next epoch (Rejoin) and resume the sweep at the
// earliest size one of them had not finished. Between sizes, a group
// smaller than -max takes in workers waiting to join the same way. The
// worker that is rank 0 of an epoch prints that epoch's rows; the one that
// is rank 0 at the end prints the summary and writes -json and -plot with
// the rows it took part in.
type elasticRun struct {
	cfg            *config
	stdout, stderr io.Writer
	rep            *report // made when this worker is rank 0 for the first time

	// The rows this worker finished, in sweep order, each with its step
	// (its place in -b, -b×f, ...) and the group's count of wrong
	// elements in it.
	results []rowResult
	steps   []int
	wrong   []int64
	// next is the step of the next row to run; started is false until this
	// worker took part in a sweep (a newcomer has no say in where the
	// group resumes).
	next    int
	started bool
}

// runElastic runs the sweep in an elastic group, re-forming as needed,
// and returns the exit status.
func runElastic(ctx context.Context, cfg *config, comm *collective.Communicator, stdout, stderr io.Writer) int {
	e := &elasticRun{cfg: cfg, stdout: stdout, stderr: stderr}
	// Whoever is rank 0 at the end writes -json and -plot: every worker
	// checks now that it could.
	if err := (&report{cfg: cfg}).createFiles(); err != nil {
		_ = comm.Close()
		fmt.Fprintf(stderr, "allreduce-bench: %v\n", err)
		return exitFailed
	}
	for {
		var wrong int64
		var err error
		switch cfg.dt {
		case float64T:
			wrong, err = elasticSweep[float64](ctx, e, comm)
		case int32T:
			wrong, err = elasticSweep[int32](ctx, e, comm)
		case int64T:
			wrong, err = elasticSweep[int64](ctx, e, comm)
		case uint8T:
			wrong, err = elasticSweep[uint8](ctx, e, comm)
		case float16T:
			wrong, err = elasticSweep[collective.Float16](ctx, e, comm)
		case bfloat16T:
			wrong, err = elasticSweep[collective.BFloat16](ctx, e, comm)
		default:
			wrong, err = elasticSweep[float32](ctx, e, comm)
		}
		if err == nil {
			_ = comm.Close()
			if e.rep != nil && e.rep.err != nil {
				fmt.Fprintf(stderr, "allreduce-bench: %v\n", e.rep.err)
				return exitFailed
			}
			if wrong > 0 {
				return exitWrong
			}
			return exitOK
		}
		rank, epoch := comm.Rank(), comm.Epoch()
		if ctx.Err() != nil || !(errors.Is(err, errGrow) || errors.Is(err, collective.ErrPeerLost)) {
			_ = comm.Close()
			fmt.Fprintf(stderr, "allreduce-bench: rank %d at epoch %d: %v\n", rank, epoch, err)
			return exitFailed
		}
		fmt.Fprintf(stderr, "allreduce-bench: rank %d at epoch %d: %v; re-forming the group\n", rank, epoch, err)
		t0 := time.Now()
		rctx, cancel := context.WithTimeout(ctx, joinTimeout)
		next, err := comm.Rejoin(rctx) // closes comm
		for said := false; errors.Is(err, collective.ErrNoQuorum) && rctx.Err() == nil; said = true {
			// The minority side of a partition: no view may form here.
			// Wait for the network to heal and join the majority's group.
			if !said {
				fmt.Fprintf(stderr, "allreduce-bench: rank %d at epoch %d: %v; waiting for the network to heal\n", rank, epoch, err)
			}
			next, err = comm.Rejoin(rctx)
		}
		cancel()
		if err != nil {
			fmt.Fprintf(stderr, "allreduce-bench: re-forming the group after epoch %d: %v\n", epoch, err)
			return exitFailed
		}
		comm = next
		fmt.Fprintf(stderr, "allreduce-bench: re-formed at epoch %d in %v: rank %d of %d (view %016x)\n",
			comm.Epoch(), time.Since(t0).Round(time.Millisecond), comm.Rank(), comm.Size(), comm.ViewID())
		cfg.dieRank = -1 // the die hook is for the first epoch only
	}
}

// elasticSweep runs the sweep from where the group is to its end on one
// communicator. It returns the group's count of wrong elements over the
// whole sweep, or the error that ended this epoch.
func elasticSweep[T elem](ctx context.Context, e *elasticRun, comm *collective.Communicator) (int64, error) {
	cfg := e.cfg
	r := &rankRun{cfg: cfg, comm: comm}
	rows, steps := sweepPlan(cfg, comm.Size())
	resume, wrongTotal, err := e.resync(ctx, comm)
	if err != nil {
		return 0, err
	}
	first, _ := slices.BinarySearch(steps, resume)
	src, dst := sweepBuffers[T](r, rows[first:])
	if comm.Rank() == 0 {
		e.announce(comm, rows, first)
	}
	for i := first; i < len(rows); i++ {
		res, err := runRow(ctx, r, rows[i], src, dst)
		if err != nil {
			return 0, err
		}
		var wrong int64
		if res.Wrong != nil {
			wrong = *res.Wrong
		}
		e.results, e.steps, e.wrong = append(e.results, res), append(e.steps, steps[i]), append(e.wrong, wrong)
		e.next = steps[i] + 1
		wrongTotal += wrong
		if comm.Rank() == 0 {
			e.rep.row(res)
		}
		if i+1 < len(rows) {
			if err := e.maybeGrow(ctx, comm); err != nil {
				return 0, err
			}
		}
	}
	if comm.Rank() == 0 {
		e.rep.rows = e.results // every row this worker took part in, for the summary, -json and -plot
		e.rep.finish(wrongTotal)
	}
	return wrongTotal, nil
}

// resync agrees with the other members of a new epoch where the sweep
// resumes: the earliest row a member has not finished (members can be a
// row apart when a failure strikes between rows; workers new to the sweep
// have no say, and a group of newcomers starts at the beginning). It also
// agrees on the wrong elements counted in the rows before it, which every
// member that took part in them knows and newcomers do not.
func (e *elasticRun) resync(ctx context.Context, comm *collective.Communicator) (resume int, wrongBefore int64, err error) {
	v := []float64{math.Inf(1)}
	if e.started {
		v[0] = float64(e.next)
	}
	if err := comm.AllReduce(ctx, v, collective.Min); err != nil {
		return 0, 0, err
	}
	if !math.IsInf(v[0], 1) {
		resume = int(v[0])
	}
	// Forget the rows that will run again.
	keep := 0
	for keep < len(e.steps) && e.steps[keep] < resume {
		keep++
	}
	e.results, e.steps, e.wrong = e.results[:keep], e.steps[:keep], e.wrong[:keep]
	var mine int64
	for _, w := range e.wrong {
		mine += w
	}
	v[0] = float64(mine)
	if err := comm.AllReduce(ctx, v, collective.Max); err != nil {
		return 0, 0, err
	}
	e.next, e.started = resume, true
	return resume, int64(v[0]), nil
}

// announce starts rank 0's part of the table: the header the first time
// this worker is rank 0, and a line for each epoch.
func (e *elasticRun) announce(comm *collective.Communicator, rows []rowSpec, first int) {
	n := comm.Size()
	if e.rep == nil {
		e.rep = newReport(e.cfg, n, fmt.Sprintf("%s, joined by gossip (elastic: %d to %d workers)", comm.DataPath(), e.cfg.min, e.cfg.max), e.stdout)
		e.rep.start(rows[first:])
	}
	from := "the sweep is done"
	if first < len(rows) {
		from = fmt.Sprintf("from size %d B", rows[first].bytes)
	}
	fmt.Fprintf(e.rep.w, "# epoch %d: %d workers, %s\n", comm.Epoch(), n, from)
}

// maybeGrow ends the epoch on every rank when a group smaller than -max
// has workers waiting to join: the ranks decide together, on the Max of
// what each sees in gossip, so that all of them re-form or none.
func (e *elasticRun) maybeGrow(ctx context.Context, comm *collective.Communicator) error {
	if comm.Size() >= e.cfg.max {
		return nil
	}
	if e.cfg.awaitJoin {
		deadline := time.Now().Add(awaitJoinTimeout)
		for comm.Waiting() == 0 && time.Now().Before(deadline) && ctx.Err() == nil {
			time.Sleep(20 * time.Millisecond)
		}
	}
	v := []float64{0}
	if comm.Waiting() > 0 {
		v[0] = 1
	}
	if err := comm.AllReduce(ctx, v, collective.Max); err != nil {
		return err
	}
	if v[0] > 0 {
		return errGrow
	}
	return nil
}
