//go:build unix

package h1pool

import "syscall"

// stillOpen reports whether an idle connection is still open and quiet: a peek
// that does not block finds neither the server's close nor stray bytes. The
// connection's deadline must not have passed.
func stillOpen(rc syscall.RawConn) bool {
	if rc == nil {
		return true
	}
	ok := false
	var buf [1]byte
	err := rc.Read(func(fd uintptr) bool {
		_, _, rerr := syscall.Recvfrom(int(fd), buf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		ok = rerr == syscall.EAGAIN || rerr == syscall.EWOULDBLOCK
		return true
	})
	return err == nil && ok
}
