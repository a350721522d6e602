package audit

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// waitCommits polls until the log has made n commits.
func waitCommits(t *testing.T, l *Log, n uint64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	for l.Stats().Commits < n {
		select {
		case <-ctx.Done():
			t.Fatalf("%d commits after 10s, want %d", l.Stats().Commits, n)
		case <-time.After(time.Millisecond):
		}
	}
}

func TestDeferForValidation(t *testing.T) {
	for _, d := range []time.Duration{-1, 2 * time.Second} {
		_, err := Open(t.Context(), Config{Path: t.TempDir() + "/a.db", Identity: testKey(t, 1), DeferFor: d})
		if err == nil || !strings.Contains(err.Error(), "Config.DeferFor") {
			t.Fatalf("DeferFor %v: got %v, want an error naming Config.DeferFor", d, err)
		}
	}
}

// A deferred entry nobody waits for is committed on its own once DeferFor
// has passed, not before.
func TestDeferredAloneCommitsAfterBound(t *testing.T) {
	const bound = 100 * time.Millisecond
	l, _ := openTest(t, testKey(t, 1), func(c *Config) { c.DeferFor = bound })
	start := time.Now()
	p, err := l.AppendDeferred(t.Context(), sampleEntry(0))
	if err != nil {
		t.Fatal(err)
	}
	if c := l.Stats().Commits; c != 0 && time.Since(start) < bound {
		t.Fatalf("%d commits before DeferFor passed, want the entry held", c)
	}
	waitCommits(t, l, 1)
	if el := time.Since(start); el < bound {
		t.Fatalf("deferred entry committed after %v, before DeferFor %v", el, bound)
	}
	if s := l.Stats(); s.Entries != 1 || s.Commits != 1 {
		t.Fatalf("stats %+v, want one entry in one commit", s)
	}
	if idx, err := p.Wait(t.Context()); err != nil || idx != 0 {
		t.Fatalf("Wait: %d, %v", idx, err)
	}
	if _, err := l.Get(t.Context(), 0); err != nil {
		t.Fatalf("entry not readable: %v", err)
	}
}

// Deferred entries ride with the next ordinary append (or AppendAfter): one
// transaction, one checkpoint, in the order taken.
func TestDeferredRidesWithNextAppend(t *testing.T) {
	l, _ := openTest(t, testKey(t, 1), func(c *Config) { c.DeferFor = time.Second })
	ctx := t.Context()
	var pend []*Pending
	for i := range 3 {
		p, err := l.AppendDeferred(ctx, sampleEntry(i))
		if err != nil {
			t.Fatal(err)
		}
		pend = append(pend, p)
	}
	idx, err := l.Append(ctx, sampleEntry(3))
	if err != nil || idx != 3 {
		t.Fatalf("Append after three deferred: %d, %v", idx, err)
	}
	if s := l.Stats(); s.Entries != 4 || s.Commits != 1 {
		t.Fatalf("stats %+v, want four entries in one commit", s)
	}
	for i, p := range pend {
		if got, err := p.Wait(ctx); err != nil || got != uint64(i) {
			t.Fatalf("deferred %d: index %d, %v", i, got, err)
		}
	}
	dep, err := l.AppendDeferred(ctx, sampleEntry(4))
	if err != nil {
		t.Fatal(err)
	}
	if idx, err := l.AppendAfter(ctx, sampleEntry(5), dep); err != nil || idx != 5 {
		t.Fatalf("AppendAfter: %d, %v", idx, err)
	}
	if s := l.Stats(); s.Entries != 6 || s.Commits != 2 {
		t.Fatalf("stats %+v, want the pair in one more commit", s)
	}
	var n int
	if err := l.r.db.QueryRowContext(ctx, `SELECT count(*) FROM checkpoints WHERE size > 0`).Scan(&n); err != nil || n < 1 {
		t.Fatalf("checkpoints: %d, %v", n, err)
	}
	if head, _ := l.Checkpoint(ctx); head.Size != 6 {
		t.Fatalf("head covers %d entries, want 6", head.Size)
	}
}

// Wait on a deferred entry commits it at once instead of sleeping out the bound.
func TestWaitNudgesDeferredCommit(t *testing.T) {
	l, _ := openTest(t, testKey(t, 1), func(c *Config) { c.DeferFor = time.Second })
	ctx := t.Context()
	for i := range 3 {
		start := time.Now()
		p, err := l.AppendDeferred(ctx, sampleEntry(i))
		if err != nil {
			t.Fatal(err)
		}
		if idx, err := p.Wait(ctx); err != nil || idx != uint64(i) {
			t.Fatalf("Wait: %d, %v", idx, err)
		}
		if el := time.Since(start); el >= time.Second {
			t.Fatalf("Wait took %v: it waited out DeferFor instead of asking for the commit", el)
		}
		if c := l.Stats().Commits; c != uint64(i+1) {
			t.Fatalf("%d commits after %d waits", c, i+1)
		}
	}
}

// Deferred entries fill a batch: at MaxBatch the writer commits them without
// waiting for DeferFor.
func TestDeferredFullBatchCommits(t *testing.T) {
	l, _ := openTest(t, testKey(t, 1), func(c *Config) { c.DeferFor = time.Second; c.MaxBatch = 4 })
	start := time.Now()
	for i := range 4 {
		if _, err := l.AppendDeferred(t.Context(), sampleEntry(i)); err != nil {
			t.Fatal(err)
		}
	}
	waitCommits(t, l, 1)
	if el := time.Since(start); el >= time.Second {
		t.Fatalf("full batch of deferred entries committed after %v, want before DeferFor", el)
	}
	if s := l.Stats(); s.Entries != 4 {
		t.Fatalf("stats %+v, want four entries", s)
	}
}

// An entry appended after a dependency that was refused is refused too, with
// a *DependencyError that carries the dependency's reason; the log stays
// usable.
func TestAppendAfterFailedDependency(t *testing.T) {
	var free atomic.Uint64
	free.Store(10 << 30)
	l, path := openTest(t, testKey(t, 1), func(c *Config) {
		c.DeferFor = time.Second
		c.MinFreeBytes = 1 << 30
		c.SpaceCheckInterval = time.Microsecond
		c.Statfs = func(string) (DiskSpace, error) { return DiskSpace{Free: free.Load(), Total: 100 << 30}, nil }
	})
	ctx := t.Context()
	dep, err := l.AppendDeferred(ctx, sampleEntry(0))
	if err != nil {
		t.Fatal(err)
	}
	free.Store(512 << 20) // the writer learns of the mark at dep's commit
	if _, err := dep.Wait(ctx); !errors.Is(err, ErrHighWater) {
		t.Fatalf("dependency: %v, want ErrHighWater", err)
	}
	free.Store(10 << 30) // space returns before the dependent entry's commit
	_, err = l.AppendAfter(ctx, sampleEntry(1), dep)
	var de *DependencyError
	if !errors.As(err, &de) || !errors.Is(err, ErrDependency) || !errors.Is(err, ErrHighWater) {
		t.Fatalf("AppendAfter a refused dependency: %v, want a *DependencyError wrapping ErrHighWater", err)
	}
	if s := l.Stats(); s.Entries != 0 {
		t.Fatalf("stats %+v: an entry went in without its dependency", s)
	}
	if _, err := l.Append(ctx, sampleEntry(2)); err != nil {
		t.Fatalf("append after the refusal: %v", err)
	}
	other, _ := openTest(t, testKey(t, 2), nil)
	if _, err := other.AppendAfter(ctx, sampleEntry(3), dep); !errors.Is(err, ErrInvalidEntry) {
		t.Fatalf("AppendAfter with another log's dependency: %v", err)
	}
	l.Close()
	res, err := Verify(context.Background(), path, testKey(t, 1).Public())
	if err != nil {
		t.Fatal(err)
	}
	// The high-water alert, its clearing, and entry 2.
	if res.Entries != 3 {
		t.Fatalf("verify: %d entries, want 3 (two alerts and one entry)", res.Entries)
	}
}

// Close commits held deferred entries at once.
func TestCloseCommitsDeferred(t *testing.T) {
	key := testKey(t, 1)
	l, path := openTest(t, key, func(c *Config) { c.DeferFor = time.Second })
	start := time.Now()
	var pend []*Pending
	for i := range 2 {
		p, err := l.AppendDeferred(t.Context(), sampleEntry(i))
		if err != nil {
			t.Fatal(err)
		}
		pend = append(pend, p)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if el := time.Since(start); el >= time.Second {
		t.Fatalf("Close took %v: it waited out DeferFor", el)
	}
	for i, p := range pend {
		if idx, err := p.Wait(t.Context()); err != nil || idx != uint64(i) {
			t.Fatalf("deferred %d after Close: %d, %v", i, idx, err)
		}
	}
	if res, err := Verify(context.Background(), path, key.Public()); err != nil || res.Entries != 2 {
		t.Fatalf("verify after Close: %+v, %v", res, err)
	}
}
