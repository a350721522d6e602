package realproc

import (
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/treaty-dev/treaty/client"
)

// BenchmarkSteady calls treaty only, capability REALPROC_CAP ("echo", the
// http backend, by default; "echow" the exec worker), from REALPROC_CALLERS
// callers (default 64) for REALPROC_DURATION (default 6s): a longer window
// than BenchmarkRealProcess's for comparing two builds' CPU per call. It
// reports the nodes' CPU per call, each and together, and this process's
// (the callers' client and the echo backend); REALPROC_PPROF=DIR profiles
// the nodes' first 3 s, as in BenchmarkRealProcess:
//
//	go test ./bench/realproc -run '^$' -bench Steady -benchtime 1x
func BenchmarkSteady(b *testing.B) {
	callers, dur := 64, 6*time.Second
	if v := os.Getenv("REALPROC_CALLERS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1024 {
			b.Fatalf("REALPROC_CALLERS=%q: want 1 to 1024", v)
		}
		callers = n
	}
	if v := os.Getenv("REALPROC_DURATION"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 || d > 2*time.Minute {
			b.Fatalf("REALPROC_DURATION=%q: want a duration up to 2m", v)
		}
		dur = d
	}
	capName := "echo"
	if v := os.Getenv("REALPROC_CAP"); v != "" {
		if v != "echo" && v != "echow" {
			b.Fatalf("REALPROC_CAP=%q: want echo or echow", v)
		}
		capName = v
	}
	acme, globex := treatyPair(b)
	ctx := b.Context()
	clients := make([]*client.Client, callers)
	for i := range clients {
		clients[i] = client.New(acme.Home)
		if _, err := clients[i].Call(ctx, "globex", capName, payload); err != nil {
			b.Fatalf("warm-up call: %v", err)
		}
	}
	for b.Loop() {
		stopProfiles := profileNodes(b, callers, acme, globex) // with REALPROC_PPROF
		a0, g0, s0 := cpuOf(b, acme.PID()), cpuOf(b, globex.PID()), cpuOf(b, os.Getpid())
		start := time.Now()
		var mu sync.Mutex
		calls, failed := 0, 0
		var wg sync.WaitGroup
		for _, cl := range clients {
			wg.Go(func() {
				ok, bad := 0, 0
				for time.Since(start) < dur && ctx.Err() == nil {
					if _, err := cl.Call(ctx, "globex", capName, payload); err != nil {
						bad++
						continue
					}
					ok++
				}
				mu.Lock()
				calls, failed = calls+ok, failed+bad
				mu.Unlock()
			})
		}
		wg.Wait()
		el := time.Since(start)
		a1, g1, s1 := cpuOf(b, acme.PID()), cpuOf(b, globex.PID()), cpuOf(b, os.Getpid())
		stopProfiles()
		if calls == 0 || failed > 0 {
			b.Fatalf("%d calls, %d failed", calls, failed)
		}
		per := func(d time.Duration) float64 { return float64(d.Microseconds()) / float64(calls) }
		b.ReportMetric(float64(calls)/el.Seconds(), "calls/s")
		b.ReportMetric(per(a1-a0), "caller-node-cpu-µs/call")
		b.ReportMetric(per(g1-g0), "callee-node-cpu-µs/call")
		b.ReportMetric(per(a1-a0+g1-g0), "nodes-cpu-µs/call")
		b.ReportMetric(per(s1-s0), "callers-and-backend-cpu-µs/call")
	}
}
