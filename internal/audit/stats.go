package audit

import (
	"sync"
	"time"
)

// Bucket bounds of CommitStats: entries per group commit, and seconds per
// commit (the transaction, the checkpoint signature and the fsync).
var (
	batchBounds  = [...]float64{1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096}
	commitBounds = [...]float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5}
)

// CommitStats describes the group commits of a Log since Open, as
// histograms: Batches and Durations map each bucket's upper bound to the
// number of commits at or below it (cumulative, as Prometheus expects).
type CommitStats struct {
	Commits     uint64
	BatchSum    uint64 // entries over all commits
	Batches     map[float64]uint64
	DurationSum time.Duration
	Durations   map[float64]uint64
}

// commitStats is the writer's record of its commits; read by CommitStats.
type commitStats struct {
	mu       sync.Mutex
	n        uint64
	batchSum uint64
	batch    [len(batchBounds)]uint64 // per bucket, not cumulative
	durSum   time.Duration
	dur      [len(commitBounds)]uint64
}

// observe records one commit of n ops that began at start.
func (s *commitStats) observe(n int, start time.Time) {
	d := time.Since(start)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.n++
	s.batchSum += uint64(n)
	s.durSum += d
	for i, b := range batchBounds {
		if float64(n) <= b {
			s.batch[i]++
			break
		}
	}
	for i, b := range commitBounds {
		if d.Seconds() <= b {
			s.dur[i]++
			break
		}
	}
}

// CommitStats returns the histograms of group-commit batch sizes and
// durations since Open.
func (l *Log) CommitStats() CommitStats {
	s := &l.commitStats
	s.mu.Lock()
	defer s.mu.Unlock()
	out := CommitStats{Commits: s.n, BatchSum: s.batchSum, DurationSum: s.durSum,
		Batches: make(map[float64]uint64, len(batchBounds)), Durations: make(map[float64]uint64, len(commitBounds))}
	var c uint64
	for i, b := range batchBounds {
		c += s.batch[i]
		out.Batches[b] = c
	}
	c = 0
	for i, b := range commitBounds {
		c += s.dur[i]
		out.Durations[b] = c
	}
	return out
}
