// Package bench_consensus measures the consensus engines on loopback against
// the transport's round trip measured in the same run:
//
//	go test ./bench/consensus -run '^$' -bench Raft -benchtime 2000x
//
// Each member is a real transport (pinned-key mutual TLS) on 127.0.0.1:0 with
// its durable store in a temp directory; proposers submit signed requests at
// the leader and each commit is counted when its entry is applied there.
package bench_consensus

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/treaty-dev/treaty/internal/consensus"
	"github.com/treaty-dev/treaty/internal/consensus/fsm"
	"github.com/treaty-dev/treaty/internal/consensus/raftengine"
	"github.com/treaty-dev/treaty/internal/consensus/raftengine/rafttest"
	"github.com/treaty-dev/treaty/internal/identity"
)

// BenchmarkRaft3: commits/s and p50/p99 commit latency of a 3-member Raft
// group, with 1 and 64 concurrent proposers, on bare loopback and with a
// user-space delay of 25 ms each way between members. rtt-p50 is the
// transport's round trip in the same setting; p50/rtt is the ratio.
func BenchmarkRaft3(b *testing.B) {
	for _, delay := range []time.Duration{0, 25 * time.Millisecond} {
		for _, procs := range []int{1, 64} {
			b.Run(fmt.Sprintf("delay=%v/proposers=%d", delay, procs), func(b *testing.B) {
				raftBench(b, 3, procs, delay)
			})
		}
	}
}

func raftBench(b *testing.B, n, procs int, delay time.Duration) {
	c := rafttest.New(b, n)
	c.Faults.SetDelay(delay)
	g := c.Group("bench", fsm.ModeRaft)
	engines := make([]*raftengine.Engine, n)
	for i := range n {
		e, err := raftengine.New(context.Background(), consensus.EngineConfig{
			Group: g, Self: c.Keys[i], Dir: filepath.Join(b.TempDir(), fmt.Sprint(i)),
			Net: c.Network(i, g, nil), Log: c.Log,
		})
		if err != nil {
			b.Fatal(err)
		}
		engines[i] = e
		b.Cleanup(func() { _ = e.Close() })
	}
	lead := raftWaitLeader(b, c, engines)
	rtt := c.Echo(200)
	fsync := raftFsync(b, 200)
	verify := raftVerify(b, c.Keys[0], 200)

	// Requests are signed before the clock starts; each proposal takes the
	// next one under the engine's submission lock, so sequence numbers reach
	// the log in order.
	reqs := make([][]byte, b.N+1)
	for i := range reqs {
		q, err := fsm.SignRequest(c.Keys[lead], g.ID(), uint64(i+1), fsm.Put(fmt.Sprintf("k%d", i%1024), []byte("value-of-about-32-bytes........")))
		if err != nil {
			b.Fatal(err)
		}
		reqs[i] = q.Encode()
	}
	var next atomic.Int64
	take := func() ([]byte, error) { return reqs[next.Add(1)-1], nil }
	e := engines[lead]
	ctx := context.Background()
	if _, err := e.ProposeFunc(ctx, take); err != nil { // warm up
		b.Fatal(err)
	}

	lat := make([]time.Duration, b.N)
	var todo atomic.Int64
	todo.Store(int64(b.N))
	var failed atomic.Int64
	var wg sync.WaitGroup
	b.ResetTimer()
	cpu0 := raftCPU()
	start := time.Now()
	for range procs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := todo.Add(-1)
				if i < 0 {
					return
				}
				t := time.Now()
				a, err := e.ProposeFunc(ctx, take)
				lat[i] = time.Since(t)
				if err != nil || !a.Result.OK() {
					failed.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	cpu := raftCPU() - cpu0
	b.StopTimer()
	if f := failed.Load(); f > 0 {
		b.Fatalf("%d of %d proposals failed or were refused", f, b.N)
	}
	p50, p99 := rafttest.Percentile(lat, 50), rafttest.Percentile(lat, 99)
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "commits/s")
	b.ReportMetric(float64(p50.Microseconds()), "p50-µs")
	b.ReportMetric(float64(p99.Microseconds()), "p99-µs")
	b.ReportMetric(float64(rtt.Microseconds()), "rtt-p50-µs")
	b.ReportMetric(float64(p50)/float64(rtt), "p50/rtt")
	b.ReportMetric(float64(fsync.Microseconds()), "fsync-p50-µs")
	b.ReportMetric(float64(verify.Microseconds()), "verify-p50-µs")
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/commit")
}

func raftWaitLeader(b *testing.B, c *rafttest.Cluster, engines []*raftengine.Engine) int {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		for i, e := range engines {
			if s := e.Status(); s.Healthy && s.Leader == c.Keys[i].Public() {
				return i
			}
		}
		time.Sleep(20 * time.Millisecond) // polling with a deadline
	}
	b.Fatal("no leader within 30s")
	return -1
}

// raftFsync is the median time of a 512-byte write plus fsync in a temp
// directory: the disk's part of a commit (leader and follower each fsync).
func raftFsync(b *testing.B, rounds int) time.Duration {
	f, err := os.Create(filepath.Join(b.TempDir(), "fsync"))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 512)
	var ds []time.Duration
	for range rounds {
		t := time.Now()
		if _, err := f.Write(buf); err != nil {
			b.Fatal(err)
		}
		if err := f.Sync(); err != nil {
			b.Fatal(err)
		}
		ds = append(ds, time.Since(t))
	}
	return rafttest.Percentile(ds, 50)
}

// raftVerify is the median time of one ed25519 verification of a request,
// which the leader does once per entry before appending it (ADR 0016).
func raftVerify(b *testing.B, k identity.PrivateKey, rounds int) time.Duration {
	msg := make([]byte, 200)
	sig := k.Sign(msg)
	var ds []time.Duration
	for range rounds {
		t := time.Now()
		if !k.Public().Verify(msg, sig) {
			b.Fatal("verify failed")
		}
		ds = append(ds, time.Since(t))
	}
	return rafttest.Percentile(ds, 50)
}

// raftCPU is the process's user plus system CPU time so far.
func raftCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
