//go:build unix

package audit

import (
	"context"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// BenchmarkVerifyFloor compares Verify with the floor of reading the same
// rows: one rowReader stepping through them and touching every column, no
// checks and no hashing. bench/audit compares it with a plain database/sql
// scan, what any other reader pays.
//
//	go test ./internal/audit -run '^$' -bench VerifyFloor -benchtime 3x
func BenchmarkVerifyFloor(b *testing.B) {
	const n = 50000
	key := testKey(b, 1)
	l, path := openTest(b, key, func(c *Config) { c.Now = nil })
	var next atomic.Int64
	var wg sync.WaitGroup
	for range 64 {
		wg.Go(func() {
			for i := int(next.Add(1)) - 1; i < n; i = int(next.Add(1)) - 1 {
				if _, err := l.Append(context.Background(), sampleEntry(i)); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if err := l.Close(); err != nil {
		b.Fatal(err)
	}
	var verify, floor, verifyCPU, floorCPU time.Duration
	for b.Loop() {
		start, cpu := time.Now(), cpuTime()
		if _, err := Verify(context.Background(), path, key.Public()); err != nil {
			b.Fatal(err)
		}
		verify += time.Since(start)
		verifyCPU += cpuTime() - cpu
		b.StopTimer()
		start, cpu = time.Now(), cpuTime()
		r, err := openRowReader(path, true)
		if err != nil {
			b.Fatal(err)
		}
		rows, bytes := 0, 0
		err = r.scan(context.Background(), 0, n, func(_ int64, leaf, content, hashes, _, _, _ []byte) bool {
			rows++
			bytes += len(leaf) + len(content) + len(hashes)
			return true
		})
		r.close()
		if err != nil || rows != n {
			b.Fatalf("floor scan: %d rows, %v", rows, err)
		}
		floor += time.Since(start)
		floorCPU += cpuTime() - cpu
		b.StartTimer()
	}
	per := func(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e3 / float64(n*b.N) }
	b.ReportMetric(per(verifyCPU), "cpu-us/entry")
	b.ReportMetric(per(floorCPU), "floor-cpu-us/row")
	b.ReportMetric(verifyCPU.Seconds()/floorCPU.Seconds(), "cpu-vs-floor")
	b.ReportMetric(verify.Seconds()/floor.Seconds(), "time-vs-floor")
}

// cpuTime is the process's user and system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
