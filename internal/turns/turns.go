// Package turns orders calls that take turns, so that each follows every
// other one equally often.
//
// Timing several algorithms in the same run, one call of each per round,
// spreads the machine's changing load over all of them; but what ran just
// before a call matters too (a QUIC connection that the previous call left
// idle restarts slowly). Rotating the order, 0 1 2, 1 2 0, 2 0 1, keeps
// its cycle: 2 follows 1 in two rounds of three. The benchmark's -algo
// compare measured auto, which always came after the tree, 1.1-1.5x the
// ring row while both ran the ring, until its turns were balanced.
package turns

// Index is which of m calls goes k-th (0 ≤ k < m) in round r. Every round
// runs every call once. Two calls alternate by themselves; three go 0 1 2,
// then 0 2 1, whose concatenation takes each ordered pair of different
// calls once every two rounds and never repeats a call. Other m keep the
// order 0 … m-1.
func Index(r, k, m int) int {
	if m == 3 && r%2 == 1 {
		return (3 - k) % 3
	}
	return k
}

// Nested is which of outer·inner calls goes k-th in round r, when the
// calls come in outer groups of inner (call g·inner+j is member j of group
// g): the groups take turns as Index orders outer calls, and within each
// group its members as Index orders inner calls. Calibration times three
// schedules on each of two data paths this way: a schedule follows each
// other schedule of its path equally often, and the paths alternate.
func Nested(r, k, outer, inner int) int {
	return Index(r, k/inner, outer)*inner + Index(r, k%inner, inner)
}
