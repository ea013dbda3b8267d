package main

import (
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestGradient compares backpropagation with central finite differences
// of the summed loss, for logistic regression and the mlp, and checks
// that ready reports every tensor once, in layout order.
func TestGradient(t *testing.T) {
	d := synthDigits(12, 7, 3)
	for _, kind := range []string{"logreg", "mlp"} {
		m, err := newModel(kind, d.Dim, 5)
		if err != nil {
			t.Fatal(err)
		}
		p := make([]float64, m.size())
		m.init(p, 3)
		rng := rand.New(rand.NewPCG(1, 2))
		for i := range p {
			p[i] += 0.05 * rng.NormFloat64() // biases too
		}
		g := make([]float64, m.size())
		var order []int
		const scale = 0.5
		loss := m.gradient(p, g, d.X, d.Y, scale, func(i int) { order = append(order, i) })
		if want := []int{0, 1, 2, 3}; kind == "logreg" {
			want = want[:2]
			if !slices.Equal(order, want) {
				t.Errorf("%s: ready order %v, want %v", kind, order, want)
			}
		} else if !slices.Equal(order, want) {
			t.Errorf("%s: ready order %v, want %v", kind, order, want)
		}
		if l2, _ := m.evaluate(p, d.X, d.Y); math.Abs(l2-loss) > 1e-12*loss {
			t.Errorf("%s: gradient's loss %v, evaluate's %v", kind, loss, l2)
		}
		var idx []int
		for i := 0; i < m.size(); i += 1 + m.size()/300 {
			idx = append(idx, i)
		}
		if worst := finiteDiff(m, p, g, d, scale, idx); worst > 1e-4 {
			t.Errorf("%s: gradient differs from finite differences by %g relative", kind, worst)
		}
	}
}

// finiteDiff is the largest relative difference, over the components
// idx, between g and the central finite difference of scale times m's
// summed loss on d.
func finiteDiff(m learner, p, g []float64, d *dataset, scale float64, idx []int) float64 {
	const h = 1e-6
	worst := 0.0
	for _, i := range idx {
		old := p[i]
		p[i] = old + h
		lp, _ := m.evaluate(p, d.X, d.Y)
		p[i] = old - h
		lm, _ := m.evaluate(p, d.X, d.Y)
		p[i] = old
		num := scale * (lp - lm) / (2 * h)
		worst = math.Max(worst, math.Abs(num-g[i])/math.Max(1e-3, math.Abs(num)))
	}
	return worst
}

// TestHashedGradient: the sparse model's gradient against finite
// differences on the weights its documents touch, the same after a
// second call (which clears only what the first wrote), and sparse.
func TestHashedGradient(t *testing.T) {
	d := synthDocs(6, 7, 3)
	m := newHashedLR()
	p := make([]float64, m.size())
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range p {
		p[i] = 0.05 * rng.NormFloat64()
	}
	g := make([]float64, m.size())
	const scale = 0.5
	m.gradient(p, g, d.X[:docTokens], d.Y[:1], scale, noReady) // another document first
	loss := m.gradient(p, g, d.X, d.Y, scale, noReady)
	sp := make([]float64, len(g))
	if l := m.sparseGradient(p, sp, d.X, d.Y, scale); l != loss || !slices.Equal(sp, g) {
		t.Errorf("sparseGradient on a zero vector differs from gradient")
	}
	if l2, _ := m.evaluate(p, d.X, d.Y); math.Abs(l2-loss) > 1e-12*loss {
		t.Errorf("gradient's loss %v, evaluate's %v", loss, l2)
	}
	nonzero := 0
	for _, v := range g {
		if v != 0 {
			nonzero++
		}
	}
	if max := 6 * classes * (docTokens + 1); nonzero == 0 || nonzero > max {
		t.Errorf("%d nonzero gradient components, want at most %d of %d", nonzero, max, len(g))
	}
	if worst := finiteDiff(m, p, g, d, scale, append(slices.Clone(m.lastTouched()), 0, classes+5)); worst > 1e-4 {
		t.Errorf("gradient differs from finite differences by %g relative", worst)
	}
}

func TestNewModel(t *testing.T) {
	m, err := newModel("mlp", 256, 128)
	if err != nil || m.String() != "mlp 256-128-10" || m.size() != 256*128+128+128*10+10 {
		t.Fatalf("mlp: %v, %v, %d parameters", m, err, m.size())
	}
	if _, err := newModel("rnn", 4, 4); err == nil {
		t.Error("an unknown model was accepted")
	}
}

// TestPlanBuckets: small tensors are fused up to the cap, a large one
// gets a bucket of its own, no tensor is split, and the buckets tile the
// gradient vector in order.
func TestPlanBuckets(t *testing.T) {
	m := newMLP("mlp", []int{256, 128, 10})
	bs := planBuckets(m.layout(), 64<<10)
	got := describeBuckets(bs)
	if want := "[b2 W2 b1] 11.1 KiB, [W1] 256.0 KiB"; got != want {
		t.Errorf("buckets %s, want %s", got, want)
	}
	for _, capBytes := range []int{8, 100, 4 << 10, 1 << 20} {
		bs := planBuckets(m.layout(), capBytes)
		next, ti := 0, 0
		for _, b := range bs {
			if b.Lo != next || b.Hi <= b.Lo {
				t.Fatalf("cap %d: bucket [%d, %d) after %d", capBytes, b.Lo, b.Hi, next)
			}
			if len(b.Names) > 1 && (b.Hi-b.Lo)*8 > capBytes {
				t.Errorf("cap %d: fused bucket of %d bytes", capBytes, (b.Hi-b.Lo)*8)
			}
			for range b.Names {
				ti++
			}
			if b.Last != ti-1 || m.layout()[b.Last].Off+m.layout()[b.Last].N != b.Hi {
				t.Errorf("cap %d: bucket ends at tensor %d, want %d", capBytes, b.Last, ti-1)
			}
			next = b.Hi
		}
		if next != m.size() || ti != len(m.layout()) {
			t.Errorf("cap %d: buckets cover %d of %d parameters, %d of %d tensors", capBytes, next, m.size(), ti, len(m.layout()))
		}
	}
	if n := len(planBuckets(m.layout(), 8)); n != 4 {
		t.Errorf("with an 8-byte cap: %d buckets, want one per tensor (4)", n)
	}
}

// TestSynthDigits: the data depend only on the seed and the stream, and
// every class appears.
func TestSynthDigits(t *testing.T) {
	a, b := synthDigits(300, 5, 1), synthDigits(300, 5, 1)
	if !slices.Equal(a.X, b.X) || !slices.Equal(a.Y, b.Y) {
		t.Fatal("the same seed gave different data")
	}
	if c := synthDigits(300, 5, 2); slices.Equal(a.X, c.X) {
		t.Fatal("another stream gave the same data")
	}
	counts := make([]int, classes)
	for _, y := range a.Y {
		counts[y]++
	}
	for c, n := range counts {
		if n < 10 {
			t.Errorf("class %d has %d of 300 examples", c, n)
		}
	}
}

func TestShare(t *testing.T) {
	for _, n := range []int{1, 7, 64, 100} {
		for size := 1; size <= min(n, 9); size++ {
			next := 0
			for r := range size {
				lo, hi := share(n, size, r)
				if lo != next || hi-lo < n/size || hi-lo > n/size+1 {
					t.Fatalf("share(%d, %d, %d) = [%d, %d)", n, size, r, lo, hi)
				}
				next = hi
			}
			if next != n {
				t.Fatalf("share(%d, %d, ·) covers %d", n, size, next)
			}
		}
	}
}

// TestCheckpoint: a checkpoint reads back as written; a flipped bit, a
// truncated file or another format is refused; writing replaces the old
// one and leaves no temporary file.
func TestCheckpoint(t *testing.T) {
	dir := t.TempDir()
	if _, err := readCheckpoint(dir); err != errNoCheckpoint {
		t.Fatalf("empty directory: %v, want errNoCheckpoint", err)
	}
	c := &checkpoint{Step: 42, Weights: []float64{1, -2.5, math.Pi}, Velocity: []float64{0, 1e-300, -7}}
	c.Config[3] = 9
	for _, step := range []int{40, 41} {
		c.Step = step
		if err := writeCheckpoint(dir, c); err != nil {
			t.Fatal(err)
		}
	}
	got, err := readCheckpoint(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got.Step != 41 || got.Config != c.Config || !slices.Equal(got.Weights, c.Weights) || !slices.Equal(got.Velocity, c.Velocity) {
		t.Fatalf("read %+v, wrote %+v", got, c)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 || entries[0].Name() != checkpointName {
		t.Errorf("the directory holds %v, want only %s", entries, checkpointName)
	}
	data := c.marshal()
	for _, tc := range []struct {
		name string
		data []byte
		want string
	}{
		{"bit flip", flip(data, 70), "checksum mismatch"},
		{"truncated", data[:len(data)-9], "checksum mismatch"},
		{"tiny", data[:20], "truncated"},
		{"other file", append([]byte("NOTACKPT"), data[8:]...), "not a checkpoint"},
	} {
		if err := os.WriteFile(filepath.Join(dir, checkpointName), tc.data, 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := readCheckpoint(dir); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error saying %q", tc.name, err, tc.want)
		}
	}
	if err := writeCheckpoint(filepath.Join(dir, "missing"), c); err == nil {
		t.Error("writing into a missing directory succeeded")
	}
}

func flip(b []byte, i int) []byte {
	b = slices.Clone(b)
	b[i] ^= 1
	return b
}

// TestFingerprint: settings that change the arithmetic change the
// fingerprint; -epochs and the worker count do not.
func TestFingerprint(t *testing.T) {
	base := mustConfig(t).fingerprint()
	if mustConfig(t, "-epochs", "9", "-workers", "2").fingerprint() != base {
		t.Error("-epochs or -workers changed the fingerprint")
	}
	for _, args := range [][]string{{"-lr", "0.2"}, {"-seed", "2"}, {"-batch", "128"}, {"-hidden", "64"}, {"-model", "logreg"}} {
		if mustConfig(t, args...).fingerprint() == base {
			t.Errorf("%v kept the fingerprint", args)
		}
	}
}

// TestAmdahl: the fit recovers the serial fraction of exact Amdahl
// speedups, and analyse compares losses against the 1-worker run.
func TestAmdahl(t *testing.T) {
	for _, s := range []float64{0, 0.1, 0.5, 1} {
		ns := []float64{2, 4, 8}
		ss := make([]float64, len(ns))
		for i, n := range ns {
			ss[i] = amdahl(s, n)
		}
		if got := amdahlFit(ns, ss); math.Abs(got-s) > 1e-12 {
			t.Errorf("fit of s=%v gave %v", s, got)
		}
	}
	run := func(n int, stepMs float64, losses ...float64) *runSummary {
		r := &runSummary{Workers: n}
		for i, l := range losses {
			r.addEpoch(record{Kind: "epoch", Epoch: i + 1, Loss: l, StepMs: stepMs, Steps: 10, SpanS: stepMs * 10 / 1000})
		}
		return r
	}
	sc := analyse([]*runSummary{run(1, 10, 1, 0.5), run(2, 6, 1, 0.5+1e-7), run(4, 5, 1.1, 0.5)}, 1e-5, true)
	if sc.Matches {
		t.Error("a loss 10% off was accepted")
	}
	if r := sc.Runs[1]; math.Abs(r.Speedup-10.0/6) > 1e-12 || math.Abs(r.LossRelDiff-2e-7) > 1e-12 {
		t.Errorf("2 workers: speedup %v, loss difference %v", r.Speedup, r.LossRelDiff)
	}
	if sc.SerialFraction <= 0 || sc.SerialFraction >= 1 {
		t.Errorf("serial fraction %v", sc.SerialFraction)
	}
}

// TestTimeShares: the ranks' shares, summed as endEpoch's AllReduce sums
// them, are the mean over ranks of each rank's mean step time (an epoch's
// figures once came out n² times too large).
func TestTimeShares(t *testing.T) {
	for _, n := range []int{1, 2, 3, 4} {
		sum := make([]float64, 4)
		var want [4]float64
		for r := range n {
			w := &worker{nSteps: 8}
			w.wall = time.Duration(8*(r+2)) * time.Millisecond // mean (r+2) ms
			w.compute = time.Duration(8*(r+1)) * time.Millisecond
			w.waiting = w.wall - w.compute
			w.first = time.Unix(100, 0)
			w.last = w.first.Add(time.Duration(r+1) * time.Second)
			v := make([]float64, 4)
			w.timeShares(v, n)
			for i := range sum {
				sum[i] += v[i]
			}
			want[0] += float64(r+2) / float64(n)
			want[1] += float64(r+1) / float64(n)
			want[2] += 1 / float64(n)
			want[3] += float64(r+1) / float64(n)
		}
		for i := range sum {
			if math.Abs(sum[i]-want[i]) > 1e-9 {
				t.Errorf("%d ranks: figure %d sums to %g, want the mean %g", n, i, sum[i], want[i])
			}
		}
	}
	v := []float64{0, 0, 0, 0}
	(&worker{}).timeShares(v, 2)
	if slices.ContainsFunc(v, func(x float64) bool { return x != 0 }) {
		t.Errorf("no steps: shares %v, want zeros", v)
	}
}
