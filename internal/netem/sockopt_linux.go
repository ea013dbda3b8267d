package netem

import (
	"net"
	"syscall"
)

// forceBuffers sets the socket buffers past net.core.rmem_max and wmem_max
// where the process may (CAP_NET_ADMIN, as root in CI); elsewhere it does
// nothing and the kernel's limits stand.
func forceBuffers(c *net.UDPConn, size int) {
	rc, err := c.SyscallConn()
	if err != nil {
		return
	}
	_ = rc.Control(func(fd uintptr) {
		_ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUFFORCE, size)
		_ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_SNDBUFFORCE, size)
	})
}
