package audit

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"
)

// gatedClock is a Config.Now that, once armed, blocks each call (the
// committer reads the clock once per commit) until the test releases it, and
// reports the call on entered.
type gatedClock struct {
	armed   chan struct{} // closed: calls block
	entered chan struct{}
	release chan struct{}
	clock   *stepClock
}

func newGatedClock() *gatedClock {
	return &gatedClock{armed: make(chan struct{}), entered: make(chan struct{}, 16), release: make(chan struct{}, 16), clock: newStepClock()}
}

func (g *gatedClock) Now() time.Time {
	select {
	case <-g.armed:
		g.entered <- struct{}{}
		<-g.release
	default:
	}
	return g.clock.Now()
}

// queued polls until n ops wait in the queue.
func queued(t *testing.T, l *Log, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		l.q.mu.Lock()
		got := len(l.q.ops)
		l.q.mu.Unlock()
		if got >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d ops queued after 10s, want %d", got, n)
		}
		<-time.After(100 * time.Microsecond) // poll
	}
}

func recvWithin(t *testing.T, c <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-c:
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: not within 10s", what)
	}
}

// An appender that committed inline returns once its own entry is durable,
// even when work queued behind it after it took its batch: that work goes to
// the writer goroutine, not to an appender whose answer is ready.
func TestInlineCommitterReturnsWhenWorkQueuedDuringItsCommit(t *testing.T) {
	g := newGatedClock()
	l, _ := openTest(t, testKey(t, 1), func(c *Config) { c.Now = g.Now })
	close(g.armed)
	ctx := t.Context()

	aDone := make(chan error, 1)
	go func() { _, err := l.Append(ctx, sampleEntry(0)); aDone <- err }()
	recvWithin(t, g.entered, "A's inline commit") // A commits its own batch, B not yet queued

	bDone := make(chan error, 1)
	go func() { _, err := l.Append(ctx, sampleEntry(1)); bDone <- err }()
	queued(t, l, 1)
	g.release <- struct{}{} // A's commit ends

	recvWithin(t, g.entered, "B's commit") // B's commit starts, and is held
	select {
	case err := <-aDone:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		g.release <- struct{}{}
		<-bDone
		t.Fatal("A's entry was durable, but A stayed to commit B's batch")
	}
	g.release <- struct{}{}
	if err := <-bDone; err != nil {
		t.Fatal(err)
	}
	if s := l.Stats(); s.Entries != 2 || s.Commits != 2 {
		t.Fatalf("stats %+v, want two entries in two commits", s)
	}
}

// While an inline commit is stalled on the disk, an appender queued behind it
// still gets ctx.Err() when its ctx ends (its entry may yet go in), and the
// stalled appender gets its own answer once the commit ends.
func TestQueuedAppenderHonoursCtxBehindStalledInlineCommit(t *testing.T) {
	g := newGatedClock()
	l, _ := openTest(t, testKey(t, 1), func(c *Config) { c.Now = g.Now })
	close(g.armed)
	aDone := make(chan error, 1)
	go func() { _, err := l.Append(t.Context(), sampleEntry(0)); aDone <- err }()
	recvWithin(t, g.entered, "A's inline commit")

	bctx, cancel := context.WithCancel(t.Context())
	bDone := make(chan error, 1)
	go func() { _, err := l.Append(bctx, sampleEntry(1)); bDone <- err }()
	queued(t, l, 1)
	cancel()
	select {
	case err := <-bDone:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("queued Append with an ended ctx: %v, want context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a queued Append ignored its ctx while the commit ahead of it stalled")
	}
	g.release <- struct{}{} // A's commit ends
	if err := <-aDone; err != nil {
		t.Fatal(err)
	}
	// B's entry was queued, so it goes in with the next commit: "may or may not".
	recvWithin(t, g.entered, "B's commit on the writer goroutine")
	g.release <- struct{}{}
	waitCommits(t, l, 2)
	if s := l.Stats(); s.Entries != 2 {
		t.Fatalf("stats %+v, want both entries", s)
	}
}

// A commit that fails while an appender commits inline refuses every op of
// its batch (a deferred entry queued before it included), the entry that
// depends on the refused one is refused too, and nothing of them is durable.
func TestInlineCommitFailureRefusesBatchAndDependants(t *testing.T) {
	l, path := openTest(t, testKey(t, 1), func(c *Config) { c.DeferFor = time.Second })
	ctx := t.Context()
	dep, err := l.AppendDeferred(ctx, sampleEntry(0))
	if err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	if err := l.exec(ctx, func(context.Context, *txn) error { return boom }); !errors.Is(err, boom) {
		t.Fatalf("failing exec: %v, want boom", err)
	}
	if _, err := dep.Wait(ctx); !errors.Is(err, boom) {
		t.Fatalf("deferred entry in the failed batch: %v, want boom", err)
	}
	if _, err := l.AppendAfter(ctx, sampleEntry(1), dep); !errors.Is(err, ErrDependency) || !errors.Is(err, boom) {
		t.Fatalf("AppendAfter a refused dependency: %v, want a DependencyError wrapping boom", err)
	}
	idx, err := l.Append(ctx, sampleEntry(2))
	if err != nil || idx != 0 {
		t.Fatalf("append after the failure: %d, %v; want index 0 (nothing of the failed batch went in)", idx, err)
	}
	if cp, err := l.Checkpoint(ctx); err != nil || cp.Size != 1 {
		t.Fatalf("checkpoint %+v, %v; want size 1", cp, err)
	}
	l.Close()
	if res, err := Verify(context.Background(), path, testKey(t, 1).Public()); err != nil || res.Entries != 1 {
		t.Fatalf("verify: %+v, %v", res, err)
	}
}

// A Wait on a deferred entry while an inline commit runs finds a committer
// already there; the flush it asks for must not be lost when that committer
// leaves: the entry commits long before DeferFor.
func TestWaitDuringInlineCommitIsNotLost(t *testing.T) {
	g := newGatedClock()
	l, _ := openTest(t, testKey(t, 1), func(c *Config) { c.Now = g.Now; c.DeferFor = time.Second })
	close(g.armed)
	ctx := t.Context()
	start := time.Now()
	aDone := make(chan error, 1)
	go func() { _, err := l.Append(ctx, sampleEntry(0)); aDone <- err }()
	recvWithin(t, g.entered, "A's inline commit")
	p, err := l.AppendDeferred(ctx, sampleEntry(1))
	if err != nil {
		t.Fatal(err)
	}
	wDone := make(chan error, 1)
	go func() { _, err := p.Wait(ctx); wDone <- err }()
	// The Wait has asked for the flush once the queue says so.
	deadline := time.Now().Add(10 * time.Second)
	for {
		l.q.mu.Lock()
		f := l.q.flush
		l.q.mu.Unlock()
		if f {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("Wait did not ask for a flush within 10s")
		}
		<-time.After(100 * time.Microsecond)
	}
	g.release <- struct{}{}
	if err := <-aDone; err != nil {
		t.Fatal(err)
	}
	recvWithin(t, g.entered, "the deferred entry's commit")
	g.release <- struct{}{}
	if err := <-wDone; err != nil {
		t.Fatal(err)
	}
	if el := time.Since(start); el >= time.Second {
		t.Fatalf("deferred entry committed after %v: the flush was lost and DeferFor ran out", el)
	}
}

// Deferred entries whose DeferFor timer fires while Close drains are all
// answered, Close returns, and nothing blocks on the writer's wake-up.
func TestDeferTimerRacingClose(t *testing.T) {
	for round := range 30 {
		l, path := openTest(t, testKey(t, 1), func(c *Config) { c.DeferFor = time.Duration(1+round) * 10 * time.Microsecond; c.MaxBatch = 3 })
		var pend []*Pending
		for i := range 5 {
			p, err := l.AppendDeferred(t.Context(), sampleEntry(i))
			if err != nil {
				t.Fatal(err)
			}
			pend = append(pend, p)
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		for i, p := range pend {
			if idx, err := p.Wait(t.Context()); err != nil || idx != uint64(i) {
				t.Fatalf("round %d: deferred %d after Close: %d, %v", round, i, idx, err)
			}
		}
		if _, err := l.AppendDeferred(t.Context(), sampleEntry(9)); !errors.Is(err, ErrClosed) {
			t.Fatalf("AppendDeferred after Close: %v, want ErrClosed", err)
		}
		if res, err := Verify(context.Background(), path, testKey(t, 1).Public()); err != nil || res.Entries != 5 {
			t.Fatalf("round %d: verify %+v, %v", round, res, err)
		}
	}
}

// Checkpoint covers every entry whose Append has returned, whichever
// goroutine committed it.
func TestCheckpointCoversReturnedAppends(t *testing.T) {
	l, _ := openTest(t, testKey(t, 1), func(c *Config) { c.MaxBatch = 3 })
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for w := range 8 {
		wg.Go(func() {
			for i := range 20 {
				idx, err := l.Append(t.Context(), sampleEntry(w*100+i))
				if err == nil {
					var cp Checkpoint
					if cp, err = l.Checkpoint(t.Context()); err == nil && cp.Size <= idx {
						err = fmt.Errorf("checkpoint size %d after Append returned index %d", cp.Size, idx)
					}
				}
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// With MaxBatch 1 every deferred entry fills a batch: pairs appended with
// AppendDeferred and AppendAfter from many goroutines each commit, in order,
// one entry per commit, and every Wait is answered.
func TestMaxBatchOneDeferredPairs(t *testing.T) {
	l, _ := openTest(t, testKey(t, 1), func(c *Config) { c.MaxBatch = 1; c.DeferFor = time.Second })
	ctx := t.Context()
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for w := range 8 {
		wg.Go(func() {
			for i := range 10 {
				p, err := l.AppendDeferred(ctx, sampleEntry(w*10+i))
				if err != nil {
					errs <- err
					return
				}
				idx, err := l.AppendAfter(ctx, sampleEntry(w*10+i), p)
				if err != nil {
					errs <- err
					return
				}
				sidx, err := p.Wait(ctx)
				if err == nil && sidx >= idx {
					err = fmt.Errorf("dependency at %d not before its dependant at %d", sidx, idx)
				}
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if s := l.Stats(); s.Entries != 160 || s.Commits != 160 {
		t.Fatalf("stats %+v, want 160 entries in 160 commits", s)
	}
}

// Deferred entries alone, appended from many goroutines and never waited
// for, are all committed: by full batches and by the DeferFor timer, with
// no urgent append to carry them.
func TestDeferredEntriesAloneAllCommit(t *testing.T) {
	l, _ := openTest(t, testKey(t, 1), func(c *Config) { c.MaxBatch = 4; c.DeferFor = time.Millisecond })
	var wg sync.WaitGroup
	for w := range 6 {
		wg.Go(func() {
			for i := range 15 {
				if _, err := l.AppendDeferred(t.Context(), sampleEntry(w*15+i)); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	deadline := time.Now().Add(10 * time.Second)
	for l.Stats().Entries < 90 {
		if time.Now().After(deadline) {
			t.Fatalf("stats %+v after 10s: deferred entries left uncommitted", l.Stats())
		}
		<-time.After(time.Millisecond)
	}
}

// An appender that committed its own entry inline reports that entry, not
// ctx.Err(), when its ctx ended during the commit: the outcome is known.
func TestInlineCommitterReportsItsCommitDespiteCtx(t *testing.T) {
	g := newGatedClock()
	l, _ := openTest(t, testKey(t, 1), func(c *Config) { c.Now = g.Now })
	close(g.armed)
	ctx, cancel := context.WithCancel(t.Context())
	type result struct {
		idx uint64
		err error
	}
	done := make(chan result, 1)
	go func() { idx, err := l.Append(ctx, sampleEntry(0)); done <- result{idx, err} }()
	recvWithin(t, g.entered, "the inline commit")
	cancel()
	g.release <- struct{}{}
	r := <-done
	if r.err != nil || r.idx != 0 {
		t.Fatalf("inline Append whose ctx ended during its commit: %d, %v; want index 0, its entry being durable", r.idx, r.err)
	}
}

// The same for a Wait that commits a deferred entry inline.
func TestInlineWaitReportsItsCommitDespiteCtx(t *testing.T) {
	g := newGatedClock()
	l, _ := openTest(t, testKey(t, 1), func(c *Config) { c.Now = g.Now; c.DeferFor = time.Second })
	p, err := l.AppendDeferred(t.Context(), sampleEntry(0))
	if err != nil {
		t.Fatal(err)
	}
	close(g.armed)
	ctx, cancel := context.WithCancel(t.Context())
	type result struct {
		idx uint64
		err error
	}
	done := make(chan result, 1)
	go func() { idx, err := p.Wait(ctx); done <- result{idx, err} }()
	recvWithin(t, g.entered, "the inline commit")
	cancel()
	g.release <- struct{}{}
	r := <-done
	if r.err != nil || r.idx != 0 {
		t.Fatalf("inline Wait whose ctx ended during its commit: %d, %v; want index 0", r.idx, r.err)
	}
}
