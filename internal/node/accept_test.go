package node

import (
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/treaty-dev/treaty/internal/wire"
)

// statusRecorder records the statuses written to it; safe for the timer's
// goroutine and the test's.
type statusRecorder struct {
	mu       sync.Mutex
	h        http.Header
	statuses []int
}

func (r *statusRecorder) Header() http.Header         { return r.h }
func (r *statusRecorder) Write(b []byte) (int, error) { return len(b), nil }
func (r *statusRecorder) WriteHeader(code int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.statuses = append(r.statuses, code)
}

func (r *statusRecorder) got() []int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]int(nil), r.statuses...)
}

func acceptFor(t *testing.T, announce string) (*inbound, *statusRecorder) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, "https://peer/call", nil)
	if err != nil {
		t.Fatal(err)
	}
	if announce != "" {
		req.Header.Set(wire.HeaderFirstByteWithin, announce)
	}
	rec := &statusRecorder{h: http.Header{}}
	return &inbound{w: rec, r: req}, rec
}

// A caller that does not announce its time_to_first_byte (an older node) is
// told at once that its call was accepted.
func TestAcceptWithoutAnnouncementIsImmediate(t *testing.T) {
	in, rec := acceptFor(t, "")
	settle := in.acceptCall()
	if got := rec.got(); len(got) != 1 || got[0] != http.StatusEarlyHints {
		t.Fatalf("statuses before the backend ran = %v, want [103]", got)
	}
	settle()
}

// A backend that answers within the delay sends no 103: the answer is the
// first byte. Settled later than the delay (a descheduled test), a 103 may
// have gone, and that is right too.
func TestQuickBackendSendsNo103(t *testing.T) {
	in, rec := acceptFor(t, "10000") // 10 s: wire.MaxAcceptDelay
	start := time.Now()
	settle := in.acceptCall()
	settle()
	if time.Since(start) >= wire.MaxAcceptDelay {
		t.Skip("descheduled past the delay; nothing to judge")
	}
	// After settle the timer either has written or never will.
	if got := rec.got(); len(got) != 0 {
		t.Fatalf("statuses = %v, want none after a quick backend", got)
	}
}

// A backend still running after the delay gets exactly one 103, and nothing
// is written by the timer once the call is settled.
func TestSlowBackendGets103(t *testing.T) {
	in, rec := acceptFor(t, "1") // 1 ms: a delay of 100 µs
	settle := in.acceptCall()
	deadline := time.Now().Add(10 * time.Second)
	for len(rec.got()) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no 103 within 10 s of a running backend")
		}
		time.Sleep(time.Millisecond)
	}
	settle()
	if got := rec.got(); len(got) != 1 || got[0] != http.StatusEarlyHints {
		t.Fatalf("statuses = %v, want [103]", got)
	}
}

// blockingRecorder holds the timer's 103 inside WriteHeader until released,
// as a congested connection would.
type blockingRecorder struct {
	h       http.Header
	entered chan struct{}
	release chan struct{}
	mu      sync.Mutex
	inside  bool
	writes  int
}

func (r *blockingRecorder) Header() http.Header         { return r.h }
func (r *blockingRecorder) Write(b []byte) (int, error) { return len(b), nil }
func (r *blockingRecorder) WriteHeader(int) {
	r.mu.Lock()
	r.inside = true
	r.writes++
	r.mu.Unlock()
	r.entered <- struct{}{}
	<-r.release
	r.mu.Lock()
	r.inside = false
	r.mu.Unlock()
}

func (r *blockingRecorder) state() (inside bool, writes int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.inside, r.writes
}

// settle called while the timer is writing the 103 returns only after that
// write: the handler never writes its answer (or touches the header map)
// beside the timer's goroutine.
func TestSettleWaitsForAn103InFlight(t *testing.T) {
	req, err := http.NewRequest(http.MethodPost, "https://peer/call", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set(wire.HeaderFirstByteWithin, "1") // 100 µs
	rec := &blockingRecorder{h: http.Header{}, entered: make(chan struct{}, 1), release: make(chan struct{})}
	in := &inbound{w: rec, r: req}
	settle := in.acceptCall()
	select {
	case <-rec.entered:
	case <-time.After(10 * time.Second):
		t.Fatal("no 103 within 10 s of a running backend")
	}
	settled := make(chan struct{})
	go func() { settle(); close(settled) }()
	select {
	case <-settled:
		t.Fatal("settle returned while the 103 was still being written")
	case <-time.After(50 * time.Millisecond):
		// settle still waits: a settle that did not wait for the timer's
		// write would have returned at once.
	}
	close(rec.release)
	<-settled
	if inside, writes := rec.state(); inside || writes != 1 {
		t.Fatalf("after settle: writing %v, %d writes; want done and exactly one 103", inside, writes)
	}
	settle() // a second settle is harmless
	if _, writes := rec.state(); writes != 1 {
		t.Fatalf("%d writes after a second settle, want 1", writes)
	}
}
