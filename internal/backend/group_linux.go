package backend

import (
	"errors"
	"syscall"

	"golang.org/x/sys/unix"
)

// waitExited waits until the process pid, a child, has exited, without
// reaping it (WNOWAIT): its pid stays allocated. It reports whether it could.
func waitExited(pid int) bool {
	var info unix.Siginfo
	for {
		err := unix.Waitid(unix.P_PID, pid, &info, unix.WEXITED|unix.WNOWAIT, nil)
		if !errors.Is(err, syscall.EINTR) {
			return err == nil
		}
	}
}
