package runtime

import (
	"context"
	"crypto/tls"
	"net"

	"github.com/quic-go/quic-go"
)

// DialUnadvertised dials a worker with a fresh certificate that no member
// of any cluster advertises, and returns the handshake's error.
func DialUnadvertised(ctx context.Context, addr string) error {
	id, err := newIdentity("")
	if err != nil {
		return err
	}
	ua, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return err
	}
	conn, err := quic.DialAddr(ctx, ua.String(), &tls.Config{
		Certificates:       []tls.Certificate{id.cert},
		MinVersion:         tls.VersionTLS13,
		NextProtos:         []string{ALPN},
		InsecureSkipVerify: true, // this test client checks nothing
	}, quicConfig())
	if err != nil {
		return err
	}
	// TLS 1.3: the server's verdict on the client certificate may arrive
	// after the client's handshake completed; a stream round trip waits
	// for it.
	s, err := conn.OpenStreamSync(ctx)
	if err == nil {
		_, err = s.Write((&request{op: opPing}).encode(nil))
		if err == nil {
			_ = s.Close()
			_, err = readFrame(s, 1<<20)
		}
	}
	_ = conn.CloseWithError(0, "")
	return err
}
