package main

import (
	"fmt"
	"math/rand/v2"

	"gonum.org/v1/gonum/floats"
)

// learner is a model the workers train: its parameters are one flat
// vector laid out in tensors (in the order backpropagation produces their
// gradients).
type learner interface {
	String() string
	size() int
	layout() []tensor
	init(params []float64, seed uint64)
	// gradient writes scale times the gradient of the summed loss of the
	// rows of x (labels y) into grad and returns the sum; ready(t) says
	// tensor t's gradient is final.
	gradient(params, grad, x []float64, y []int, scale float64, ready func(t int)) float64
	evaluate(params, x []float64, y []int) (loss float64, correct int)
}

func (m *mlp) size() int        { return m.nParams }
func (m *mlp) layout() []tensor { return m.tensors }

// The sparse task (-model hashed): multinomial logistic regression on
// hashed bag-of-words features, the kind of problem Hogwild! was made for.
// A document is docTokens words, each drawn from its class's topic words
// with probability topicShare, else from the whole vocabulary; a word's
// feature is its hash modulo hashedDim. An example touches docTokens of
// the hashedDim features, so its gradient touches classes × docTokens of
// the classes × hashedDim weights: 240 of 655,370 parameters.
const (
	hashedDim   = 1 << 16
	docTokens   = 24
	vocabulary  = 50_000
	topicWords  = 200
	topicShare  = 0.15
	docsStreams = 1 << 20 // keeps the document streams apart from the digits'
)

// synthDocs generates n documents, deterministically from seed and
// stream. Row i of X holds its docTokens feature indices (as float64s:
// the dense examples' layout, so batches are gathered the same way).
func synthDocs(n int, seed, stream uint64) *dataset {
	topics := rand.New(rand.NewPCG(seed, 0xd0c5))
	var topic [classes][topicWords]uint64
	for c := range topic {
		for i := range topic[c] {
			topic[c][i] = uint64(topics.IntN(vocabulary))
		}
	}
	rng := rand.New(rand.NewPCG(seed, docsStreams+stream))
	d := &dataset{X: make([]float64, n*docTokens), Y: make([]int, n), Dim: docTokens}
	for i := range n {
		c := i % classes
		d.Y[i] = c
		for t := range docTokens {
			w := uint64(rng.IntN(vocabulary))
			if rng.Float64() < topicShare {
				w = topic[c][rng.IntN(topicWords)]
			}
			d.X[i*docTokens+t] = float64(splitmix(w) % hashedDim)
		}
	}
	return d
}

// splitmix hashes a word to its feature.
func splitmix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ x>>30) * 0xbf58476d1ce4e5b9
	x = (x ^ x>>27) * 0x94d049bb133111eb
	return x ^ x>>31
}

// hashedLR is logistic regression on the hashed features: logit c =
// b_c + Σ_tokens W[c, feature]. Its gradient is sparse (sparseGradient).
type hashedLR struct {
	b, w    tensor
	touched []int // indices gradient wrote last
	logits  [classes]float64
}

func newHashedLR() *hashedLR {
	return &hashedLR{b: tensor{Name: "b", Off: 0, N: classes}, w: tensor{Name: "W", Off: classes, N: classes * hashedDim}}
}

func (m *hashedLR) String() string {
	return fmt.Sprintf("hashed logistic regression %d×%d", classes, hashedDim)
}
func (m *hashedLR) size() int        { return classes + classes*hashedDim }
func (m *hashedLR) layout() []tensor { return []tensor{m.b, m.w} }

// init starts from zero: a linear model needs no symmetry breaking.
func (m *hashedLR) init(params []float64, _ uint64) { clear(params) }

// forward sets m.logits for one document's features.
func (m *hashedLR) forward(params, feats []float64) {
	for c := range classes {
		z := params[m.b.Off+c]
		row := params[m.w.Off+c*hashedDim:]
		for _, f := range feats {
			z += row[int(f)]
		}
		m.logits[c] = z
	}
}

// gradient clears grad whole first: the caller may have changed any of it
// (an AllReduce leaves the union of every worker's components).
func (m *hashedLR) gradient(params, grad, x []float64, y []int, scale float64, ready func(int)) float64 {
	clear(grad)
	loss := m.sparseGradient(params, grad, x, y, scale)
	ready(0)
	ready(1)
	return loss
}

// sparseGradient is gradient for a grad that is zero on entry: it writes
// only the components the batch touches, which lastTouched lists
// afterwards, so a step costs what the batch touches, not the model's
// size.
func (m *hashedLR) sparseGradient(params, grad, x []float64, y []int, scale float64) float64 {
	m.touched = m.touched[:0]
	var loss float64
	for r := range y {
		feats := x[r*docTokens : (r+1)*docTokens]
		m.forward(params, feats)
		loss += softmaxRow(m.logits[:], y[r])
		for c := range classes {
			d := m.logits[c]
			if c == y[r] {
				d--
			}
			d *= scale
			grad[m.b.Off+c] += d
			m.touched = append(m.touched, m.b.Off+c)
			base := m.w.Off + c*hashedDim
			for _, f := range feats {
				grad[base+int(f)] += d
				m.touched = append(m.touched, base+int(f))
			}
		}
	}
	return loss
}

func (m *hashedLR) evaluate(params, x []float64, y []int) (loss float64, correct int) {
	for r := range y {
		m.forward(params, x[r*docTokens:(r+1)*docTokens])
		if floats.MaxIdx(m.logits[:]) == y[r] {
			correct++
		}
		loss += softmaxRow(m.logits[:], y[r])
	}
	return loss, correct
}

// sparseGrad is what a model whose gradients are sparse offers: the
// indices its last gradient wrote (possibly repeated), and the indices a
// batch's forward pass reads.
type sparseGrad interface {
	sparseGradient(params, grad, x []float64, y []int, scale float64) float64
	lastTouched() []int
	reads(x []float64, dst []int) []int
}

func (m *hashedLR) reads(x []float64, dst []int) []int {
	dst = dst[:0]
	for c := range classes {
		dst = append(dst, m.b.Off+c)
		base := m.w.Off + c*hashedDim
		for _, f := range x {
			dst = append(dst, base+int(f))
		}
	}
	return dst
}

func (m *hashedLR) lastTouched() []int { return m.touched }

// loadData generates the task's training and test sets.
func loadData(cfg *config) (train, test *dataset) {
	if cfg.model == "hashed" {
		return synthDocs(cfg.trainN, cfg.seed, 1), synthDocs(cfg.testN, cfg.seed, 2)
	}
	return synthDigits(cfg.trainN, cfg.seed, 1), synthDigits(cfg.testN, cfg.seed, 2)
}
