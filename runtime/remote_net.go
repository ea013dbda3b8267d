package runtime

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/ringo-ml/ringo/internal/pki"
	"github.com/ringo-ml/ringo/rendezvous"
)

// ALPN is the TLS application protocol of the runtime's connections
// (collectives use their own).
const ALPN = "ringo-rt/1"

// groupPrefix keeps runtime clusters apart from collective groups that
// share a gossip cluster.
const groupPrefix = "rt:"

// MaxGroupLen is the longest cluster name (Group).
const MaxGroupLen = rendezvous.MaxGroupLen - len(groupPrefix)

// Stream and connection error codes.
const (
	codeCanceled quic.StreamErrorCode      = 1
	codeTooLarge quic.StreamErrorCode      = 2
	codeBad      quic.StreamErrorCode      = 3
	connClosing  quic.ApplicationErrorCode = 0x10 // the process is shutting down
	connLost     quic.ApplicationErrorCode = 0x11 // the driver declared the worker lost
)

// Timing of the runtime's connections.
const (
	handshakeTimeout = 5 * time.Second
	// idleTimeout: a connection silent this long is dead (keep-alives
	// flow every keepAlive). The backstop: gossip and pings detect a
	// crashed worker in about a second.
	idleTimeout = 10 * time.Second
	keepAlive   = 2 * time.Second
	// pingTimeout bounds the data-path check of a gossip failure report.
	pingTimeout = 2 * time.Second
	// clientWait: how long a worker waits for gossip to bring the
	// certificate fingerprint of a connecting driver it does not know yet.
	clientWait = 3 * time.Second
	// requestReadTimeout bounds how long a worker waits for a request's
	// bytes once the stream is open.
	requestReadTimeout = 60 * time.Second
	// maxStreams bounds the calls a driver may have open on one worker.
	maxStreams = 4096
)

func quicConfig() *quic.Config {
	return &quic.Config{
		HandshakeIdleTimeout:  handshakeTimeout,
		MaxIdleTimeout:        idleTimeout,
		KeepAlivePeriod:       keepAlive,
		MaxIncomingStreams:    maxStreams,
		MaxIncomingUniStreams: -1,
	}
}

// identity is a process's ephemeral certificate and its fingerprint.
type identity struct {
	name string
	cert tls.Certificate
	fp   [32]byte
}

func newIdentity(name string) (identity, error) {
	if name == "" {
		var b [6]byte
		if _, err := io.ReadFull(rand.Reader, b[:]); err != nil {
			return identity{}, fmt.Errorf("runtime: node name: %w", err)
		}
		name = "rt-" + hex.EncodeToString(b[:])
	}
	cert, fp, err := pki.Ephemeral(name+".ringo", 0)
	if err != nil {
		return identity{}, fmt.Errorf("runtime: %w", err)
	}
	return identity{name: name, cert: cert, fp: fp}, nil
}

// leafFingerprint is the SHA-256 of the peer's leaf certificate.
func leafFingerprint(cs tls.ConnectionState) ([32]byte, error) {
	if len(cs.PeerCertificates) == 0 {
		return [32]byte{}, errors.New("runtime: the peer sent no certificate")
	}
	return sha256.Sum256(cs.PeerCertificates[0].Raw), nil
}

// clusterKey resolves the cluster key: Key, else KeyFile, else
// RINGO_CLUSTER_KEY; nil (loopback only) when none is set.
func clusterKey(key []byte, keyFile string) ([]byte, error) {
	if key != nil {
		if len(key) != rendezvous.KeySize {
			return nil, fmt.Errorf("runtime: %w: cluster key is %d bytes, want %d", ErrInvalid, len(key), rendezvous.KeySize)
		}
		return key, nil
	}
	if keyFile != "" {
		k, err := rendezvous.LoadKeyFile(keyFile)
		if err != nil {
			return nil, fmt.Errorf("runtime: %w", err)
		}
		return k, nil
	}
	k, err := rendezvous.KeyFromEnv()
	if err != nil {
		return nil, fmt.Errorf("runtime: %w", err)
	}
	return k, nil
}

func checkGroup(group string) error {
	if group == "" {
		return fmt.Errorf("runtime: %w: Group (the cluster's name) is required", ErrInvalid)
	}
	if len(group) > MaxGroupLen {
		return fmt.Errorf("runtime: %w: Group is %d bytes, the limit is %d", ErrInvalid, len(group), MaxGroupLen)
	}
	return nil
}

func checkMaxMessage(n int) (int, error) {
	switch {
	case n == 0:
		return DefaultMaxMessageBytes, nil
	case n < 0 || n > MaxMessageBytesLimit:
		return 0, fmt.Errorf("runtime: %w: MaxMessageBytes %d (want 1..%d, or 0 for %d)",
			ErrInvalid, n, MaxMessageBytesLimit, DefaultMaxMessageBytes)
	}
	return n, nil
}

// noKeyHint says how to make a cluster key.
const noKeyHint = "set " + rendezvous.KeyEnv + " to the output of `head -c 32 /dev/urandom | base64` on every process of the cluster"

// checkAdvertise checks an address others dial.
func checkAdvertise(field, addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("runtime: %w: %s %q: %v", ErrInvalid, field, addr, err)
	}
	if host == "" || len(addr) > rendezvous.MaxAddrLen {
		return fmt.Errorf("runtime: %w: %s %q needs a host and at most %d bytes", ErrInvalid, field, addr, rendezvous.MaxAddrLen)
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		return fmt.Errorf("runtime: %w: %s %q is a wildcard address, which others cannot dial", ErrInvalid, field, addr)
	}
	if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
		return fmt.Errorf("runtime: %w: %s %q: want a port in 1..65535", ErrInvalid, field, addr)
	}
	return nil
}

func discardLogger(l *slog.Logger) *slog.Logger {
	if l == nil {
		return slog.Default()
	}
	return l
}
