package collective

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/ringo-ml/ringo/internal/engine"
	"github.com/ringo-ml/ringo/internal/engine/stream"
	"github.com/ringo-ml/ringo/internal/transport"
)

// Transport selects how a communicator made by New or Join moves tensor
// data between its ranks:
//
//   - TransportAuto (the default) uses shared memory when every rank of
//     the group is on this host (found by trying: each rank maps the
//     others' segments). Otherwise every byte is encrypted: each call
//     goes over TLS lanes or over QUIC, whichever the costs measured at
//     creation say is faster for its operation and size (see Calibrate
//     and Explain).
//   - TransportQUIC moves all data over the QUIC links.
//   - TransportShm requires shared memory: New fails when some rank
//     cannot map the others' segments.
//   - TransportTCP moves tensor data over plaintext TCP lanes that each
//     QUIC link authenticates when it is made (a token exchange over the
//     link); control frames stay on QUIC. Not encrypted: for trusted
//     networks only. Never chosen by Auto.
//   - TransportTLS moves tensor data over TLS lanes: TCP connections with
//     TLS 1.3, mutually authenticated and pinned exactly as the QUIC
//     links are (the member's name, its pinned certificate, the group's
//     CA), beside each QUIC link, which keeps the control frames.
//     Encrypted, and several times faster per core than QUIC for bulk
//     data.
type Transport = engine.Transport

// Transports.
const (
	TransportAuto = engine.TransportAuto
	TransportQUIC = engine.TransportQUIC
	TransportShm  = engine.TransportShm
	TransportTCP  = engine.TransportTCP
	TransportTLS  = engine.TransportTLS
)

// ParseTransport reads a transport's name: auto, quic, shm, tcp or tls.
func ParseTransport(s string) (Transport, error) {
	for t := TransportAuto; t <= TransportTLS; t++ {
		if t.String() == s {
			return t, nil
		}
	}
	return 0, fmt.Errorf("%w: unknown transport %q (want auto, quic, shm, tcp or tls)", ErrInvalid, s)
}

// hasLanes reports whether this communicator's links have lanes: every
// link made from now on gets them.
func (c *Communicator) hasLanes() bool { return slices.Contains(c.paths, stream.Lanes) }

// laneSecurity is the lanes a communicator's mesh needs for its setting.
func laneSecurity(t Transport) transport.LaneSecurity {
	switch t {
	case TransportAuto, TransportTLS:
		return transport.LanesTLS
	case TransportTCP:
		return transport.LanesPlain
	}
	return transport.LanesOff
}

// transportOf names what carries a path's bytes on this communicator.
func (c *Communicator) transportOf(p stream.Path) Transport {
	if p == stream.QUIC {
		return TransportQUIC
	}
	if c.transport == TransportTCP {
		return TransportTCP
	}
	return TransportTLS
}

// pathFor maps a call's requested transport onto one of this
// communicator's paths; ok is false when it has none of that kind.
func (c *Communicator) pathFor(t Transport) (stream.Path, bool) {
	for _, p := range c.paths {
		if c.transportOf(p) == t {
			return p, true
		}
	}
	return 0, false
}

// Over runs the call over transport t (TransportTLS, TransportQUIC or
// TransportTCP) instead of the one Auto would pick; the communicator must
// have that data path (a communicator with TransportAuto between hosts
// has both TLS lanes and QUIC). Every rank must make the same choice: the
// frames of ranks that disagree travel on different connections, and the
// call fails at its deadline. For benchmarks and tests; Auto's choice is
// measured on the links.
func Over(t Transport) CallOption { return CallOption{over: t} }

// callOver is the transport the options ask for (TransportAuto: none).
func callOver(opts []CallOption) Transport {
	for _, o := range opts {
		if o.over != TransportAuto {
			return o.over
		}
	}
	return TransportAuto
}

// listenLanes starts this rank's lane listener.
func (c *Communicator) listenLanes() error {
	lm, ok := c.mesh.(stream.LaneMesh)
	if !ok {
		return fmt.Errorf("collective: %w: this communicator's links cannot have lanes", ErrInvalid)
	}
	if err := lm.ListenLanes(c.lanes); err != nil {
		return fmt.Errorf("collective: %w", err)
	}
	if c.transport == TransportTCP {
		c.log.Warn("collective: tensor data moves over plaintext TCP: authenticated at connect, not encrypted; use it only on a trusted network",
			"listen", lm.LaneAddr())
	}
	return nil
}

// openLanes gives every link made so far its lanes and their workers:
// both ends of every link at once (every rank calls it at the same point
// of its set-up, so no rank waits on a peer busy elsewhere). It reports
// whether the lanes are up. With TransportAuto, lanes that cannot be made
// (ErrLanesUnreachable: a firewall or port forward that passes only the
// QUIC port's UDP) are not fatal: the ranks agree whether every link has
// its lanes, and if one does not, every rank drops them and moves data
// over QUIC alone, saying why in a warning.
func (c *Communicator) openLanes(ctx context.Context) (bool, error) {
	var hard, unreachable error
	for _, err := range c.links.OpenLanes(ctx) {
		switch {
		case err == nil:
		case c.transport == TransportAuto && errors.Is(err, transport.ErrLanesUnreachable):
			unreachable = err
		default:
			hard = errors.Join(hard, fmt.Errorf("collective: %w", err))
		}
	}
	if hard != nil {
		return false, hard
	}
	if c.transport != TransportAuto {
		return true, nil
	}
	up := []float64{1}
	if unreachable != nil {
		up[0] = 0
	}
	if err := c.AllReduce(ctx, up, Min, Using(Ring)); err != nil {
		return false, fmt.Errorf("collective: agreeing whether the lanes are up: %w", err)
	}
	if up[0] == 1 {
		c.links.SetLanes(true)
		return true, nil
	}
	why := "another rank could not make its lanes"
	if unreachable != nil {
		why = unreachable.Error()
	}
	c.log.Warn("collective: TLS lanes could not be made between some ranks; tensors move over QUIC alone (open the lane port, TCP, beside the QUIC port; or set Transport to TransportQUIC to skip trying)",
		"err", why)
	c.links.DropLanes()
	return false, nil
}

// LaneAddr is the address of this rank's lane listener (TCP; open it in
// firewalls beside the QUIC port) when its data moves over TLS or TCP
// lanes, and "" otherwise.
func (c *Communicator) LaneAddr() string {
	if lm, ok := c.mesh.(stream.LaneMesh); ok && c.hasLanes() {
		return lm.LaneAddr()
	}
	return ""
}

// DataPath names how this communicator moves tensor data: "shared
// memory", "in-process pipes", or the transports between hosts: "TLS
// lanes", "QUIC", "TLS lanes or QUIC per call", "TCP", each with the
// number of connections a link stripes over when it is more than one.
func (c *Communicator) DataPath() string {
	switch {
	case c.inProc:
		return "in-process pipes"
	case c.shm != nil:
		return "shared memory"
	}
	k, lanes := c.links.Counts()
	name := func(p stream.Path) string {
		switch {
		case p == stream.QUIC && k > 1:
			return fmt.Sprintf("QUIC (%d channels)", k)
		case p == stream.QUIC:
			return "QUIC"
		case c.transport == TransportTCP && lanes > 1:
			return fmt.Sprintf("TCP (%d lanes)", lanes)
		case c.transport == TransportTCP:
			return "TCP"
		case lanes > 1:
			return fmt.Sprintf("TLS lanes (%d per link)", lanes)
		}
		return "TLS lanes"
	}
	if len(c.paths) == 2 {
		return name(c.paths[0]) + " or " + name(c.paths[1]) + " per call"
	}
	if len(c.paths) == 1 {
		return name(c.paths[0])
	}
	return "none"
}
