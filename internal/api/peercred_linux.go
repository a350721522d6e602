package api

import (
	"net"
	"syscall"
)

// peerProcess is the id of the process at the other end of a unix socket
// connection (SO_PEERCRED: the process that connected), or 0.
func peerProcess(c net.Conn) int32 {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return 0
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return 0
	}
	var pid int32
	rc.Control(func(fd uintptr) {
		if cred, err := syscall.GetsockoptUcred(int(fd), syscall.SOL_SOCKET, syscall.SO_PEERCRED); err == nil {
			pid = cred.Pid
		}
	})
	return pid
}
