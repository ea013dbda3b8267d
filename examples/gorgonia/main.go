// Command gorgonia trains a model built with Gorgonia (gorgonia.org/gorgonia,
// Go's best-known deep-learning library) data-parallel with ringo: each
// worker runs the same Gorgonia graph on its share of every batch, ringo
// averages the gradients, and Gorgonia's solver applies them. It trains
// with 1 worker and with -workers, and shows that the losses agree.
//
// It lives in a module of its own, so that ringo's module does not depend
// on Gorgonia:
//
//	cd examples/gorgonia && go run . -workers 4
package main

import (
	"context"
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"sync"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/ringo-ml/ringo/collective"
)

// Settings of the task: a two-layer regression network on synthetic data.
type settings struct {
	features, hidden int
	examples, batch  int
	epochs           int
	lr               float64
	seed             uint64
}

func main() {
	s := settings{features: 16, hidden: 32, examples: 2048, batch: 128, epochs: 5, lr: 0.05, seed: 1}
	workers := flag.Int("workers", 4, "workers (goroutine ranks of collective.NewInProc) to compare with 1")
	flag.Parse()
	one, err := train(s, 1)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	many, err := train(s, *workers)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Printf("epoch  loss (1 worker)  loss (%d workers)  relative difference\n", *workers)
	worst := 0.0
	for e := range one {
		d := math.Abs(one[e]-many[e]) / one[e]
		worst = math.Max(worst, d)
		fmt.Printf("%5d  %15.10f  %17.10f  %.1e\n", e+1, one[e], many[e], d)
	}
	if worst > 1e-6 {
		fmt.Printf("FAIL: the losses differ by %.1e relative (> 1e-6)\n", worst)
		os.Exit(1)
	}
	fmt.Printf("the same losses to %.1e relative\n", worst)
}

// data is the synthetic task: y = tanh(x·a)·b + noise, from the seed.
func data(s settings) (x, y []float64) {
	r := rand.New(rand.NewPCG(s.seed, 7))
	a := make([]float64, s.features)
	for i := range a {
		a[i] = r.NormFloat64() / math.Sqrt(float64(s.features))
	}
	x, y = make([]float64, s.examples*s.features), make([]float64, s.examples)
	for n := range s.examples {
		dot := 0.0
		for i := range s.features {
			v := r.NormFloat64()
			x[n*s.features+i] = v
			dot += v * a[i]
		}
		y[n] = 2*math.Tanh(dot) + 0.1*r.NormFloat64()
	}
	return x, y
}

// train trains with n workers (goroutine ranks) and returns rank 0's
// mean loss over each epoch's batches.
func train(s settings, n int) ([]float64, error) {
	ctx := context.Background()
	comms, err := collective.NewInProc(ctx, n, collective.Config{})
	if err != nil {
		return nil, err
	}
	x, y := data(s)
	losses := make([][]float64, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for r, comm := range comms {
		wg.Go(func() {
			defer comm.Close()
			losses[r], errs[r] = worker(ctx, s, comm, x, y)
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return losses[0], nil
}

// worker is one rank: a Gorgonia graph over its share of each batch.
func worker(ctx context.Context, s settings, comm *collective.Communicator, xs, ys []float64) ([]float64, error) {
	rank, size := comm.Rank(), comm.Size()
	rows := s.batch / size
	g := G.NewGraph()
	x := G.NewMatrix(g, tensor.Float64, G.WithShape(rows, s.features), G.WithName("x"))
	y := G.NewVector(g, tensor.Float64, G.WithShape(rows), G.WithName("y"))
	init := rand.New(rand.NewPCG(s.seed, 11)) // the same weights on every rank
	w1 := G.NewMatrix(g, tensor.Float64, G.WithShape(s.features, s.hidden), G.WithName("w1"),
		G.WithValue(randomDense(init, s.features, s.hidden)))
	w2 := G.NewMatrix(g, tensor.Float64, G.WithShape(s.hidden, 1), G.WithName("w2"),
		G.WithValue(randomDense(init, s.hidden, 1)))
	h := G.Must(G.Tanh(G.Must(G.Mul(x, w1))))
	pred := G.Must(G.Reshape(G.Must(G.Mul(h, w2)), tensor.Shape{rows}))
	loss := G.Must(G.Mean(G.Must(G.Square(G.Must(G.Sub(pred, y))))))
	params := G.Nodes{w1, w2}
	if _, err := G.Grad(loss, params...); err != nil {
		return nil, err
	}
	m := G.NewTapeMachine(g, G.BindDualValues(params...))
	defer m.Close()
	solver := G.NewVanillaSolver(G.WithLearnRate(s.lr))

	var out []float64
	for range s.epochs {
		sum := 0.0
		steps := s.examples / s.batch
		for b := range steps {
			lo := b*s.batch + rank*rows // this rank's share of batch b
			if err := G.Let(x, tensor.New(tensor.WithShape(rows, s.features), tensor.WithBacking(clone(xs[lo*s.features:(lo+rows)*s.features])))); err != nil {
				return nil, err
			}
			if err := G.Let(y, tensor.New(tensor.WithShape(rows), tensor.WithBacking(clone(ys[lo:lo+rows])))); err != nil {
				return nil, err
			}
			if err := m.RunAll(); err != nil {
				return nil, err
			}
			// ringo's part: average the gradients (and the loss, to report
			// the batch's) over the workers, in place.
			for _, p := range params {
				grad, _ := p.Grad()
				if err := comm.AllReduce(ctx, grad.Data().([]float64), collective.Avg); err != nil {
					return nil, err
				}
			}
			l := []float64{loss.Value().Data().(float64)}
			if err := comm.AllReduce(ctx, l, collective.Avg); err != nil {
				return nil, err
			}
			sum += l[0]
			if err := solver.Step(G.NodesToValueGrads(params)); err != nil {
				return nil, err
			}
			m.Reset()
		}
		out = append(out, sum/float64(steps))
	}
	return out, nil
}

func randomDense(r *rand.Rand, rows, cols int) *tensor.Dense {
	v := make([]float64, rows*cols)
	for i := range v {
		v[i] = r.NormFloat64() / math.Sqrt(float64(rows))
	}
	return tensor.New(tensor.WithShape(rows, cols), tensor.WithBacking(v))
}

func clone(v []float64) []float64 { return append([]float64(nil), v...) }
