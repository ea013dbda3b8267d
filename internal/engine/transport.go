package engine

import "fmt"

// Transport selects how a communicator moves tensor data between its
// ranks (collective.Transport; the constants are documented there too).
type Transport uint8

const (
	// TransportAuto uses shared memory when every rank of the group is on
	// this host (found by trying: each rank maps the others' segments).
	// Otherwise every byte is encrypted: each call goes over TLS lanes or
	// over QUIC, whichever the costs measured at creation say is faster
	// for its operation and size (see Calibrate and Explain). The
	// default.
	TransportAuto Transport = iota
	// TransportQUIC moves all data over the QUIC links.
	TransportQUIC
	// TransportShm requires shared memory: New fails when some rank
	// cannot map the others' segments.
	TransportShm
	// TransportTCP moves tensor data over plaintext TCP lanes that each
	// QUIC link authenticates when it is made (a token exchange over the
	// link); control frames stay on QUIC. Not encrypted: for trusted
	// networks only. Never chosen by Auto.
	TransportTCP
	// TransportTLS moves tensor data over TLS lanes: TCP connections with
	// TLS 1.3, mutually authenticated and pinned exactly as the QUIC links
	// are (the member's name, its pinned certificate, the group's CA),
	// beside each QUIC link, which keeps the control frames. Encrypted,
	// and several times faster per core than QUIC for bulk data.
	TransportTLS
)

func (t Transport) String() string {
	switch t {
	case TransportAuto:
		return "auto"
	case TransportQUIC:
		return "quic"
	case TransportShm:
		return "shm"
	case TransportTCP:
		return "tcp"
	case TransportTLS:
		return "tls"
	}
	return fmt.Sprintf("Transport(%d)", uint8(t))
}

// LanesOnly reports whether every byte of data moves over lanes (the
// QUIC links carry control frames alone).
func (t Transport) LanesOnly() bool { return t == TransportTLS || t == TransportTCP }
