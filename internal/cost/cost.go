// Package cost is the alpha-beta-gamma model that collective's Auto
// chooses schedules with: a dependent step costs Alpha, a byte moved over
// a link Beta, a byte reduced Gamma, and each AllReduce schedule has
// lines fitted through timed runs where it was calibrated. Pure
// arithmetic: collective measures, agrees on the figures and chooses;
// this package only estimates.
package cost

import (
	"math/bits"
	"time"

	"github.com/ringo-ml/ringo/internal/engine"
	"github.com/ringo-ml/ringo/internal/wire"
)

// Calibration sizes (bytes): AllReduce lines bend at Bulk; Top is the
// largest size timed, beyond which they are extrapolated.
const (
	Small = 4 << 10
	Bulk  = 256 << 10
	Top   = 1 << 20
)

// Line is a fitted time: Fixed + PerByte·bytes.
type Line struct {
	Fixed   time.Duration
	PerByte float64 // seconds
}

// At is the line's time, in seconds, for bytes.
func (l Line) At(bytes float64) float64 { return l.Fixed.Seconds() + l.PerByte*bytes }

// Fit returns the lines through three timed runs, in seconds, of Small
// (ts), Bulk (tb) and Top (tl) bytes: [Small, Bulk] and [Bulk, Top].
func Fit(ts, tb, tl float64) (low, high Line) {
	per := max(tb-ts, 1e-12) / (Bulk - Small)
	per2 := max(tl-tb, 1e-12) / (Top - Bulk)
	return Line{Fixed: seconds(max(ts-per*Small, 0)), PerByte: per}, Line{Fixed: seconds(tb - per2*Bulk), PerByte: per2}
}

func seconds(s float64) time.Duration { return time.Duration(s * 1e9) }

// Model holds the parameters.
type Model struct {
	Alpha time.Duration // latency of one dependent step
	Beta  float64       // seconds per byte moved over a link
	Gamma float64       // seconds per byte reduced
	// AllReduce holds, per AllReduce schedule (AllReduceScheds order),
	// the line through the timed runs at Small and Bulk, AllReduceLarge
	// the line on from Bulk through Top; zero where a schedule was not
	// timed (the formulas stand in).
	AllReduce, AllReduceLarge [3]Line
}

// AllReduceScheds are the AllReduce schedules in Model.AllReduce order.
var AllReduceScheds = [3]engine.Schedule{engine.Ring, engine.RecursiveDoubling, engine.DoubleBinaryTree}

// Estimate is one schedule's time for a call.
type Estimate struct {
	Sched engine.Schedule
	T     float64 // seconds
}

// Estimates holds a call's estimates without allocating.
type Estimates struct {
	e [3]Estimate
	n int
}

// List is the estimates, fastest first (ties: the ring first).
func (es *Estimates) List() []Estimate { return es.e[:es.n] }

// Estimates returns the model's time for each schedule that can run op
// on bytes bytes per rank (as the call's count defines it), moved in
// chunks of chunk bytes, fastest first.
func (m Model) Estimates(op wire.Op, world int, bytes, chunk float64) Estimates {
	n := float64(world)
	a, b, g := m.Alpha.Seconds(), m.Beta, m.Gamma
	depth := float64(bits.Len(uint(world - 1))) // ceil(log2 n)
	var out Estimates
	add := func(s engine.Schedule, t float64) {
		out.e[out.n] = Estimate{Sched: s, T: t}
		out.n++
	}
	c := min(chunk, bytes)
	switch op {
	case wire.OpAllReduce:
		t := m.allReduce(world, bytes, c)
		add(engine.Ring, max(t[0], 0))
		add(engine.RecursiveDoubling, max(t[1], 0))
		add(engine.DoubleBinaryTree, max(t[2], 0))
	case wire.OpBroadcast:
		add(engine.Ring, (n-1)*(a+c*b)+bytes*b+a)
		add(engine.BinomialTree, depth*(a+c*b)+depth*bytes*b+depth*a)
	case wire.OpReduce:
		add(engine.Ring, (n-1)*(a+c*b)+bytes*(b+g)+a)
		add(engine.BinomialTree, depth*(a+c*b)+depth*bytes*(b+g)+a)
	case wire.OpGather:
		add(engine.Ring, (n-1)*a+(n-1)*bytes*b+a)
		add(engine.BinomialTree, depth*a+(n-1)*bytes*b+a)
	case wire.OpBarrier:
		add(engine.Ring, (n-1)*a)
		add(engine.RecursiveDoubling, RDSteps(world)*a)
	default: // AllGather, ReduceScatter, SendRecv: the ring only
		add(engine.Ring, 0)
	}
	// Insertion sort, stable: ties keep the order above (ring first).
	for i := 1; i < out.n; i++ {
		for j := i; j > 0 && out.e[j].T < out.e[j-1].T; j-- {
			out.e[j], out.e[j-1] = out.e[j-1], out.e[j]
		}
	}
	return out
}

// allReduce is each AllReduce schedule's time for bytes moved in chunks
// of c: its measured line where it was timed (the large one above Bulk),
// else the formula. Beyond Top, the largest size timed, a tree's line
// grows at least as fast as the ring's measured per-byte cost times the
// formulas' ratio of the two (a tree moves and reduces more bytes per
// rank than the ring: log2(n)·N for recursive doubling against
// 2(n-1)/n·N), so that the noise of two timed points does not carry a
// tree to 64 MiB.
func (m Model) allReduce(world int, bytes, c float64) [3]float64 {
	n := float64(world)
	a, b := m.Alpha.Seconds(), m.Beta
	depth := float64(bits.Len(uint(world - 1)))
	seg := bytes / n
	per := AllReducePerByte(world, b, m.Gamma)
	t := [3]float64{ // the formulas, where a schedule was not timed
		2*(n-1)*(a+min(c, seg)*b) + bytes*per[0],
		RDSteps(world)*a + bytes*per[1],
		2*depth*(a+min(c, bytes/2)*b) + bytes*per[2],
	}
	ring := m.AllReduceLarge[0].PerByte // 0 if the ring was not timed: no floor
	for i := range t {
		l := m.AllReduce[i]
		if l.PerByte <= 0 {
			continue
		}
		if bytes > Bulk && m.AllReduceLarge[i].PerByte > 0 {
			l = m.AllReduceLarge[i]
		}
		t[i] = l.At(bytes)
		if bytes > Top {
			t[i] = l.At(Top) + (bytes-Top)*max(l.PerByte, ring*per[i]/per[0])
		}
	}
	return t
}

// RDSteps is the number of dependent steps of recursive doubling: log2 of
// the largest power of two in the world, and two more (fold in, fold
// out) when the world is not one.
func RDSteps(world int) float64 {
	p := 1 << (bits.Len(uint(world)) - 1)
	steps := float64(bits.Len(uint(p)) - 1)
	if p != world {
		steps += 2
	}
	return steps
}

// AllReducePerByte is each AllReduce schedule's cost per byte of the
// tensor (AllReduceScheds order) in the formulas: what a rank moves over
// its links at b seconds a byte and reduces at g. The ring moves
// 2(n-1)/n·N and reduces (n-1)/n·N; recursive doubling moves and reduces
// N at each step; in the double binary tree a rank interior in one tree
// and a leaf in the other sends (and receives) 2N in all, and reduces up
// to N.
func AllReducePerByte(world int, b, g float64) [3]float64 {
	n := float64(world)
	return [3]float64{2*(n-1)/n*b + (n-1)/n*g, RDSteps(world) * (b + g), 2*b + g}
}

// CalibrationTime predicts, from the probes' model alone, how long the
// timed AllReduce runs of a calibration take: every schedule once at Top,
// then every schedule at each point, one more run than is timed, with
// block back-to-back runs per sample at Small.
func (m Model) CalibrationTime(world int, chunk float64, block int) float64 {
	var t float64
	for _, pt := range []struct{ bytes, runs int }{{Top, 1}, {Small, 8 * block}, {Bulk, 4}, {Top, 4}} {
		es := m.Estimates(wire.OpAllReduce, world, float64(pt.bytes), chunk)
		for _, x := range es.List() {
			t += float64(pt.runs) * x.T
		}
	}
	return t
}
