//go:build !unix

package bench_audit

import "time"

func cpuTime() time.Duration { return 0 }
