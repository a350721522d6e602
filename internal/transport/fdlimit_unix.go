//go:build unix

package transport

import "syscall"

// openFileLimit returns the soft RLIMIT_NOFILE, or 0 if it is unknown.
func openFileLimit() int {
	var r syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r); err != nil {
		return 0
	}
	if r.Cur > 1<<20 { // "unlimited" or absurdly high: the defaults are capped anyway
		return 1 << 20
	}
	return int(r.Cur)
}
