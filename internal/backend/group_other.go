//go:build !linux

package backend

// waitExited cannot wait for a child without reaping it here (the standard
// library has no waitid with WNOWAIT off Linux): procGroup.wait reaps first.
func waitExited(int) bool { return false }
