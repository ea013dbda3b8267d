//go:build race

package ring

// raceEnabled trims the exhaustive sweep under the race detector, which
// slows the single-goroutine simulator about tenfold (see simPlan).
const raceEnabled = true
