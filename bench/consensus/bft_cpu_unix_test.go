//go:build unix

package bench_consensus

import (
	"syscall"
	"time"
)

// bftCPUTime is the process's user+system CPU time so far.
func bftCPUTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
