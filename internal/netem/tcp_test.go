package netem

import (
	"bytes"
	"io"
	"net"
	"sync"
	"testing"
)

// TestTCPRelay: bytes cross both ways, the tap sees them in order, a
// mutation reaches the other side, and the end of one side reaches the
// other; Close ends everything (goleak checks).
func TestTCPRelay(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() { // an echo server
		c, err := ln.Accept()
		if err != nil {
			return
		}
		_, _ = io.Copy(c, c)
		c.(*net.TCPConn).CloseWrite()
		c.Close()
	}()
	var mu sync.Mutex
	var up, down bytes.Buffer
	r, err := NewTCPRelay("127.0.0.1:0", func() string { return ln.Addr().String() }, TCPConfig{
		Tap: func(n int, toTarget bool, b []byte) {
			mu.Lock()
			defer mu.Unlock()
			if toTarget {
				up.Write(b)
			} else {
				down.Write(b)
			}
		},
		Mutate: func(n int, toTarget bool, b []byte) {
			if toTarget && b[0] == 'x' {
				b[0] = 'y'
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	c, err := net.Dial("tcp", r.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 5)
	if _, err := io.ReadFull(c, got); err != nil || string(got) != "hello" {
		t.Fatalf("echo: %q %v", got, err)
	}
	if _, err := c.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	c.(*net.TCPConn).CloseWrite()
	rest, err := io.ReadAll(c)
	if err != nil || string(rest) != "y" {
		t.Fatalf("after the mutation and the end: %q %v", rest, err)
	}
	mu.Lock()
	defer mu.Unlock()
	if up.String() != "helloy" || down.String() != "helloy" {
		t.Fatalf("tapped %q up, %q down", up.String(), down.String())
	}
}
