package cost

import (
	"fmt"
	"time"

	"github.com/ringo-ml/ringo/internal/engine"
)

// Costs (collective.Costs) are the link and kernel parameters of the
// alpha-beta-gamma model that Auto chooses algorithms with, measured on
// one data path of a communicator's links (the slowest rank's figure, so
// that every rank holds the same values and makes the same choice). A
// communicator that chooses between TLS lanes and QUIC per call holds one
// Costs for each.
type Costs struct {
	// Transport is the data path the figures were measured on.
	Transport engine.Transport
	Alpha     time.Duration // latency of one dependent step (a ring Barrier's step)
	Beta      float64       // seconds per byte moved over a link
	Gamma     float64       // seconds per byte reduced
	// AllReduce holds, per AllReduce schedule (ring, recursive doubling,
	// double binary tree), the line T(N) = Fixed + PerByte·N through two
	// timed runs (4 KiB and 256 KiB): each schedule's real costs (how its
	// steps overlap, how its traffic shares links and cores) differ more
	// than a textbook formula says. AllReduceLarge continues each line
	// from 256 KiB through a third run at 1 MiB, where pipelining and
	// per-byte costs have taken over; it is used above 256 KiB. Beyond 1
	// MiB, the largest size timed, a tree's line grows at least as fast as
	// the ring's measured per-byte cost times the formulas' ratio of the
	// two (a tree moves and reduces more bytes per rank than the ring:
	// log2(n)·N for recursive doubling against 2(n-1)/n·N), so that the
	// noise of two timed points does not carry a tree to 64 MiB. Zero
	// until calibrated: the formulas stand in.
	AllReduce, AllReduceLarge [3]Line
}

func (k Costs) String() string {
	return fmt.Sprintf("α=%v β=%.3g ns/B γ=%.3g ns/B", k.Alpha.Round(100*time.Nanosecond), k.Beta*1e9, k.Gamma*1e9)
}

// Model is k as this package's estimates see it.
func (k Costs) Model() Model {
	return Model{Alpha: k.Alpha, Beta: k.Beta, Gamma: k.Gamma, AllReduce: k.AllReduce, AllReduceLarge: k.AllReduceLarge}
}

// Choice is the algorithm and data path Auto picked for a call, with the
// reason (collective.Choice).
type Choice struct {
	Algorithm engine.Algorithm // Ring or Tree: the family of Schedule
	Schedule  engine.Schedule
	// Transport is what carries the call's bytes: TransportTLS,
	// TransportQUIC, TransportTCP or TransportShm (TransportAuto for
	// in-process pipes).
	Transport engine.Transport
	Estimate  time.Duration // the model's time for it
	Reason    string        // the estimates compared
}
