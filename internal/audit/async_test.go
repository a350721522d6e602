package audit

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"
)

// AppendAsync returns before the commit; Wait gives the index once durable;
// entries appended after it come after it in the log; the log verifies.
func TestAppendAsyncOrderAndWait(t *testing.T) {
	key := testKey(t, 1)
	l, path := openTest(t, key, nil)
	ctx := t.Context()
	var pend []*Pending
	for i := range 50 {
		p, err := l.AppendAsync(ctx, sampleEntry(i))
		if err != nil {
			t.Fatal(err)
		}
		pend = append(pend, p)
	}
	last, err := l.Append(ctx, sampleEntry(50))
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range pend {
		idx, err := p.Wait(ctx)
		if err != nil || idx != uint64(i) {
			t.Fatalf("pending %d: index %d, %v", i, idx, err)
		}
		again, err := p.Wait(ctx)
		if err != nil || again != idx {
			t.Fatalf("second Wait: %d, %v", again, err)
		}
		if _, err := l.Get(ctx, idx); err != nil {
			t.Fatalf("entry %d not readable after Wait: %v", idx, err)
		}
	}
	if last != 50 {
		t.Fatalf("entry appended after 50 async ones has index %d", last)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if res, err := Verify(context.Background(), path, key.Public()); err != nil || res.Entries != 51 {
		t.Fatalf("verify: %v %v", res, err)
	}
}

// Over the high-water mark AppendAsync refuses at once, before anything is
// handed to the writer; an entry taken just as the mark is reached fails in
// Wait (the caller then withholds what depended on it); a Wait cut short by
// its context reports that and can be repeated.
func TestAppendAsyncHighWaterAndCancel(t *testing.T) {
	var free atomic.Uint64
	free.Store(10 << 30)
	l, _ := openTest(t, testKey(t, 1), func(c *Config) {
		c.MinFreeBytes = 1 << 30
		c.SpaceCheckInterval = time.Microsecond
		c.Statfs = func(string) (DiskSpace, error) { return DiskSpace{Free: free.Load(), Total: 100 << 30}, nil }
	})
	ctx := t.Context()
	p, err := l.AppendAsync(ctx, sampleEntry(0))
	if err != nil {
		t.Fatal(err)
	}
	done, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := p.Wait(done); !errors.Is(err, context.Canceled) {
		// The commit may already be in; then Wait reports it, which is fine.
		if err != nil {
			t.Fatalf("Wait with a cancelled context: %v", err)
		}
	}
	if _, err := p.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	free.Store(512 << 20)
	// The writer learns of the mark at its next commit: an entry handed over
	// before then is taken, and its Wait reports the refusal.
	late, err := l.AppendAsync(ctx, sampleEntry(1))
	if err != nil {
		t.Fatalf("AppendAsync before the writer saw the mark: %v", err)
	}
	if _, err := late.Wait(ctx); !errors.Is(err, ErrHighWater) {
		t.Fatalf("Wait of an entry taken as the mark was reached: %v, want ErrHighWater", err)
	}
	if _, err := l.Append(ctx, sampleEntry(1)); !errors.Is(err, ErrHighWater) {
		t.Fatalf("append under the mark: %v", err)
	}
	var hw *HighWaterError
	if _, err := l.AppendAsync(ctx, sampleEntry(2)); !errors.As(err, &hw) {
		t.Fatalf("AppendAsync under the mark: %v, want a *HighWaterError at once", err)
	}
}
