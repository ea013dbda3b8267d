//go:build race

// Package race says whether the race detector is on, so that tests can
// trim their slowest cases under it (it makes element loops and quic-go
// 10-50x slower); .ci/run runs them in full without it.
package race

// Enabled is true in a -race build.
const Enabled = true
