package wire

import (
	"encoding/binary"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// BenchmarkReplayJournalAppend measures what journaling adds to an accepted
// request: one append under the window's lock, with the syncer running at
// its default interval. Besides the mean it reports the latency quantiles
// of single appends, where a sync slowing the call path would show.
func BenchmarkReplayJournalAppend(b *testing.B) {
	j, err := OpenReplayJournal(ReplayJournalConfig{Path: filepath.Join(b.TempDir(), "replay.journal"), Now: t0})
	if err != nil {
		b.Fatal(err)
	}
	defer j.Close()
	j.period = time.Hour // no rotation inside the run
	e := journalEntry{peer: testKeys(b).alice.Public(), until: t0.Add(time.Minute).UnixNano()}
	lat := make([]time.Duration, 0, b.N)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		binary.BigEndian.PutUint64(e.key[:], uint64(i))
		start := time.Now()
		if err := j.append(e, t0); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	slices.Sort(lat)
	q := func(f float64) float64 { return float64(lat[int(f*float64(len(lat)-1))].Nanoseconds()) }
	b.ReportMetric(q(0.5), "p50-ns")
	b.ReportMetric(q(0.99), "p99-ns")
	b.ReportMetric(q(0.999), "p99.9-ns")
	b.ReportMetric(q(1), "max-ns")
}
