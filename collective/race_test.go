//go:build race

package collective_test

// raceEnabled trims the slowest large-tensor cases under the race detector,
// which makes element loops and quic-go 10-50x slower; .ci/run runs them in
// full without it.
const raceEnabled = true
