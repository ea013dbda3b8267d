//go:build race

package tree

// raceEnabled trims the simulated sample under the race detector, which
// slows the single-goroutine simulator about tenfold (see simPlan).
const raceEnabled = true
