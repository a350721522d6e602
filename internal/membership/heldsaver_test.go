package membership

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// savedState stands for the held store and its file: held counts the
// statements held in memory, saved what the last successful save wrote.
type savedState struct {
	held, saved atomic.Int64
	writes      atomic.Int64
	fail        atomic.Int64 // saves still to fail
}

func (st *savedState) save() error {
	if st.fail.Load() > 0 {
		st.fail.Add(-1)
		return errors.New("disk full")
	}
	st.writes.Add(1)
	st.saved.Store(st.held.Load())
	return nil
}

// hold is a statement becoming held: in memory first, then marked.
func (st *savedState) hold(s *HeldSaver) {
	st.held.Add(1)
	s.Mark()
}

func newSaver(t *testing.T, st *savedState, interval time.Duration, log *slog.Logger) *HeldSaver {
	t.Helper()
	s, err := NewHeldSaver(HeldSaverConfig{Save: st.save, Interval: interval, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within 10s: %s", what)
		}
		time.Sleep(time.Millisecond) // polling, not synchronisation
	}
}

// TestHeldSaverCoalescesABurst: a burst of statements held from many
// goroutines costs one save at once (the first) and one at Close, which
// writes them all. Without coalescing each one rewrote the file.
func TestHeldSaverCoalescesABurst(t *testing.T) {
	t.Parallel()
	var st savedState
	s := newSaver(t, &st, time.Minute, nil) // no timed save within the test
	const n, workers = 1000, 8
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for range n / workers {
				st.hold(s)
			}
		})
	}
	wg.Wait()
	if w := st.writes.Load(); w != 1 {
		t.Fatalf("%d writes for a burst of %d within the interval, want 1 (the first)", w, n)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if w, saved := st.writes.Load(), st.saved.Load(); w != 2 || saved != n {
		t.Fatalf("after Close: %d writes holding %d statements, want 2 holding all %d", w, saved, n)
	}
	if got := s.Stats(); got.Saves != 2 || got.Failed != 0 {
		t.Errorf("stats %+v, want 2 saves, none failed", got)
	}
}

// TestHeldSaverLoneStatementIsSavedAtOnce: after a quiet interval the
// statement is on disk when Mark returns, as before coalescing.
func TestHeldSaverLoneStatementIsSavedAtOnce(t *testing.T) {
	t.Parallel()
	var st savedState
	s := newSaver(t, &st, time.Millisecond, nil)
	for i := range 3 {
		last := time.Now()
		waitFor(t, "the interval passes", func() bool { return time.Since(last) > 5*time.Millisecond })
		waitFor(t, "no save pending", func() bool { return st.saved.Load() == st.held.Load() })
		st.hold(s)
		if got := st.saved.Load(); got != int64(i+1) {
			t.Fatalf("statement %d: %d saved when Mark returned, want %d", i+1, got, i+1)
		}
	}
}

// TestHeldSaverSavesAfterTheInterval: with no Close, the statements of a
// burst are all on disk once the interval has passed, and saves start at
// most once per interval.
func TestHeldSaverSavesAfterTheInterval(t *testing.T) {
	t.Parallel()
	var st savedState
	const interval = 20 * time.Millisecond
	s := newSaver(t, &st, interval, nil)
	const n = 2000
	start := time.Now()
	for range n {
		st.hold(s)
	}
	waitFor(t, "the burst saved", func() bool { return st.saved.Load() == n })
	elapsed := time.Since(start)
	if w, most := st.writes.Load(), 2+int64(elapsed/interval); w > most || w >= n/10 {
		t.Fatalf("%d writes for %d statements over %v, want at most %d (one per %v)", w, n, elapsed, most, interval)
	}
}

// TestHeldSaverRetriesAFailedSave: a save that fails is logged and retried
// later; Mark neither fails nor panics, and the statements reach the file
// once the disk recovers.
func TestHeldSaverRetriesAFailedSave(t *testing.T) {
	t.Parallel()
	var st savedState
	st.fail.Store(3)
	var mu sync.Mutex
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(lockedBuffer{&mu, &logs}, nil))
	s := newSaver(t, &st, time.Millisecond, log)
	for range 10 {
		st.hold(s)
	}
	waitFor(t, "the retried save", func() bool { return st.saved.Load() == 10 })
	if got := s.Stats(); got.Failed != 3 || got.Saves < 1 {
		t.Errorf("stats %+v, want 3 failed then saved", got)
	}
	mu.Lock()
	defer mu.Unlock()
	if c := strings.Count(logs.String(), "held statements not saved"); c != 3 {
		t.Errorf("%d log lines of failed saves, want 3; log:\n%s", c, logs.String())
	}
}

// TestHeldSaverCloseReportsAFailedLastSave: the last save's error reaches
// Close's caller; a later Mark saves at once.
func TestHeldSaverCloseReportsAFailedLastSave(t *testing.T) {
	t.Parallel()
	var st savedState
	s := newSaver(t, &st, time.Minute, nil)
	st.hold(s) // saved at once
	st.hold(s) // left to the interval
	st.fail.Store(1)
	if err := s.Close(); err == nil {
		t.Fatal("Close with a failing save returned no error")
	}
	st.hold(s) // after Close: saved at once, with the one Close missed
	if got := st.saved.Load(); got != 3 {
		t.Errorf("%d saved after a Mark following Close, want 3", got)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestNewHeldSaverValidates(t *testing.T) {
	t.Parallel()
	ok := func() error { return nil }
	for _, tc := range []struct {
		cfg   HeldSaverConfig
		field string
	}{
		{HeldSaverConfig{}, "Save"},
		{HeldSaverConfig{Save: ok, Interval: time.Microsecond}, "Interval"},
		{HeldSaverConfig{Save: ok, Interval: time.Hour}, "Interval"},
		{HeldSaverConfig{Save: ok, Interval: -time.Second}, "Interval"},
	} {
		if _, err := NewHeldSaver(tc.cfg); err == nil || !strings.Contains(err.Error(), tc.field) {
			t.Errorf("%+v: err %v, want one naming %s", tc.cfg.Interval, err, tc.field)
		}
	}
	s, err := NewHeldSaver(HeldSaverConfig{Save: ok})
	if err != nil || s.interval != HeldSaveInterval {
		t.Errorf("defaults: %v, interval %v; want %v", err, s.interval, HeldSaveInterval)
	}
}

type lockedBuffer struct {
	mu *sync.Mutex
	b  *bytes.Buffer
}

func (l lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}
