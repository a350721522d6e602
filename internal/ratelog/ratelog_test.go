package ratelog

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

type sink struct {
	mu   sync.Mutex
	recs []slog.Record
}

func (s *sink) Enabled(context.Context, slog.Level) bool { return true }
func (s *sink) Handle(_ context.Context, r slog.Record) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.recs = append(s.recs, r.Clone())
	return nil
}
func (s *sink) WithAttrs([]slog.Attr) slog.Handler { return s }
func (s *sink) WithGroup(string) slog.Handler      { return s }

func (s *sink) lines() []map[string]slog.Value {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []map[string]slog.Value
	for _, r := range s.recs {
		m := map[string]slog.Value{"msg": slog.StringValue(r.Message)}
		r.Attrs(func(a slog.Attr) bool {
			m[a.Key] = a.Value
			return true
		})
		out = append(out, m)
	}
	return out
}

func newLimiter(t *testing.T, maxKeys int) (*Limiter, *sink, *fakeClock) {
	t.Helper()
	s, c := &sink{}, &fakeClock{t: t0}
	l, err := New(Config{Logger: slog.New(s), Interval: time.Second, MaxKeys: maxKeys, Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	return l, s, c
}

func total(lines []map[string]slog.Value) int64 {
	var n int64
	for _, l := range lines {
		n += l["count"].Int64()
	}
	return n
}

func TestNewValidates(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		cfg   Config
		field string
	}{
		{Config{}, "Config.Logger"},
		{Config{Logger: slog.Default(), Interval: time.Microsecond}, "Config.Interval"},
		{Config{Logger: slog.Default(), Interval: 2 * time.Hour}, "Config.Interval"},
		{Config{Logger: slog.Default(), MaxKeys: -1}, "Config.MaxKeys"},
		{Config{Logger: slog.Default(), MaxKeys: 1 << 20}, "Config.MaxKeys"},
	} {
		if _, err := New(tc.cfg); err == nil || !strings.Contains(err.Error(), tc.field) {
			t.Errorf("New(%+v) = %v, want an error naming %s", tc.cfg, err, tc.field)
		}
	}
	if _, err := New(Config{Logger: slog.Default(), Interval: time.Millisecond, MaxKeys: 1}); err != nil {
		t.Fatalf("edges refused: %v", err)
	}
}

// TestOneLinePerInterval: 1000 events of a key within an interval cost two
// lines, and the counts add up with first and last intact.
func TestOneLinePerInterval(t *testing.T) {
	t.Parallel()
	l, s, c := newLimiter(t, 8)
	ctx := t.Context()
	for i := range 1000 {
		l.Log(ctx, slog.LevelWarn, "k", "refused", "i", i)
		c.Add(time.Millisecond / 2)
	}
	if n := len(s.lines()); n != 1 {
		t.Fatalf("%d lines within the interval, want 1 (the first)", n)
	}
	// Just below the interval boundary nothing more is written ...
	c.Set(t0.Add(time.Second - time.Nanosecond))
	l.Flush(ctx, false)
	if n := len(s.lines()); n != 1 {
		t.Fatalf("%d lines before the interval ended", n)
	}
	// ... at it, the summary.
	c.Set(t0.Add(time.Second))
	l.Flush(ctx, false)
	lines := s.lines()
	if len(lines) != 2 {
		t.Fatalf("%d lines, want 2", len(lines))
	}
	sum := lines[1]
	if sum["count"].Int64() != 999 || sum["i"].Int64() != 999 {
		t.Fatalf("summary %v", sum)
	}
	if !sum["first"].Time().Equal(t0.Add(time.Millisecond/2)) || !sum["last"].Time().Equal(t0.Add(999*time.Millisecond/2)) {
		t.Fatalf("first %v last %v", sum["first"], sum["last"])
	}
	if total(lines) != 1000 {
		t.Fatalf("counts add to %d, want 1000", total(lines))
	}
	// A quiet interval forgets the key; its next event is written at once.
	c.Add(time.Second)
	l.Flush(ctx, false)
	if l.Keys() != 0 {
		t.Fatalf("%d keys kept after a quiet interval", l.Keys())
	}
	l.Log(ctx, slog.LevelWarn, "k", "refused", "i", 1000)
	if lines := s.lines(); len(lines) != 3 || lines[2]["count"].Int64() != 1 {
		t.Fatalf("after quiet: %v", lines)
	}
}

func (c *fakeClock) Set(at time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = at
}

// TestEventAfterIntervalWritesLine: the next event after the interval writes
// the summary itself, without a Flush.
func TestEventAfterIntervalWritesLine(t *testing.T) {
	t.Parallel()
	l, s, c := newLimiter(t, 8)
	ctx := t.Context()
	l.Log(ctx, slog.LevelWarn, "k", "m")
	l.Log(ctx, slog.LevelWarn, "k", "m")
	c.Add(time.Second)
	l.Log(ctx, slog.LevelWarn, "k", "m")
	lines := s.lines()
	if len(lines) != 2 || lines[1]["count"].Int64() != 2 {
		t.Fatalf("lines %v", lines)
	}
}

// TestKeysAreBounded: events of more keys than MaxKeys share one overflow
// line per interval.
func TestKeysAreBounded(t *testing.T) {
	t.Parallel()
	l, s, c := newLimiter(t, 4)
	ctx := t.Context()
	for i := range 1000 {
		l.Log(ctx, slog.LevelWarn, string(rune('a'+i%100)), "m", "src", i%100)
	}
	if l.Keys() != 4 {
		t.Fatalf("%d keys, want 4", l.Keys())
	}
	// 4 first lines, and the overflow's first line.
	lines := s.lines()
	if len(lines) != 5 || !lines[4]["overflow"].Bool() {
		t.Fatalf("%d lines: %v", len(lines), lines)
	}
	c.Add(time.Second)
	l.Flush(ctx, false)
	lines = s.lines()
	if len(lines) != 10 {
		t.Fatalf("%d lines after flush, want 10", len(lines))
	}
	if total(lines) != 1000 {
		t.Fatalf("counts add to %d, want 1000", total(lines))
	}
}

func TestForceFlush(t *testing.T) {
	t.Parallel()
	l, s, _ := newLimiter(t, 4)
	ctx := t.Context()
	for range 3 {
		l.Log(ctx, slog.LevelWarn, "k", "m")
	}
	l.Flush(ctx, true)
	if lines := s.lines(); len(lines) != 2 || total(lines) != 3 {
		t.Fatalf("lines %v", lines)
	}
	l.Flush(ctx, true) // nothing pending: nothing written
	if n := len(s.lines()); n != 2 {
		t.Fatalf("%d lines after an empty flush", n)
	}
}

func TestConcurrentCountsAreExact(t *testing.T) {
	t.Parallel()
	s := &sink{}
	l, err := New(Config{Logger: slog.New(s), Interval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for range 500 {
				l.Log(t.Context(), slog.LevelWarn, string(rune('a'+w%3)), "m")
			}
		})
	}
	wg.Wait()
	l.Flush(t.Context(), true)
	if n := total(s.lines()); n != 4000 {
		t.Fatalf("counts add to %d, want 4000", n)
	}
}
