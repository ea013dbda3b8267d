package main

import (
	"fmt"
	"math"
	"math/rand/v2"

	"gonum.org/v1/gonum/floats"
	"gonum.org/v1/gonum/mat"
)

// tensor is one named parameter tensor: a range of the flat parameter
// vector (and of the gradient vector, laid out alike).
type tensor struct {
	Name   string
	Off, N int
}

// mlp is a fully connected network with ReLU hidden layers and a softmax
// output, trained on the mean cross-entropy. With no hidden layer it is
// multinomial logistic regression.
//
// Its parameters live in one flat []float64 so that gradient buckets are
// plain sub-slices (no copying into fusion buffers) and a checkpoint is
// one vector. The tensors are laid out in the order backpropagation
// produces their gradients: the last layer's bias and weights first. So a
// bucket of consecutive tensors is complete as soon as backpropagation
// has passed its last tensor, and its AllReduce can start while the
// earlier layers' gradients are still being computed.
type mlp struct {
	name    string
	sizes   []int    // layer widths: inputs, hidden..., classes
	w, b    []tensor // per layer l (0 = first): W_l (out×in) and b_l (out)
	tensors []tensor // in layout (= backprop) order
	nParams int

	// Workspace, reused while the batch size stays the same.
	rows int
	z, a []*mat.Dense // per layer: pre-activations and activations (a[0] is the input)
	dz   []*mat.Dense // per layer: gradient of the loss by z
}

// newModel builds the model named by kind for inputs of dim features:
// "logreg" (no hidden layer), "mlp" (one hidden layer of hidden units),
// or "hashed" (logistic regression on hashed sparse features; dim is
// ignored).
func newModel(kind string, dim, hidden int) (learner, error) {
	switch kind {
	case "hashed":
		return newHashedLR(), nil
	case "logreg":
		return newMLP("logreg", []int{dim, classes}), nil
	case "mlp":
		if hidden < 1 {
			return nil, fmt.Errorf("an mlp needs at least 1 hidden unit, not %d", hidden)
		}
		return newMLP("mlp", []int{dim, hidden, classes}), nil
	}
	return nil, fmt.Errorf("unknown model %q (want logreg, mlp or hashed)", kind)
}

func newMLP(name string, sizes []int) *mlp {
	m := &mlp{name: name, sizes: sizes}
	L := len(sizes) - 1
	m.w, m.b = make([]tensor, L), make([]tensor, L)
	off := 0
	for l := L - 1; l >= 0; l-- {
		in, out := sizes[l], sizes[l+1]
		m.b[l] = tensor{Name: fmt.Sprintf("b%d", l+1), Off: off, N: out}
		off += out
		m.w[l] = tensor{Name: fmt.Sprintf("W%d", l+1), Off: off, N: out * in}
		off += out * in
		m.tensors = append(m.tensors, m.b[l], m.w[l])
	}
	m.nParams = off
	return m
}

// String describes the architecture, e.g. "mlp 256-128-10".
func (m *mlp) String() string {
	s := m.name + " "
	for i, n := range m.sizes {
		if i > 0 {
			s += "-"
		}
		s += fmt.Sprint(n)
	}
	return s
}

// init sets params to their initial values from seed: He-scaled normal
// weights (Glorot for the output layer), zero biases.
func (m *mlp) init(params []float64, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	clear(params)
	for l := range m.w {
		in, out := m.sizes[l], m.sizes[l+1]
		std := math.Sqrt(2 / float64(in))
		if l == len(m.w)-1 {
			std = math.Sqrt(2 / float64(in+out))
		}
		for i := range m.w[l].N {
			params[m.w[l].Off+i] = std * rng.NormFloat64()
		}
	}
}

// view returns tensor t of v as a matrix of r×c.
func view(v []float64, t tensor, r, c int) *mat.Dense {
	return mat.NewDense(r, c, v[t.Off:t.Off+t.N])
}

// workspace sizes the per-layer matrices for a batch of rows.
func (m *mlp) workspace(rows int) {
	if m.rows == rows {
		return
	}
	L := len(m.sizes) - 1
	m.rows = rows
	m.z, m.a, m.dz = make([]*mat.Dense, L+1), make([]*mat.Dense, L+1), make([]*mat.Dense, L+1)
	for l := 1; l <= L; l++ {
		m.z[l] = mat.NewDense(rows, m.sizes[l], nil)
		m.dz[l] = mat.NewDense(rows, m.sizes[l], nil)
		if l < L {
			m.a[l] = mat.NewDense(rows, m.sizes[l], nil)
		}
	}
}

// forward computes the logits of the rows of x into m.z[L] and returns
// them.
func (m *mlp) forward(params, x []float64, rows int) *mat.Dense {
	m.workspace(rows)
	L := len(m.sizes) - 1
	m.a[0] = mat.NewDense(rows, m.sizes[0], x)
	for l := 1; l <= L; l++ {
		W := view(params, m.w[l-1], m.sizes[l], m.sizes[l-1])
		b := params[m.b[l-1].Off : m.b[l-1].Off+m.b[l-1].N]
		z := m.z[l]
		z.Mul(m.a[l-1], W.T())
		raw := z.RawMatrix()
		for i := range rows {
			floats.Add(raw.Data[i*raw.Stride:i*raw.Stride+raw.Cols], b)
		}
		if l < L {
			a := m.a[l].RawMatrix()
			for i, v := range raw.Data[:rows*raw.Stride] {
				a.Data[i] = max(v, 0)
			}
		}
	}
	return m.z[L]
}

// softmaxRow turns logits into probabilities in place and returns the
// cross-entropy of label y.
func softmaxRow(logits []float64, y int) float64 {
	mx := floats.Max(logits)
	zy := logits[y] - mx
	var sum float64
	for i, v := range logits {
		e := math.Exp(v - mx)
		logits[i] = e
		sum += e
	}
	loss := math.Log(sum) - zy
	floats.Scale(1/sum, logits)
	return loss
}

// gradient writes into grad (the flat gradient vector) scale times the
// gradient of the summed cross-entropy of the rows of x with labels y,
// and returns that sum (unscaled). ready is called with each tensor's
// index in m.tensors as soon as its gradient is final, in layout order.
func (m *mlp) gradient(params, grad, x []float64, y []int, scale float64, ready func(t int)) float64 {
	rows := len(y)
	L := len(m.sizes) - 1
	logits := m.forward(params, x, rows)
	// dz_L = scale·(softmax − onehot)
	var loss float64
	lr, dr := logits.RawMatrix(), m.dz[L].RawMatrix()
	for i := range rows {
		p := lr.Data[i*lr.Stride : i*lr.Stride+lr.Cols]
		loss += softmaxRow(p, y[i])
		d := dr.Data[i*dr.Stride : i*dr.Stride+dr.Cols]
		copy(d, p)
		d[y[i]]--
		floats.Scale(scale, d)
	}
	next := 0
	for l := L; l >= 1; l-- {
		dz := m.dz[l]
		db := grad[m.b[l-1].Off : m.b[l-1].Off+m.b[l-1].N]
		clear(db)
		raw := dz.RawMatrix()
		for i := range rows {
			floats.Add(db, raw.Data[i*raw.Stride:i*raw.Stride+raw.Cols])
		}
		ready(next)
		next++
		dW := view(grad, m.w[l-1], m.sizes[l], m.sizes[l-1])
		dW.Mul(dz.T(), m.a[l-1])
		ready(next)
		next++
		if l > 1 {
			// dz_{l-1} = (dz_l · W_l) ⊙ relu'(z_{l-1})
			W := view(params, m.w[l-1], m.sizes[l], m.sizes[l-1])
			prev := m.dz[l-1]
			prev.Mul(dz, W)
			pr, zr := prev.RawMatrix(), m.z[l-1].RawMatrix()
			for i := range pr.Data[:rows*pr.Stride] {
				if zr.Data[i] <= 0 {
					pr.Data[i] = 0
				}
			}
		}
	}
	return loss
}

// evalChunk bounds the rows evaluated at once.
const evalChunk = 512

// evaluate returns the summed cross-entropy and the number of correct
// predictions over the rows of x with labels y.
func (m *mlp) evaluate(params, x []float64, y []int) (loss float64, correct int) {
	dim := m.sizes[0]
	for lo := 0; lo < len(y); lo += evalChunk {
		hi := min(lo+evalChunk, len(y))
		logits := m.forward(params, x[lo*dim:hi*dim], hi-lo)
		raw := logits.RawMatrix()
		for i := range hi - lo {
			p := raw.Data[i*raw.Stride : i*raw.Stride+raw.Cols]
			if floats.MaxIdx(p) == y[lo+i] {
				correct++
			}
			loss += softmaxRow(p, y[lo+i])
		}
	}
	return loss, correct
}
