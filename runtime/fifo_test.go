package runtime

import (
	"math/rand/v2"
	"slices"
	"testing"
)

// The queue behaves like a slice under random pushes at both ends, pops
// and removals, across many growths and wrap-arounds.
func TestFIFOModel(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var q fifo[int]
	var model []int
	next := 0
	for step := range 4000 {
		switch op := rng.IntN(10); {
		case op < 4:
			q.push(next)
			model = append(model, next)
			next++
		case op < 5:
			q.pushFront(next)
			model = append([]int{next}, model...)
			next++
		case op < 8:
			v, ok := q.pop()
			if ok != (len(model) > 0) || (ok && v != model[0]) {
				t.Fatalf("step %d: pop = %d, %v; model %v", step, v, ok, model)
			}
			if ok {
				model = model[1:]
			}
		case op < 9:
			if len(model) == 0 {
				continue
			}
			x := model[rng.IntN(len(model))]
			if !q.remove(func(v int) bool { return v == x }) {
				t.Fatalf("step %d: remove(%d) found nothing", step, x)
			}
			model = slices.DeleteFunc(model, func(v int) bool { return v == x })
		default:
			if q.remove(func(v int) bool { return v < 0 }) {
				t.Fatalf("step %d: removed an absent item", step)
			}
		}
		if q.len() != len(model) {
			t.Fatalf("step %d: len %d, model %d", step, q.len(), len(model))
		}
	}
	if got := q.drain(); !slices.Equal(got, model) || q.len() != 0 {
		t.Fatalf("drain = %v, model %v", got, model)
	}
}
