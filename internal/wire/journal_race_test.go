package wire

import (
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestReplayJournalRotationsRaceTheSyncer: requests accepted across many
// rotations while the syncer runs every millisecond. No sync ever meets a
// file already closed (every sync succeeds), both files end synced at their
// final sizes without a further write (no lost wake-up across a rotation),
// and Close leaves no file of the journal open, retired ones included, and
// no syncer running.
func TestReplayJournalRotationsRaceTheSyncer(t *testing.T) {
	rec := &syncRecorder{}
	logs := &logRecords{}
	dir := t.TempDir()
	path := filepath.Join(dir, "replay.journal")
	v, j := syncedVerifier(t, rec, path, time.Millisecond, slog.New(logs))

	period := DefaultTTL + 2*30*time.Second + time.Second
	now := t0
	const n, perPeriod = 240, 8
	for i := range n {
		if i > 0 && i%perPeriod == 0 {
			now = now.Add(period) // the next accept rotates
		}
		accept(t, v, uint64(i), now)
	}
	size := func(p string) int64 {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		return fi.Size()
	}
	if got, want := size(path), perPeriod*recBytes; got != want {
		t.Fatalf("%s holds %d bytes, want %d (one period's records)", path, got, want)
	}
	waitFor(t, "both files synced at their final sizes", func() bool {
		cur, _ := rec.synced(t, path)
		old, _ := rec.synced(t, path+".old")
		return len(cur) > 0 && cur[len(cur)-1] == size(path) &&
			len(old) > 0 && old[len(old)-1] == size(path+".old")
	})
	if c := logs.count(slog.LevelError, "sync failed"); c != 0 {
		t.Fatalf("%d sync failures logged", c)
	}

	if err := v.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-j.done:
	default:
		t.Fatal("the syncer still runs after Close")
	}
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skip("no /proc/self/fd:", err)
	}
	for _, fd := range fds {
		if to, err := os.Readlink(filepath.Join("/proc/self/fd", fd.Name())); err == nil && strings.HasPrefix(to, dir) {
			t.Errorf("fd %s still open on %s after Close", fd.Name(), to)
		}
	}
	if err := j.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}
