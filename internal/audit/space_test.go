package audit

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

// syncBuffer is a log sink safe for the writer goroutine and the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestHighWaterFreeDisk: below MinFreeBytes, Append refuses with a clear
// typed error, one alert is logged and recorded; once space returns the log
// resumes by itself, with one more alert.
func TestHighWaterFreeDisk(t *testing.T) {
	var free atomic.Uint64
	free.Store(10 << 30)
	var logs syncBuffer
	key := testKey(t, 1)
	l, path := openTest(t, key, func(c *Config) {
		c.MinFreeBytes = 1 << 30
		c.SpaceCheckInterval = time.Microsecond
		c.Statfs = func(string) (DiskSpace, error) { return DiskSpace{Free: free.Load(), Total: 100 << 30}, nil }
		c.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	})
	ctx := t.Context()
	appendN(t, l, 0, 3)

	free.Store(812 << 20)
	var hw *HighWaterError
	for i := range 3 { // refused every time, alerted once
		_, err := l.Append(ctx, sampleEntry(3))
		if !errors.As(err, &hw) || !errors.Is(err, ErrHighWater) {
			t.Fatalf("append %d at 812 MiB free: %v, want a *HighWaterError", i, err)
		}
	}
	if want := "disk high-water mark: 812 MiB free < 1 GiB min_free; refusing new calls"; hw.Error() != want {
		t.Fatalf("error text %q, want %q", hw.Error(), want)
	}
	// Just above the mark is not enough to resume (hysteresis)...
	free.Store(1<<30 + 1)
	if _, err := l.Append(ctx, sampleEntry(3)); !errors.Is(err, ErrHighWater) {
		t.Fatalf("append just above the mark: %v, want still refused", err)
	}
	// ...space returning is.
	free.Store(2 << 30)
	idx, err := l.Append(ctx, sampleEntry(3))
	if err != nil {
		t.Fatalf("append after space returned: %v", err)
	}
	alerts, err := l.List(ctx, Filter{Kind: KindHighWater})
	if err != nil {
		t.Fatal(err)
	}
	if len(alerts) != 2 || alerts[0].Outcome != "refusing" || alerts[1].Outcome != "resumed" || alerts[0].Index != 3 || idx != 5 {
		t.Fatalf("alert entries %+v, resumed entry at %d", alerts, idx)
	}
	if !strings.Contains(string(alerts[0].Report), `"free":851443712`) {
		t.Fatalf("alert report %s", alerts[0].Report)
	}
	out := logs.String()
	if n := strings.Count(out, "event=audit.high_water "); n != 1 || !strings.Contains(out, "level=ERROR") {
		t.Fatalf("want one ERROR with event=audit.high_water, got %d in:\n%s", n, out)
	}
	if n := strings.Count(out, "event=audit.high_water_cleared"); n != 1 {
		t.Fatalf("want one event=audit.high_water_cleared, got %d in:\n%s", n, out)
	}
	l.Close()
	if res, err := Verify(ctx, path, key.Public()); err != nil || res.Entries != 6 {
		t.Fatalf("verify after high water: %v %v", res, err)
	}
}

// TestHighWaterMaxBytes: a tiny MaxBytes refuses new entries once audit.db
// holds more; the witness (the log's own records) still writes.
func TestHighWaterMaxBytes(t *testing.T) {
	key := testKey(t, 1)
	l, _ := openTest(t, key, func(c *Config) {
		c.MaxBytes = 1 << 20
		c.MinFreeBytes = -1
		c.SpaceCheckInterval = time.Microsecond
	})
	ctx := t.Context()
	big := sampleEntry(0)
	big.Content = bytes.Repeat([]byte("x"), 2<<20)
	if _, err := l.Append(ctx, big); err != nil {
		t.Fatalf("first append under the cap: %v", err)
	}
	_, err := l.Append(ctx, sampleEntry(1))
	var hw *HighWaterError
	if !errors.As(err, &hw) || hw.Used <= 1<<20 || !strings.Contains(err.Error(), "max_bytes; refusing new calls") {
		t.Fatalf("append over the cap: %v", err)
	}
	t.Logf("refused: %v", err)
	// The reserve: witness state is still kept.
	peer := testKey(t, 7)
	pl, _ := openTest(t, peer, nil)
	if err := l.Witness().Observe(ctx, peer.Public(), mustCheckpoint(t, pl).Note, nil); err != nil {
		t.Fatalf("witness over the cap: %v", err)
	}
	// Pruning the big entry frees its pages: the log resumes by itself.
	if n, err := l.PruneRows(ctx, time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC)); err != nil || n != 2 {
		t.Fatalf("PruneRows over the cap: %d, %v", n, err)
	}
	if _, err := l.Append(ctx, sampleEntry(1)); err != nil {
		t.Fatalf("append after pruning freed space: %v", err)
	}
	kinds := []string{}
	es, _ := l.List(ctx, Filter{})
	for _, e := range es {
		kinds = append(kinds, e.Kind+"/"+e.Outcome)
	}
	if got := strings.Join(kinds, " "); got != "audit.pruned/pruned audit.high_water/resumed call.served/ok" {
		t.Fatalf("entries after pruning: %s", got)
	}
}

func TestSpaceConfigValidation(t *testing.T) {
	key := testKey(t, 1)
	dir := t.TempDir()
	for _, tc := range []struct {
		name, field string
		cfg         Config
	}{
		{"tiny cap", "Config.MaxBytes", Config{Path: dir + "/a.db", Identity: key, MaxBytes: 1000}},
		{"negative cap", "Config.MaxBytes", Config{Path: dir + "/a.db", Identity: key, MaxBytes: -1}},
		{"interval", "Config.SpaceCheckInterval", Config{Path: dir + "/a.db", Identity: key, SpaceCheckInterval: time.Hour}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Open(t.Context(), tc.cfg)
			if err == nil || !strings.Contains(err.Error(), tc.field) {
				t.Fatalf("got %v, want an error naming %s", err, tc.field)
			}
		})
	}
	if got := sizeText(812 << 20); got != "812 MiB" {
		t.Fatal(got)
	}
	if got := sizeText(3 << 29); got != "1.5 GiB" {
		t.Fatal(got)
	}
}
