package main

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/ringo-ml/ringo/collective"
	"github.com/ringo-ml/ringo/internal/shm"
)

// Hogwild! (Niu, Recht, Ré and Wright, NIPS 2011): every worker reads
// the one parameter vector, computes a gradient on its examples and adds
// it into the vector component by component, with no lock and no
// barrier; other workers' additions land in between. The paper assumes
// component-wise atomic addition, which this is (a compare-and-swap loop
// per component), and shows convergence when updates are sparse, so that
// two workers rarely touch the same component. The vector lives in a
// shared-memory segment that rank 0 creates and every worker process of
// the host maps; the communicator is used only to pass the segment's name
// and to meet at epoch ends for evaluation.
//
// Reads are component-wise atomic too, so a worker may compute with a
// vector that mixes components from before and after another worker's
// update (part of the algorithm); no component is ever torn, and Go's
// race detector has nothing to report: the shared memory is touched only
// through sync/atomic.

// hogwildHeader is the segment's first bytes (its token); the vector
// starts after them, aligned.
const hogwildHeader = 64

// sharedParams is the vector every worker updates.
type sharedParams struct {
	seg  *shm.Segment
	bits []uint64 // the float64s' bits, touched only with sync/atomic
}

// setupHogwild makes the shared vector: rank 0 creates it holding
// params, tells the others its name and token with a Broadcast over the
// communicator (which authenticated every peer), and every rank maps it;
// the ranks agree that all could before rank 0 unlinks the file.
func (w *worker) setupHogwild(ctx context.Context) error {
	comm, n := w.comm, len(w.params)
	size := hogwildHeader + 8*n
	var seg *shm.Segment
	ann := make([]float64, 4) // 1 (created), 12 name bytes, 16 token bytes
	if comm.Rank() == 0 {
		var err error
		if seg, err = shm.Create(size); err != nil {
			return fmt.Errorf("hogwild: creating the shared vector: %w", err)
		}
		var b [32]byte
		b[0] = 1
		raw, _ := hex.DecodeString(seg.Name[len(shm.Prefix):])
		copy(b[1:13], raw)
		copy(b[13:13+shm.TokenLen], seg.Token[:])
		for i := range ann {
			ann[i] = math.Float64frombits(binary.LittleEndian.Uint64(b[8*i:]))
		}
	}
	if err := comm.Broadcast(ctx, ann, 0); err != nil {
		return err
	}
	ok := []float64{1}
	if comm.Rank() != 0 {
		var b [32]byte
		for i := range ann {
			binary.LittleEndian.PutUint64(b[8*i:], math.Float64bits(ann[i]))
		}
		var err error
		seg, err = shm.Open(shm.Prefix+hex.EncodeToString(b[1:13]), [shm.TokenLen]byte(b[13:13+shm.TokenLen]), size)
		if err != nil {
			w.logf("rank %d: mapping the shared vector: %v", comm.Rank(), err)
			ok[0] = 0
		}
	}
	if err := comm.AllReduce(ctx, ok, collective.Min); err != nil {
		return err
	}
	if ok[0] != 1 {
		if seg != nil {
			_ = seg.Close()
		}
		return errors.New("hogwild needs every worker on one host, sharing /dev/shm: some could not map the shared vector")
	}
	p := &sharedParams{seg: seg, bits: bitsOf(seg, n)}
	if comm.Rank() == 0 {
		_ = seg.Unlink()
		for i, v := range w.params {
			atomic.StoreUint64(&p.bits[i], math.Float64bits(v))
		}
	}
	w.hog = p
	// Nobody reads before rank 0 has written the initial weights.
	return comm.Barrier(ctx)
}

// bitsOf is the n words after the segment's header.
func bitsOf(seg *shm.Segment, n int) []uint64 {
	return unsafe.Slice((*uint64)(unsafe.Pointer(&seg.Mem[hogwildHeader])), n)
}

// snapshot copies the shared vector into dst, component by component.
func (p *sharedParams) snapshot(dst []float64) {
	for i := range dst {
		dst[i] = math.Float64frombits(atomic.LoadUint64(&p.bits[i]))
	}
}

// snapshotAt copies the components idx of the shared vector into dst.
func (p *sharedParams) snapshotAt(dst []float64, idx []int) {
	for _, i := range idx {
		dst[i] = math.Float64frombits(atomic.LoadUint64(&p.bits[i]))
	}
}

// add adds a·d into the shared vector, component by component, each
// addition atomic (a compare-and-swap loop, no lock); components where d
// is zero are not touched, which is what makes sparse updates cheap.
func (p *sharedParams) add(a float64, d []float64) {
	for i, x := range d {
		if x != 0 {
			p.addOne(i, a*x)
		}
	}
}

// addOne adds x to component i, atomically: a compare-and-swap loop.
func (p *sharedParams) addOne(i int, x float64) {
	for {
		old := atomic.LoadUint64(&p.bits[i])
		if atomic.CompareAndSwapUint64(&p.bits[i], old, math.Float64bits(math.Float64frombits(old)+x)) {
			return
		}
	}
}

// addAt is add restricted to the components idx (repeats allowed: each
// is added once).
func (p *sharedParams) addAt(a float64, d []float64, idx []int) {
	for _, i := range idx {
		if x := d[i]; x != 0 {
			p.addOne(i, a*x)
			d[i] = 0 // a repeat of i adds nothing more, and d is zero again after
		}
	}
}

func (p *sharedParams) close() error { return p.seg.Close() }

// hogwildStep is a step of -mode hogwild: read the shared vector, compute
// the gradient of this rank's share of the global batch, and add the
// update into the vector. The step per example is the synchronous one:
// n workers each add η/n times their share's momentum-smoothed mean
// gradient, where the synchronous step adds η times the mean over all
// shares.
func (w *worker) hogwildStep(_ context.Context) error {
	cfg, comm := w.cfg, w.comm
	t0 := time.Now()
	xb, yb := w.batchShare(w.step, comm.Size(), comm.Rank())
	sg, sparse := w.model.(sparseGrad)
	sparse = sparse && cfg.momentum == 0
	if sparse {
		// Read only what the batch's forward pass reads.
		w.reads = sg.reads(xb, w.reads)
		w.hog.snapshotAt(w.params, w.reads)
	} else {
		w.hog.snapshot(w.params)
	}
	if sparse {
		sg.sparseGradient(w.params, w.grad, xb, yb, 1/float64(len(yb))) // addAt leaves w.grad zero again
	} else {
		w.model.gradient(w.params, w.grad, xb, yb, 1/float64(len(yb)), noReady)
	}
	t1 := time.Now()
	step := -cfg.lr / float64(comm.Size())
	if sparse {
		// Plain SGD on a sparse model, as in the paper: only the
		// components the batch touched are read and written.
		w.hog.addAt(step, w.grad, sg.lastTouched())
	} else {
		floatsScaleAdd(w.velocity, cfg.momentum, w.grad)
		w.hog.add(step, w.velocity)
	}
	w.timeStep(t0, t1, time.Since(t1))
	return nil
}

// floatsScaleAdd sets v = μv + g.
func floatsScaleAdd(v []float64, mu float64, g []float64) {
	for i := range v {
		v[i] = mu*v[i] + g[i]
	}
}

// noReady is gradient's callback where nothing waits for a tensor.
func noReady(int) {}
