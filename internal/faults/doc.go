// Package faults checks ringo's promise — every call returns the exact
// result on every rank, or an error on every surviving rank within its
// deadline — under the failures real jobs meet: ranks killed (SIGKILL),
// terminated (SIGTERM), exiting cleanly, or frozen (SIGSTOP) at chosen
// points of an operation; a rank cut off from the network; a slow rank
// that must not be aborted; lossy, delayed links.
//
// A Cluster runs each rank as a process of the current executable (a test
// binary re-executes itself: its TestMain calls RankMain when IsRank
// reports that it was started as a rank). The parent builds every epoch's
// view from the addresses and certificate fingerprints the ranks announce,
// optionally routing every QUIC connection through its own netem relay so
// that one rank can be partitioned, or every link made lossy and slow. The
// ranks run a workload that every process derives from the same seed
// (MakeCall), check each result bit for bit against a reference computed
// from the inputs (Run), and report what they saw as JSON lines. A fault is
// injected by the victim rank itself at the planned point of the planned
// call — it watches its own Communicator.Status to find, say, the
// allgather half of an AllReduce — so the point is exact, not a guess at
// timing.
//
// After an error a rank checks that its communicator is poisoned, closes
// it, and reports leaked goroutines (goleak); the parent checks that every
// process ended. Ranks survive from epoch to epoch: a round's survivors
// and a replacement for the victim form the next epoch with fresh
// communicators, which is also how the soak test re-forms the group.
//
// The short suite runs in CI (go test ./internal/faults). The soak test is
// opt-in: see docs/failure-semantics.md for the command and its figures.
package faults
