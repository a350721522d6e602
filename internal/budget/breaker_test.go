package budget

import (
	"errors"
	"testing"
	"time"
)

func TestBreakerLifecycle(t *testing.T) {
	t.Parallel()
	p := peerID(t, 30)
	l := newLimiter(t, Config{Breaker: BreakerConfig{Window: 10 * time.Second, MinCalls: 4, FailureRatio: 0.5, Cooldown: 5 * time.Second}})
	b := l.Breaker(p)
	if l.Breaker(p) != b {
		t.Fatal("Breaker returned a second breaker for the same peer")
	}
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	call := func(ok bool, d time.Duration) error { return callEnds(b, ok, at(d)) }

	// Three calls, two failures: below MinCalls, stays closed.
	for i, ok := range []bool{true, false, false} {
		if err := call(ok, time.Duration(i)*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	if s := b.State(at(3 * time.Second)); s != StateClosed {
		t.Fatalf("state after 3 calls = %s", s)
	}
	// The fourth (2 of 4 = 0.5 failed when it fails: 3 of 4) opens it.
	if err := call(false, 3*time.Second); err != nil {
		t.Fatal(err)
	}
	if s := b.State(at(3 * time.Second)); s != StateOpen || l.BreakerState(p, at(3*time.Second)) != StateOpen {
		t.Fatalf("state = %s, want open", s)
	}
	_, err := b.Allow(at(4 * time.Second))
	e := mustExceed(t, err, BudgetBreaker)
	if !errors.Is(err, ErrBreakerOpen) || e.ResetIn != 4*time.Second || e.Peer != p {
		t.Fatalf("refusal = %+v", e)
	}
	if st := l.Breakers(at(4 * time.Second)); len(st) != 1 || st[0].State != StateOpen || st[0].ResetIn != 4*time.Second || st[0].Failures != 3 {
		t.Fatalf("Breakers = %+v", st)
	}

	// After the cooldown: half-open, one probe goes, the next waits.
	if s := b.State(at(8 * time.Second)); s != StateHalfOpen {
		t.Fatalf("state after cooldown = %s", s)
	}
	probe, err := b.Allow(at(8 * time.Second))
	if err != nil {
		t.Fatalf("probe refused: %v", err)
	}
	mustExceed(t, allowErr(b, at(8*time.Second)), BudgetBreaker)
	// The probe fails: open again, for a full cooldown from now.
	probe.Record(false, at(9*time.Second))
	if e := mustExceed(t, allowErr(b, at(10*time.Second)), BudgetBreaker); e.ResetIn != 4*time.Second {
		t.Fatalf("reopened ResetIn = %v", e.ResetIn)
	}
	// Next probe succeeds: closed, with a clean window.
	if err := call(true, 14*time.Second); err != nil {
		t.Fatal(err)
	}
	if s := b.State(at(14 * time.Second)); s != StateClosed {
		t.Fatalf("state after good probe = %s", s)
	}
	if st := b.Status(at(14 * time.Second)); st.Calls != 0 {
		t.Fatalf("window not cleared on close: %+v", st)
	}
	// A result arriving while open is ignored: slow was let through while
	// closed, four failures opened the breaker, then slow succeeded.
	slow, err := b.Allow(at(15 * time.Second))
	if err != nil {
		t.Fatal(err)
	}
	for i := range 4 {
		if err := call(false, 15*time.Second+time.Duration(i)); err != nil {
			t.Fatal(err)
		}
	}
	slow.Record(true, at(16*time.Second))
	if s := b.State(at(16 * time.Second)); s != StateOpen {
		t.Fatalf("state = %s", s)
	}
}

// callEnds is one call that Allow lets through and that ends at now.
func callEnds(b *Breaker, ok bool, now time.Time) error {
	p, err := b.Allow(now)
	if err != nil {
		return err
	}
	p.Record(ok, now)
	return nil
}

func allowErr(b *Breaker, now time.Time) error {
	_, err := b.Allow(now)
	return err
}

func TestBreakerWindowForgets(t *testing.T) {
	t.Parallel()
	l := newLimiter(t, Config{Breaker: BreakerConfig{Window: 10 * time.Second, MinCalls: 4, FailureRatio: 0.5}})
	b := l.Breaker(peerID(t, 31))
	// Failures spread wider than the window never add up to MinCalls.
	for i := range 20 {
		if err := callEnds(b, false, t0.Add(time.Duration(i)*4*time.Second)); err != nil {
			t.Fatal(err)
		}
		if s := b.State(t0.Add(time.Duration(i) * 4 * time.Second)); s != StateClosed {
			t.Fatalf("opened at call %d on failures outside one window", i)
		}
	}
	// Successes keep the ratio down.
	b2 := l.Breaker(peerID(t, 32))
	for i := range 100 {
		if err := callEnds(b2, i%3 != 2, t0.Add(time.Duration(i)*time.Millisecond)); err != nil {
			t.Fatal(err)
		}
	}
	if s := b2.State(t0.Add(time.Second)); s != StateClosed {
		t.Fatalf("opened at a third failures with ratio 0.5: %s", s)
	}
}

func TestBreakerLostProbe(t *testing.T) {
	t.Parallel()
	l := newLimiter(t, Config{Breaker: BreakerConfig{MinCalls: 1, Cooldown: time.Second, Probes: 2}})
	b := l.Breaker(peerID(t, 33))
	if err := callEnds(b, false, t0); err != nil {
		t.Fatal(err)
	}
	var lost []Pass
	for _, d := range []time.Duration{time.Second, time.Second} {
		p, err := b.Allow(t0.Add(d))
		if err != nil {
			t.Fatalf("probe refused: %v", err)
		}
		lost = append(lost, p)
	}
	mustExceed(t, allowErr(b, t0.Add(1500*time.Millisecond)), BudgetBreaker)
	// Neither probe reported; a cooldown later new probes may go.
	p, err := b.Allow(t0.Add(2 * time.Second))
	if err != nil {
		t.Fatalf("breaker wedged by lost probes: %v", err)
	}
	// Two successes are needed to close; the lost probes' late ones do not count.
	for _, l := range lost {
		l.Record(true, t0.Add(2*time.Second))
	}
	p.Record(true, t0.Add(2*time.Second))
	if s := b.State(t0.Add(2 * time.Second)); s != StateHalfOpen {
		t.Fatalf("closed after 1 of 2 probes: %s", s)
	}
	if err := callEnds(b, true, t0.Add(2*time.Second)); err != nil {
		t.Fatal(err)
	}
	if s := b.State(t0.Add(2 * time.Second)); s != StateClosed {
		t.Fatalf("not closed after 2 probes: %s", s)
	}
}

func TestBreakerDisabledAndUpdate(t *testing.T) {
	t.Parallel()
	p := peerID(t, 34)
	l := newLimiter(t, Config{Breaker: BreakerConfig{MinCalls: 1}})
	b := l.Breaker(p)
	if err := callEnds(b, false, t0); err != nil {
		t.Fatal(err)
	}
	if b.State(t0) != StateOpen {
		t.Fatal("did not open")
	}
	if err := l.Update(Config{Breaker: BreakerConfig{Disabled: true}}); err != nil {
		t.Fatal(err)
	}
	for range 10 {
		if err := callEnds(b, false, t0); err != nil {
			t.Fatal(err)
		}
	}
	if err := allowErr(b, t0); err != nil || b.State(t0) != StateClosed {
		t.Fatalf("disabled breaker refused or open: %v %s", err, b.State(t0))
	}
	if l.BreakerState(peerID(t, 35), t0) != StateClosed || len(l.Breakers(t0)) != 1 {
		t.Fatal("BreakerState created a breaker or reported one for an unknown peer")
	}
}

// A call that never reached the peer gives its half-open probe back without
// closing the breaker.
func TestBreakerReleaseKeepsHalfOpen(t *testing.T) {
	t.Parallel()
	l, err := New(Config{Breaker: BreakerConfig{MinCalls: 1, FailureRatio: 0.5, Cooldown: time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Unix(1000, 0)
	b := l.Breaker("p")
	if err := callEnds(b, false, t0); err != nil { // opens
		t.Fatal(err)
	}
	t1 := t0.Add(2 * time.Second)
	probe, err := b.Allow(t1) // half-open: the one probe
	if err != nil {
		t.Fatalf("probe refused: %v", err)
	}
	probe.Release()
	if got := b.State(t1); got != "half-open" {
		t.Fatalf("state after Release = %s, want half-open", got)
	}
	if err := allowErr(b, t1); err != nil {
		t.Fatalf("released probe not available again: %v", err)
	}
}

// A slow call let through while the breaker was closed, ending once it has
// opened and gone half-open, is not the probe: its success does not close
// the breaker, its failure does not reopen it, and its Release does not hand
// back the probe's slot. Only the probe's own result decides.
func TestBreakerStaleResultIsNotTheProbe(t *testing.T) {
	t.Parallel()
	l := newLimiter(t, Config{Breaker: BreakerConfig{MinCalls: 1, FailureRatio: 0.5, Cooldown: time.Second}})
	b := l.Breaker(peerID(t, 36))
	slow := make([]Pass, 3)
	for i := range slow {
		p, err := b.Allow(t0)
		if err != nil {
			t.Fatal(err)
		}
		slow[i] = p
	}
	if err := callEnds(b, false, t0); err != nil { // opens
		t.Fatal(err)
	}
	t1 := t0.Add(2 * time.Second)
	probe, err := b.Allow(t1)
	if err != nil {
		t.Fatalf("probe refused: %v", err)
	}
	slow[0].Record(true, t1)
	if s := b.State(t1); s != StateHalfOpen {
		t.Fatalf("a call allowed before the breaker opened closed it: %s", s)
	}
	slow[1].Record(false, t1)
	if s := b.State(t1); s != StateHalfOpen {
		t.Fatalf("a call allowed before the breaker opened reopened it: %s", s)
	}
	slow[2].Release()
	mustExceed(t, allowErr(b, t1), BudgetBreaker) // still the one probe out
	probe.Record(true, t1)
	if s := b.State(t1); s != StateClosed {
		t.Fatalf("the probe's success left the breaker %s", s)
	}
	// Zero Pass: reports nothing.
	Pass{}.Record(false, t1)
	Pass{}.Release()
}
