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
