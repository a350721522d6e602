// Package bench_consensus measures treaty's consensus engines over real
// transports on loopback, and reports latency as a ratio to the transport's
// round trip measured in the same run:
//
//	go test ./bench/consensus -run '^$' -bench BFT -benchtime 3000x
//
// The machine is shared, so decisions/s is the share of CPU the run got;
// cpu-µs/decision (all four members, one process) is the cost.
//
// bft-4 runs four members of one BFT group (f = 1), each on its own
// transport and SQLite store in a temporary directory; proposals go through
// every member in turn (three of four are followers and forward to the
// leader). "delay=25ms" wraps every member's Network in a user-space delay of
// 25ms per direction (RTT 50ms).
package bench_consensus

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/treaty-dev/treaty/internal/consensus"
	"github.com/treaty-dev/treaty/internal/consensus/bftengine"
	"github.com/treaty-dev/treaty/internal/consensus/bftengine/bfttest"
	"github.com/treaty-dev/treaty/internal/consensus/fsm"
)

func BenchmarkBFT4(b *testing.B) {
	for _, delay := range []time.Duration{0, 25 * time.Millisecond} {
		for _, p := range []int{1, 64} {
			b.Run(fmt.Sprintf("delay=%v/proposers=%d", delay, p), func(b *testing.B) { bftRun(b, delay, p) })
		}
	}
}

func bftRun(b *testing.B, delay time.Duration, proposers int) {
	c := bfttest.NewCluster(b, "bench", 4)
	var wrap func(consensus.Network) consensus.Network
	if delay > 0 {
		wrap = func(n consensus.Network) consensus.Network { return bfttest.Delay(n, delay) }
	}
	rtts := c.RTT(b, wrap, 40)
	rtt := rtts[len(rtts)/2]

	dir := b.TempDir()
	log := slog.New(slog.DiscardHandler)
	if path := os.Getenv("BFT_BENCH_LOG"); path != "" { // engine events at Info, for a run that misbehaves
		f, err := os.Create(path)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { f.Close() })
		log = slog.New(slog.NewTextHandler(f, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	engines := make([]*bftengine.Engine, 4)
	for i := range engines {
		n := c.Network(b, i)
		if wrap != nil {
			n = wrap(n)
		}
		e, err := bftengine.New(context.Background(), consensus.EngineConfig{
			Group: c.Group, Self: c.Keys[i], Dir: filepath.Join(dir, fmt.Sprint(i)), Net: n,
			Log: log.With("m", i+1),
		})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { e.Close() })
		engines[i] = e
	}
	propose := func(i int) (time.Duration, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		t0 := time.Now()
		a, err := engines[i%4].ProposeOp(ctx, fsm.Put(fmt.Sprintf("k%d", i%1024), []byte("value")))
		if err == nil {
			err = a.Result.Err()
		}
		return time.Since(t0), err
	}
	for i := range 8 { // warm up: connections, first view
		if _, err := propose(i); err != nil {
			b.Fatal(err)
		}
	}

	lat := make([]time.Duration, b.N)
	var next atomic.Int64
	var wg sync.WaitGroup
	b.ResetTimer()
	start, cpu0 := time.Now(), bftCPUTime()
	for range proposers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= b.N {
					return
				}
				d, err := propose(i)
				if err != nil {
					b.Errorf("decision %d via member %d: %v", i, i%4+1, err)
					return
				}
				lat[i] = d
			}
		}()
	}
	wg.Wait()
	elapsed, cpu := time.Since(start), bftCPUTime()-cpu0
	b.StopTimer()
	slices.Sort(lat)
	p50, p99 := lat[len(lat)/2], lat[len(lat)*99/100]
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "decisions/s")
	b.ReportMetric(float64(p50.Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(p99.Microseconds())/1000, "p99-ms")
	b.ReportMetric(float64(rtt.Microseconds())/1000, "rtt-ms")
	b.ReportMetric(float64(p50)/float64(rtt), "p50/rtt")
	// CPU of all four members (one process) per decision: what the machine's
	// load cannot change. Two idle cores would sustain 2s / this.
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/decision")
	b.ReportMetric(0, "ns/op")
}
