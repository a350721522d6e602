//go:build !linux

package backend

import (
	"os/exec"
	"syscall"
)

// waitGroup waits for a started command whose process leads its own group,
// then kills what is left of the group, so a child it left behind does not
// outlive the call. (Without waitid's WNOWAIT the leader is reaped first; its
// id is reused only after the pid space wraps.)
func waitGroup(cmd *exec.Cmd) error {
	err := cmd.Wait()
	syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	return err
}
