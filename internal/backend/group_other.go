//go:build !linux

package backend

// waitExited cannot wait for a child without reaping it here (the standard
// library has no waitid with WNOWAIT off Linux): procGroup.wait reaps first,
// then kills the group. exec.Cmd's Cancel (procGroup.kill) can also run just
// after cmd.Wait's reap, before Wait collects the cancellation: there too
// the group's id is reused only after the pid space wraps.
func waitExited(int) bool { return false }
