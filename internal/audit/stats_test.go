package audit

import (
	"testing"
	"time"
)

// TestCommitStatsBuckets: the buckets are cumulative and the sums add up, as
// a Prometheus histogram requires.
func TestCommitStatsBuckets(t *testing.T) {
	t.Parallel()
	var l Log
	for _, n := range []int{1, 3, 3, 100, 5000} {
		l.commitStats.observe(n, time.Now())
	}
	s := l.CommitStats()
	if s.Commits != 5 || s.BatchSum != 5107 {
		t.Fatalf("commits %d, batch sum %d", s.Commits, s.BatchSum)
	}
	for bound, want := range map[float64]uint64{1: 1, 2: 1, 4: 3, 64: 3, 128: 4, 4096: 4} {
		if got := s.Batches[bound]; got != want {
			t.Errorf("batches <= %v: %d, want %d", bound, got, want)
		}
	}
	if s.Durations[2.5] != 5 { // each observe took far less than 2.5s
		t.Errorf("durations <= 2.5s: %d, want 5", s.Durations[2.5])
	}
}
