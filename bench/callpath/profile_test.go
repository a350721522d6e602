package callpath

import "testing"

// BenchmarkCallOnly runs full calls one after another and nothing else, so a
// -cpuprofile or -memprofile of it holds no baseline's work.
func BenchmarkCallOnly(b *testing.B) {
	acme := pair(b)
	ctx := b.Context()
	c0 := cpuTime(b)
	for b.Loop() {
		if _, err := acme.Call(ctx, "globex", "echo", payload); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64((cpuTime(b)-c0).Microseconds())/float64(b.N), "cpu-µs/call")
}

// BenchmarkCallOnlyParallel is BenchmarkCallOnly with 64 callers (32 per
// core on the 2-core machine the figures in BENCHMARKS.md come from).
func BenchmarkCallOnlyParallel(b *testing.B) {
	acme := pair(b)
	ctx := b.Context()
	c0 := cpuTime(b)
	b.SetParallelism(32)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := acme.Call(ctx, "globex", "echo", payload); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64((cpuTime(b)-c0).Microseconds())/float64(b.N), "cpu-µs/call")
}
