//go:build !linux

package netem

import "net"

// forceBuffers does nothing here: SetReadBuffer and SetWriteBuffer did what
// the system allows.
func forceBuffers(*net.UDPConn, int) {}
