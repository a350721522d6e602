package audit

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"
)

// Every way in (Append, AppendDeferred with AppendAfter, AppendAsync with
// Wait), from many goroutines at once and with a small MaxBatch, moves the
// committer between appenders and the writer goroutine. Every acknowledged
// entry must be in the log once, in an order that respects AppendAfter, and
// Close, racing the last appenders, must leave nothing unanswered.
func TestCommitterHandOffsUnderMixedLoad(t *testing.T) {
	key := testKey(t, 1)
	l, path := openTest(t, key, func(c *Config) { c.MaxBatch = 4; c.DeferFor = 5 * time.Millisecond })
	const workers, each = 24, 30
	var (
		mu    sync.Mutex
		acked = map[uint64]string{}
		after = map[string]string{} // completed entry -> the sent entry it follows
	)
	note := func(idx uint64, name string) error {
		mu.Lock()
		defer mu.Unlock()
		if prev, dup := acked[idx]; dup {
			return fmt.Errorf("index %d given to %s and %s", idx, prev, name)
		}
		acked[idx] = name
		return nil
	}
	ctx := t.Context()
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				name := fmt.Sprintf("w%d-%d", w, i)
				e := sampleEntry(i)
				e.Capability = name
				var err error
				switch (w + i) % 3 {
				case 0:
					var idx uint64
					if idx, err = l.Append(ctx, e); err == nil {
						err = note(idx, name)
					}
				case 1:
					sent := sampleEntry(i)
					sent.Capability = name + "-sent"
					var p *Pending
					if p, err = l.AppendDeferred(ctx, sent); err != nil {
						break
					}
					var idx uint64
					if idx, err = l.AppendAfter(ctx, e, p); err != nil {
						break
					}
					var sidx uint64
					if sidx, err = p.Wait(ctx); err != nil {
						break
					}
					if sidx >= idx {
						err = fmt.Errorf("%s-sent at %d is not before %s at %d", name, sidx, name, idx)
						break
					}
					if err = note(idx, name); err == nil {
						err = note(sidx, name+"-sent")
					}
					mu.Lock()
					after[name] = name + "-sent"
					mu.Unlock()
				case 2:
					var p *Pending
					if p, err = l.AppendAsync(ctx, e); err != nil {
						break
					}
					var idx uint64
					if idx, err = p.Wait(ctx); err == nil {
						err = note(idx, name)
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
	for idx, name := range acked {
		if e := mustGet(t, l, int(idx)); e.Capability != name {
			t.Fatalf("entry %d holds %q, appender had %q", idx, e.Capability, name)
		}
	}
	st := l.Stats()
	if st.Entries != uint64(len(acked)) {
		t.Fatalf("stats %+v, acknowledged %d", st, len(acked))
	}
	if st.Commits >= st.Entries {
		t.Fatalf("stats %+v: no batching under load", st)
	}
	res, err := Verify(ctx, path, key.Public())
	if err != nil || res.Entries != uint64(len(acked)) {
		t.Fatalf("verify %v, %v; acknowledged %d", res, err, len(acked))
	}
}

// Close racing appenders answers every one of them: committed, or ErrClosed.
func TestCloseAnswersRacingAppenders(t *testing.T) {
	for round := range 20 {
		l, _ := openTest(t, testKey(t, 1), func(c *Config) { c.MaxBatch = 2 })
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		var wg sync.WaitGroup
		for w := range 8 {
			wg.Go(func() {
				for i := range 5 {
					e := sampleEntry(i)
					e.Capability = fmt.Sprintf("r%d-w%d-%d", round, w, i)
					var err error
					if w%2 == 0 {
						_, err = l.Append(ctx, e)
					} else {
						var p *Pending
						if p, err = l.AppendDeferred(ctx, e); err == nil {
							_, err = p.Wait(ctx)
						}
					}
					if err != nil && !errors.Is(err, ErrClosed) {
						t.Errorf("round %d: %v", round, err)
						return
					}
				}
			})
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		wg.Wait() // a hang here is an appender nobody answered
		cancel()
	}
}

// The committer yields before it takes a batch only while appends find a
// commit under way: a lone appender never marks the log contended, one that
// queues behind a commit does, and the mark lapses after contendedFor.
func TestContendedOnlyWhileAppendsWait(t *testing.T) {
	l, _ := openTest(t, testKey(t, 1), nil)
	ctx := t.Context()
	for i := range 3 {
		if _, err := l.Append(ctx, sampleEntry(i)); err != nil {
			t.Fatal(err)
		}
	}
	if l.q.contended() {
		t.Fatal("sequential appends marked the log contended")
	}

	// Become the committer without committing yet, as an appender does at
	// the moment it takes the lead.
	p, err := prepare(sampleEntry(3))
	if err != nil {
		t.Fatal(err)
	}
	own := &op{entry: p, done: make(chan opResult, 1)}
	if lead, err := l.add(ctx, own); err != nil || !lead {
		t.Fatalf("add on an idle log: lead %v, %v", lead, err)
	}
	queued := make(chan error, 1)
	go func() { _, err := l.Append(ctx, sampleEntry(4)); queued <- err }()
	deadline := time.Now().Add(10 * time.Second)
	for !l.q.contended() {
		if time.Now().After(deadline) {
			t.Fatal("an append queued behind a commit did not mark the log contended")
		}
		runtime.Gosched()
	}
	before := l.Stats().Commits
	l.lead(own)
	if err := <-queued; err != nil {
		t.Fatal(err)
	}
	if r := <-own.done; r.err != nil {
		t.Fatal(r.err)
	}
	if got := l.Stats().Commits - before; got != 1 {
		t.Fatalf("the committer and the appender behind it took %d commits, want 1", got)
	}

	l.q.contendedAt.Store(int64(time.Since(l.q.epoch) - contendedFor - time.Millisecond))
	if l.q.contended() {
		t.Fatal("the mark did not lapse after contendedFor")
	}
}
