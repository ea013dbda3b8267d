package turns

import "testing"

// TestIndex: every round runs every call once, and over the rounds each
// call follows every other one equally often and never itself.
func TestIndex(t *testing.T) {
	for m := 1; m <= 3; m++ {
		follows := make(map[[2]int]int)
		prev := -1
		for r := range 12 {
			seen := make([]bool, m)
			for k := range m {
				i := Index(r, k, m)
				if i < 0 || i >= m || seen[i] {
					t.Fatalf("m=%d round %d: the order is not a permutation", m, r)
				}
				seen[i] = true
				if prev >= 0 {
					follows[[2]int{prev, i}]++
				}
				prev = i
			}
		}
		for a := range m {
			for b := range m {
				got := follows[[2]int{a, b}]
				if a == b && m > 1 && got != 0 {
					t.Errorf("m=%d: call %d followed itself %d times", m, a, got)
				}
				if a != b && (got < 11/(m-1)-1 || got > 11/(m-1)+1) {
					t.Errorf("m=%d: call %d followed call %d %d times: %v", m, b, a, got, follows)
				}
			}
		}
	}
}

// TestNested: every round is a permutation of all the calls, the groups
// stay together, and within a group the members take turns as Index says.
func TestNested(t *testing.T) {
	for outer := 1; outer <= 3; outer++ {
		for inner := 1; inner <= 3; inner++ {
			n := outer * inner
			for r := range 8 {
				seen := make([]bool, n)
				for k := range n {
					i := Nested(r, k, outer, inner)
					if i < 0 || i >= n || seen[i] {
						t.Fatalf("%dx%d round %d: not a permutation", outer, inner, r)
					}
					seen[i] = true
					if g := i / inner; g != Index(r, k/inner, outer) {
						t.Fatalf("%dx%d round %d: call %d of group %d went in the turn of group %d", outer, inner, r, i, g, Index(r, k/inner, outer))
					}
					if j := i % inner; j != Index(r, k%inner, inner) {
						t.Fatalf("%dx%d round %d: member %d went %d-th in its group", outer, inner, r, j, k%inner)
					}
				}
			}
		}
	}
}
