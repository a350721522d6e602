package audit

import (
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
