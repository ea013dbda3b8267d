// Package schedtest holds what the schedule simulators of packages ring
// and tree share: a deterministic random scheduler that picks the next
// action among those ready (every interleaving the dependencies allow
// gets its chance), the hash that names symbolic values, and the check
// that constructors panic with a clear message. It is imported by tests
// only.
package schedtest

import (
	"strings"
	"testing"
)

// Mix is the splitmix64 finaliser: a bijective hash of x.
func Mix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	return x ^ x>>31
}

// Pair hashes an ordered pair (a ⊕ b is not b ⊕ a).
func Pair(x, y uint64) uint64 { return Mix(x*0x9e3779b97f4a7c15 + Mix(y^0x5851f42d4c957f2d)) }

// Rand is a tiny deterministic generator (xorshift64*); math/rand is
// needlessly slow under the race detector for a simulator's hot loop.
type Rand struct{ x uint64 }

// NewRand seeds a generator.
func NewRand(seed uint64) *Rand { return &Rand{x: Mix(seed) | 1} }

// IntN returns a number in [0, n).
func (r *Rand) IntN(n int) int {
	r.x ^= r.x >> 12
	r.x ^= r.x << 25
	r.x ^= r.x >> 27
	return int((r.x * 0x2545f4914f6cdd1d >> 33) % uint64(n))
}

// Worklist is a set of ready actions (small integers: ranks, lanes) with
// O(1) add and random removal.
type Worklist struct {
	items []int
	in    []bool
}

// NewWorklist holds actions 0..n-1.
func NewWorklist(n int) *Worklist { return &Worklist{in: make([]bool, n)} }

// Add marks k ready; adding a ready action does nothing.
func (w *Worklist) Add(k int) {
	if !w.in[k] {
		w.in[k] = true
		w.items = append(w.items, k)
	}
}

// Len is how many actions are ready.
func (w *Worklist) Len() int { return len(w.items) }

// Take removes and returns a ready action chosen by rng.
func (w *Worklist) Take(rng *Rand) int {
	i := rng.IntN(len(w.items))
	k := w.items[i]
	last := len(w.items) - 1
	w.items[i] = w.items[last]
	w.items = w.items[:last]
	w.in[k] = false
	return k
}

// Panics runs each case and fails unless it panics with a string that
// starts with prefix ("ring: ", "tree: "): constructors reject programmer
// errors loudly and say whose they are.
func Panics(t *testing.T, prefix string, cases map[string]func()) {
	t.Helper()
	for name, f := range cases {
		t.Run(name, func(t *testing.T) {
			defer func() {
				r := recover()
				if r == nil {
					t.Fatal("no panic")
				}
				if msg, ok := r.(string); !ok || !strings.HasPrefix(msg, prefix) {
					t.Fatalf("panic value %#v lacks a clear %q message", r, prefix)
				}
			}()
			f()
		})
	}
}
