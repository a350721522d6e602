package wire

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// syncRecorder stands in for (*os.File).Sync: it syncs for real, and
// records each sync of a regular file (which file, its size then) and counts
// those of directories. While fail is set, it fails instead; while hold is
// non-nil, each sync waits for it to be closed.
type syncRecorder struct {
	fail atomic.Bool
	hold chan struct{}

	failed atomic.Int64 // syncs failed by fail

	mu      sync.Mutex
	files   []syncedFile
	dirs    int
	waiting int // syncs inside hold
}

// recBytes is journalRecordBytes as a file size.
const recBytes = int64(journalRecordBytes)

type syncedFile struct {
	fi   os.FileInfo
	size int64
}

func (s *syncRecorder) sync(f *os.File) error {
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if s.hold != nil {
		s.mu.Lock()
		s.waiting++
		s.mu.Unlock()
		<-s.hold
	}
	if s.fail.Load() {
		s.failed.Add(1)
		return errors.New("injected sync failure")
	}
	if err := f.Sync(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if fi.IsDir() {
		s.dirs++
	} else {
		s.files = append(s.files, syncedFile{fi, fi.Size()})
	}
	return nil
}

// synced returns the sizes at which the file now at path was synced, and
// the directory syncs so far.
func (s *syncRecorder) synced(t *testing.T, path string) (sizes []int64, dirs int) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, f := range s.files {
		if os.SameFile(f.fi, fi) {
			sizes = append(sizes, f.size)
		}
	}
	return sizes, s.dirs
}

// logRecords is a slog.Handler that keeps every record.
type logRecords struct {
	mu   sync.Mutex
	recs []slog.Record
}

func (l *logRecords) Enabled(context.Context, slog.Level) bool { return true }
func (l *logRecords) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *logRecords) WithGroup(string) slog.Handler            { return l }
func (l *logRecords) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.recs = append(l.recs, r.Clone())
	return nil
}

// count returns the records at level whose message contains msg.
func (l *logRecords) count(level slog.Level, msg string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, r := range l.recs {
		if r.Level == level && strings.Contains(r.Message, msg) {
			n++
		}
	}
	return n
}

// waitFor polls cond until it holds, failing the test after 10 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond) // a poll interval, not a synchronisation
	}
}

// syncedVerifier is journaledVerifier with the syncs going through rec.
func syncedVerifier(t *testing.T, rec *syncRecorder, path string, every time.Duration, log *slog.Logger) (*Verifier, *ReplayJournal) {
	t.Helper()
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	j, err := openReplayJournal(ReplayJournalConfig{Path: path, Now: t0, SyncEvery: every, Logger: log}, rec.sync)
	if err != nil {
		t.Fatal(err)
	}
	v, err := NewVerifier(VerifierConfig{Self: testKeys(t).bob.Public(), Journal: j})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { v.Close() })
	return v, j
}

// accept verifies request i (distinct nonces) at now and fails the test if
// it is refused.
func accept(t *testing.T, v *Verifier, i uint64, now time.Time) {
	t.Helper()
	k := testKeys(t)
	r, _ := signedRequest(t, k, testBody, func(p *SignParams) { p.Now = now; p.Rand = seededRand(5000 + i) })
	if _, err := v.VerifyRequest(serverView(t, r), testBody, k.alice.Public(), now); err != nil {
		t.Fatalf("request %d: %v", i, err)
	}
}

// TestReplayJournalSyncsAfterWrites: an accepted nonce is synced to disk
// (with the directory holding the new file) soon after its write, and an
// idle journal is not synced at all.
func TestReplayJournalSyncsAfterWrites(t *testing.T) {
	rec := &syncRecorder{}
	path := filepath.Join(t.TempDir(), "replay.journal")
	v, _ := syncedVerifier(t, rec, path, time.Millisecond, nil)

	accept(t, v, 1, t0)
	waitFor(t, "the first record synced", func() bool {
		sizes, dirs := rec.synced(t, path)
		return len(sizes) == 1 && sizes[0] == recBytes && dirs == 1
	})

	// Idle for 50 intervals: no sync. (A bounded wait to observe an
	// absence, not a synchronisation.)
	<-time.After(50 * time.Millisecond)
	if sizes, dirs := rec.synced(t, path); len(sizes) != 1 || dirs != 1 {
		t.Fatalf("an idle journal was synced: %d file syncs, %d directory syncs; want 1 and 1", len(sizes), dirs)
	}

	accept(t, v, 2, t0)
	waitFor(t, "the second record synced", func() bool {
		sizes, _ := rec.synced(t, path)
		return len(sizes) == 2 && sizes[1] == 2*recBytes
	})
	if _, dirs := rec.synced(t, path); dirs != 1 {
		t.Fatalf("directory synced %d times without a new file in it, want 1", dirs)
	}
}

// TestReplayJournalIdleNeverSynced: a journal opened and closed without a
// write is never synced, not even by Close.
func TestReplayJournalIdleNeverSynced(t *testing.T) {
	rec := &syncRecorder{}
	path := filepath.Join(t.TempDir(), "replay.journal")
	v, _ := syncedVerifier(t, rec, path, time.Millisecond, nil)
	<-time.After(20 * time.Millisecond) // observing an absence, as above
	if err := v.Close(); err != nil {
		t.Fatal(err)
	}
	if sizes, dirs := rec.synced(t, path); len(sizes) != 0 || dirs != 0 {
		t.Fatalf("idle journal: %d file syncs, %d directory syncs; want none", len(sizes), dirs)
	}
}

// TestReplayJournalCloseSyncs: Close stops the syncer and syncs what it had
// not synced yet. The interval is an hour, so only Close can make the
// second sync.
func TestReplayJournalCloseSyncs(t *testing.T) {
	rec := &syncRecorder{}
	path := filepath.Join(t.TempDir(), "replay.journal")
	v, j := syncedVerifier(t, rec, path, time.Hour, nil)

	accept(t, v, 1, t0) // the first write after idle is synced at once
	waitFor(t, "the first record synced", func() bool {
		sizes, _ := rec.synced(t, path)
		return len(sizes) == 1
	})
	accept(t, v, 2, t0) // not before an hour
	if sizes, _ := rec.synced(t, path); len(sizes) != 1 {
		t.Fatalf("%d syncs within the interval, want 1", len(sizes))
	}
	if err := v.Close(); err != nil {
		t.Fatal(err)
	}
	if sizes, _ := rec.synced(t, path); len(sizes) != 2 || sizes[1] != 2*recBytes {
		t.Fatalf("after Close the file was synced at sizes %v, want [%d %d]", sizes, recBytes, 2*recBytes)
	}
	select {
	case <-j.done:
	default:
		t.Fatal("the syncer still runs after Close")
	}
	if err := j.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

// TestReplayJournalSyncFailure: a failing sync is logged once per run of
// failures and does not stop serving: requests are accepted, their replays
// refused, and the syncer keeps trying; when syncs work again it says so.
func TestReplayJournalSyncFailure(t *testing.T) {
	rec := &syncRecorder{}
	rec.fail.Store(true)
	logs := &logRecords{}
	path := filepath.Join(t.TempDir(), "replay.journal")
	v, _ := syncedVerifier(t, rec, path, time.Millisecond, slog.New(logs))
	k := testKeys(t)

	r, _ := signedRequest(t, k, testBody, nil)
	if _, err := v.VerifyRequest(serverView(t, r), testBody, k.alice.Public(), t0); err != nil {
		t.Fatalf("request refused while syncs fail: %v", err)
	}
	waitFor(t, "the sync failure logged", func() bool { return logs.count(slog.LevelError, "replay journal sync failed") == 1 })

	accept(t, v, 2, t0)
	_, err := v.VerifyRequest(serverView(t, r), testBody, k.alice.Public(), t0)
	wantReason(t, err, ReasonReplayed)
	f := rec.failed.Load()
	accept(t, v, 3, t0)
	waitFor(t, "the syncer failing again", func() bool { return rec.failed.Load() > f })
	rec.fail.Store(false)
	accept(t, v, 4, t0)
	waitFor(t, "the recovery logged", func() bool { return logs.count(slog.LevelInfo, "replay journal sync works again") == 1 })
	if n := logs.count(slog.LevelError, "replay journal sync failed"); n != 1 {
		t.Fatalf("%d sync failure records for one run of failures, want 1", n)
	}
	waitFor(t, "every record synced", func() bool {
		sizes, _ := rec.synced(t, path)
		return len(sizes) > 0 && sizes[len(sizes)-1] == 4*recBytes
	})
}

// TestReplayJournalCallPathNeverWaitsForSync: with the syncer stuck inside
// a sync, requests are still accepted, each with its one record written.
func TestReplayJournalCallPathNeverWaitsForSync(t *testing.T) {
	rec := &syncRecorder{hold: make(chan struct{})}
	path := filepath.Join(t.TempDir(), "replay.journal")
	v, _ := syncedVerifier(t, rec, path, time.Millisecond, nil)
	released := false
	release := func() {
		if !released {
			close(rec.hold)
			released = true
		}
	}
	defer release()

	accept(t, v, 0, t0)
	waitFor(t, "the syncer inside its first sync", func() bool {
		rec.mu.Lock()
		defer rec.mu.Unlock()
		return rec.waiting == 1
	})
	const n = 20
	for i := uint64(1); i < n; i++ {
		accept(t, v, i, t0)
	}
	if fi, err := os.Stat(path); err != nil {
		t.Fatal(err)
	} else if fi.Size() != n*recBytes {
		t.Fatalf("journal after %d requests holds %d bytes, want %d", n, fi.Size(), n*recBytes)
	}
	if sizes, _ := rec.synced(t, path); len(sizes) != 0 {
		t.Fatalf("a sync completed while held: %v", sizes)
	}
	release()
	if err := v.Close(); err != nil {
		t.Fatal(err)
	}
	if sizes, _ := rec.synced(t, path); len(sizes) == 0 || sizes[len(sizes)-1] != n*recBytes {
		t.Fatalf("synced at sizes %v, want the last at %d", sizes, n*recBytes)
	}
}

// TestReplayJournalRotationSynced: after a rotation the syncer syncs the
// file rotated out, the new file and the directory holding both names.
func TestReplayJournalRotationSynced(t *testing.T) {
	rec := &syncRecorder{}
	path := filepath.Join(t.TempDir(), "replay.journal")
	v, _ := syncedVerifier(t, rec, path, time.Millisecond, nil)
	accept(t, v, 1, t0)
	waitFor(t, "the first record synced", func() bool {
		sizes, dirs := rec.synced(t, path)
		return len(sizes) == 1 && dirs == 1
	})
	later := t0.Add(DefaultTTL + 2*30*time.Second + 2*time.Second) // past one period
	accept(t, v, 2, later)
	waitFor(t, "the rotation synced", func() bool {
		old, _ := rec.synced(t, path+".old")
		cur, dirs := rec.synced(t, path)
		// The new file may be synced empty first, if the syncer ran
		// between the rotation and the write.
		return len(old) == 2 && old[1] == recBytes && len(cur) > 0 && cur[len(cur)-1] == recBytes && dirs == 2
	})
}

func TestReplayJournalConfig(t *testing.T) {
	path := filepath.Join(t.TempDir(), "replay.journal")
	for _, c := range []struct {
		cfg  ReplayJournalConfig
		want string
	}{
		{ReplayJournalConfig{Now: t0}, "Path"},
		{ReplayJournalConfig{Path: path}, "Now"},
		{ReplayJournalConfig{Path: path, Now: t0, SyncEvery: time.Microsecond}, "SyncEvery"},
		{ReplayJournalConfig{Path: path, Now: t0, SyncEvery: 2 * time.Second}, "SyncEvery"},
		{ReplayJournalConfig{Path: path, Now: t0, SyncEvery: -time.Millisecond}, "SyncEvery"},
	} {
		j, err := OpenReplayJournal(c.cfg)
		if err == nil {
			j.Close()
			t.Errorf("%+v accepted", c.cfg)
			continue
		}
		if !strings.Contains(err.Error(), "ReplayJournalConfig."+c.want) {
			t.Errorf("%+v: %v, want it to name %s", c.cfg, err, c.want)
		}
	}
}
