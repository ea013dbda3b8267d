package transport

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/ringo-ml/ringo/internal/pki"
)

// The transport's ceiling: BenchmarkQUICStreamPair measures bare quic-go
// between two processes in the pattern of a two-rank SendRecv — each
// process sends size bytes on its own stream and receives as many from
// the other, per iteration, at once — with the same TLS 1.3 and flow
// control windows as the mesh but no ringo framing, no executor. Compare
// its time per iteration with
//
//	allreduce-bench -np 2 -op sendrecv -transport quic -b SIZE -e SIZE
//
// run in the same sitting (docs/performance.md).
//
//	go test -run '^$' -bench QUICStreamPair -benchtime 20x ./internal/transport

const streamPeerEnv = "RINGO_STREAM_PEER"

var streamSizes = []int{1 << 20, 16 << 20}

func BenchmarkQUICStreamPair(b *testing.B) {
	for _, size := range streamSizes {
		b.Run(fmt.Sprintf("%dMiB", size>>20), func(b *testing.B) {
			cmd := exec.Command(os.Args[0], "-test.run=^$")
			cmd.Env = append(os.Environ(), streamPeerEnv+"=1")
			cmd.Stderr = os.Stderr
			out, err := cmd.StdoutPipe()
			if err != nil {
				b.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				b.Fatal(err)
			}
			defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
			line, err := bufio.NewReader(out).ReadString('\n')
			if err != nil {
				b.Fatal(err)
			}
			addr := strings.TrimSpace(line)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			conn, err := quic.DialAddr(ctx, addr, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{ALPN}}, streamQUICConfig())
			if err != nil {
				b.Fatal(err)
			}
			defer conn.CloseWithError(0, "")
			send, err := conn.OpenStreamSync(ctx)
			if err != nil {
				b.Fatal(err)
			}
			var hdr [16]byte
			binary.LittleEndian.PutUint64(hdr[:], uint64(b.N+1))
			binary.LittleEndian.PutUint64(hdr[8:], uint64(size))
			if _, err := send.Write(hdr[:]); err != nil {
				b.Fatal(err)
			}
			recv, err := conn.AcceptStream(ctx)
			if err != nil {
				b.Fatal(err)
			}
			buf, in := make([]byte, size), make([]byte, size)
			iter := func() error {
				errc := make(chan error, 1)
				go func() { _, err := send.Write(buf); errc <- err }()
				if _, err := io.ReadFull(recv, in); err != nil {
					return err
				}
				return <-errc
			}
			if err := iter(); err != nil { // warm up
				b.Fatal(err)
			}
			b.SetBytes(int64(size))
			b.ResetTimer()
			for range b.N {
				if err := iter(); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			_ = send.Close()
		})
	}
}

func streamQUICConfig() *quic.Config {
	// The mesh's flow-control windows (quic.go).
	return &quic.Config{
		InitialStreamReceiveWindow:     2 << 20,
		MaxStreamReceiveWindow:         16 << 20,
		InitialConnectionReceiveWindow: 3 << 20,
		MaxConnectionReceiveWindow:     24 << 20,
		MaxIdleTimeout:                 30 * time.Second,
	}
}

// streamPeer is the benchmark's second process: it accepts one
// connection, reads the iteration count and size, then sends and
// receives as the parent does.
func streamPeer() int {
	fail := func(err error) int { fmt.Fprintln(os.Stderr, "stream peer:", err); return 1 }
	cert, _, err := pki.Ephemeral("peer.test", time.Hour)
	if err != nil {
		return fail(err)
	}
	udp, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return fail(err)
	}
	tr := &quic.Transport{Conn: udp}
	ln, err := tr.Listen(&tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{ALPN}}, streamQUICConfig())
	if err != nil {
		return fail(err)
	}
	fmt.Println(udp.LocalAddr().String())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	conn, err := ln.Accept(ctx)
	if err != nil {
		return fail(err)
	}
	recv, err := conn.AcceptStream(ctx)
	if err != nil {
		return fail(err)
	}
	var hdr [16]byte
	if _, err := io.ReadFull(recv, hdr[:]); err != nil {
		return fail(err)
	}
	n, size := binary.LittleEndian.Uint64(hdr[:]), binary.LittleEndian.Uint64(hdr[8:])
	if size > 1<<30 {
		return fail(fmt.Errorf("size %d", size))
	}
	send, err := conn.OpenStreamSync(ctx)
	if err != nil {
		return fail(err)
	}
	buf, in := make([]byte, size), make([]byte, size)
	for range n {
		errc := make(chan error, 1)
		go func() { _, err := send.Write(buf); errc <- err }()
		if _, err := io.ReadFull(recv, in); err != nil {
			return fail(err)
		}
		if err := <-errc; err != nil {
			return fail(err)
		}
	}
	// Stay until the parent has read everything and hangs up.
	_, _ = io.Copy(io.Discard, recv)
	return 0
}
