package budget

import (
	"cmp"
	"slices"
	"sync"
	"time"
)

// Breaker states, as State returns them.
const (
	StateClosed   = "closed"
	StateOpen     = "open"
	StateHalfOpen = "half-open"
)

// breakerBuckets is how many slices the rolling failure window is cut into.
const breakerBuckets = 10

type bucket struct {
	slot     int64
	ok, fail int
}

// Breaker is one peer's circuit breaker for outbound calls, safe for concurrent use.
//
// Closed, it lets every call through and counts outcomes over a rolling
// BreakerConfig.Window; when at least MinCalls ended there and the share of failures
// reaches FailureRatio, it opens. Open, it refuses every call until Cooldown has
// passed, then it is half-open: it lets Probes calls through; that many successes
// close it, one failure opens it again. A probe that never reports back is forgotten
// after another Cooldown, so a lost Record cannot wedge the breaker.
//
// Call Allow before the call and, once after it, Record or Release on the Pass
// it returned, with the same clock. A result counts only in the period (closed,
// open, half-open) in which its call was allowed: a slow call let through
// while closed that ends after the breaker opened and went half-open is not
// the probe, and neither closes nor reopens it.
type Breaker struct {
	peer string

	mu       sync.Mutex
	cfg      BreakerConfig // filled
	state    string
	buckets  [breakerBuckets]bucket
	openedAt time.Time
	probes   int       // probes let through in this half-open period
	probeOK  int       // of which succeeded
	probeAt  time.Time // start of this half-open period
	period   uint64    // counts state changes (and lost-probe restarts); a Pass is of one
}

// Pass is one call that Allow let through; report its end with Record or
// Release, once. The zero Pass reports nothing.
type Pass struct {
	b      *Breaker
	period uint64
}

// Record reports how the call ended.
func (p Pass) Record(success bool, now time.Time) {
	if p.b != nil {
		p.b.record(p.period, success, now)
	}
}

// Release reports a call that never reached the peer (refused locally, or
// given up by the caller): it records nothing, so such a call neither closes a
// half-open breaker nor counts against the peer, and a probe is handed back.
func (p Pass) Release() {
	if p.b != nil {
		p.b.release(p.period)
	}
}

// Breaker returns peer's breaker, creating it closed on first use.
func (l *Limiter) Breaker(peer string) *Breaker {
	l.mu.RLock()
	b := l.breakers[peer]
	l.mu.RUnlock()
	if b != nil {
		return b
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if b = l.breakers[peer]; b == nil {
		b = &Breaker{peer: peer, cfg: l.cfg.Breaker.filled(), state: StateClosed}
		l.breakers[peer] = b
	}
	return b
}

// BreakerState returns peer's breaker state at now ("closed" for a peer never called);
// for `treaty peer ls`. It creates nothing.
func (l *Limiter) BreakerState(peer string, now time.Time) string {
	l.mu.RLock()
	b := l.breakers[peer]
	l.mu.RUnlock()
	if b == nil {
		return StateClosed
	}
	return b.State(now)
}

// BreakerStatus is one breaker as `treaty peer ls` shows it.
type BreakerStatus struct {
	Peer     string        `json:"peer"`
	State    string        `json:"state"`
	Calls    int           `json:"calls"`    // ended in the current window
	Failures int           `json:"failures"` // of those
	ResetIn  time.Duration `json:"reset_in_ns"`
}

// Breakers returns every breaker's status, sorted by peer.
func (l *Limiter) Breakers(now time.Time) []BreakerStatus {
	l.mu.RLock()
	out := make([]BreakerStatus, 0, len(l.breakers))
	for _, b := range l.breakers {
		out = append(out, b.Status(now))
	}
	l.mu.RUnlock()
	slices.SortFunc(out, func(a, b BreakerStatus) int { return cmp.Compare(a.Peer, b.Peer) })
	return out
}

func (b *Breaker) setConfig(c BreakerConfig) {
	b.mu.Lock()
	b.cfg = c
	if c.Disabled {
		b.closeLocked()
	}
	b.mu.Unlock()
}

func (b *Breaker) width() int64 {
	return max(int64(b.cfg.Window)/breakerBuckets, 1)
}

func (b *Breaker) slot(now time.Time) int64 { return now.UnixNano() / b.width() }

func (b *Breaker) totalsLocked(now time.Time) (calls, fails int) {
	cur := b.slot(now)
	for _, k := range b.buckets {
		if k.slot > cur-breakerBuckets && k.slot <= cur {
			calls += k.ok + k.fail
			fails += k.fail
		}
	}
	return calls, fails
}

func (b *Breaker) closeLocked() {
	b.period++
	b.state = StateClosed
	b.buckets = [breakerBuckets]bucket{}
	b.probes, b.probeOK = 0, 0
}

func (b *Breaker) openLocked(now time.Time) {
	b.period++
	b.state = StateOpen
	b.openedAt = now
	b.probes, b.probeOK = 0, 0
}

func (b *Breaker) refusal(resetIn time.Duration) *Exceeded {
	return &Exceeded{Budget: BudgetBreaker, Limit: b.cfg.String(), ResetIn: max(resetIn, 0), Peer: b.peer}
}

// Allow reports whether a call to the peer may start at now and returns its
// Pass; when not, the error is an *Exceeded with Budget "breaker" (errors.Is
// ErrBreakerOpen) and ResetIn until a probe may go.
func (b *Breaker) Allow(now time.Time) (Pass, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.cfg.Disabled {
		return Pass{b: b, period: b.period}, nil
	}
	switch b.state {
	case StateOpen:
		until := b.openedAt.Add(b.cfg.Cooldown)
		if now.Before(until) {
			return Pass{}, b.refusal(until.Sub(now))
		}
		b.period++
		b.state, b.probes, b.probeOK, b.probeAt = StateHalfOpen, 0, 0, now
		fallthrough
	case StateHalfOpen:
		if b.probes > 0 && !now.Before(b.probeAt.Add(b.cfg.Cooldown)) {
			b.period++ // the lost probes' results no longer count
			b.probes, b.probeOK, b.probeAt = 0, 0, now
		}
		if b.probes >= b.cfg.Probes {
			return Pass{}, b.refusal(b.probeAt.Add(b.cfg.Cooldown).Sub(now))
		}
		b.probes++
	}
	return Pass{b: b, period: b.period}, nil
}

// record is Pass.Record: a result from another period than the current one
// (a call allowed before the breaker opened, or a lost probe) is ignored.
func (b *Breaker) record(period uint64, success bool, now time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.cfg.Disabled || period != b.period {
		return
	}
	switch b.state {
	case StateClosed:
		cur := b.slot(now)
		k := &b.buckets[((cur%breakerBuckets)+breakerBuckets)%breakerBuckets]
		if k.slot != cur {
			*k = bucket{slot: cur}
		}
		if success {
			k.ok++
			return
		}
		k.fail++
		calls, fails := b.totalsLocked(now)
		if calls >= b.cfg.MinCalls && float64(fails) >= b.cfg.FailureRatio*float64(calls) {
			b.openLocked(now)
		}
	case StateHalfOpen:
		if !success {
			b.openLocked(now)
			return
		}
		b.probeOK++
		if b.probeOK >= b.cfg.Probes {
			b.closeLocked()
		}
	}
}

// release is Pass.Release: a probe of the current half-open period is handed back.
func (b *Breaker) release(period uint64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if period == b.period && b.state == StateHalfOpen && b.probes > 0 {
		b.probes--
	}
}

// State returns "closed", "open" or "half-open" at now (open turns half-open once
// the cooldown has passed).
func (b *Breaker) State(now time.Time) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.stateLocked(now)
}

func (b *Breaker) stateLocked(now time.Time) string {
	if b.state == StateOpen && !now.Before(b.openedAt.Add(b.cfg.Cooldown)) {
		return StateHalfOpen
	}
	return b.state
}

// Status returns the breaker's state and window counts at now.
func (b *Breaker) Status(now time.Time) BreakerStatus {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := BreakerStatus{Peer: b.peer, State: b.stateLocked(now)}
	s.Calls, s.Failures = b.totalsLocked(now)
	if s.State == StateOpen {
		s.ResetIn = b.openedAt.Add(b.cfg.Cooldown).Sub(now)
	}
	return s
}

// renamed returns a breaker for peer in b's state, for a rotated key.
func (b *Breaker) renamed(peer string) *Breaker {
	b.mu.Lock()
	defer b.mu.Unlock()
	return &Breaker{peer: peer, cfg: b.cfg, state: b.state, buckets: b.buckets,
		openedAt: b.openedAt, probes: b.probes, probeOK: b.probeOK, probeAt: b.probeAt, period: b.period}
}
