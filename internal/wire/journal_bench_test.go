package wire

import (
	"encoding/binary"
	"path/filepath"
	"testing"
	"time"
)

// BenchmarkReplayJournalAppend measures what journaling adds to an accepted
// request: one append under the window's lock.
func BenchmarkReplayJournalAppend(b *testing.B) {
	j, err := OpenReplayJournal(ReplayJournalConfig{Path: filepath.Join(b.TempDir(), "replay.journal"), Now: t0})
	if err != nil {
		b.Fatal(err)
	}
	defer j.Close()
	j.period = time.Hour // no rotation inside the run
	e := journalEntry{peer: testKeys(b).alice.Public(), until: t0.Add(time.Minute).UnixNano()}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		binary.BigEndian.PutUint64(e.key[:], uint64(i))
		if err := j.append(e, t0); err != nil {
			b.Fatal(err)
		}
	}
}
