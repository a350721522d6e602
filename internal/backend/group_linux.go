package backend

import (
	"errors"
	"os/exec"
	"syscall"

	"golang.org/x/sys/unix"
)

// waitGroup waits for a started command whose process leads its own group,
// and kills what is left of the group once the leader has exited, so a child
// it left behind does not outlive the call. The leader is not reaped before
// the kill (WNOWAIT), so its id cannot name another process's group yet.
func waitGroup(cmd *exec.Cmd) error {
	pid := cmd.Process.Pid
	var info unix.Siginfo
	for {
		err := unix.Waitid(unix.P_PID, pid, &info, unix.WEXITED|unix.WNOWAIT, nil)
		if !errors.Is(err, syscall.EINTR) {
			break
		}
	}
	syscall.Kill(-pid, syscall.SIGKILL)
	return cmd.Wait()
}
