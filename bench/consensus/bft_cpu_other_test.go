//go:build !unix

package bench_consensus

import "time"

func bftCPUTime() time.Duration { return 0 }
