package budget

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"sync"
	"time"
)

// tokenEps and resetSlackNs absorb float rounding, so a call at exactly the ResetIn
// a refusal named is let through: ResetIn is rounded to the nanosecond with 1e-3 ns
// of slack, which at the highest rate (1e6/s) is 1e-6 of a token.
const (
	tokenEps     = 1e-6
	resetSlackNs = 1e-3
)

// Limiter enforces a Config. It is safe for concurrent use. Counters exist per Key
// actually used (peer-wide per peer and direction; per capability only where a rule
// names the capability), so memory grows with admitted peers, not with what peers
// send. Acquire on a known key does not allocate.
type Limiter struct {
	mu       sync.RWMutex
	cfg      Config
	rules    map[Key]Limit        // by (Peer or "*", Capability, Dir or Both)
	caps     map[string]struct{}  // capabilities named by some rule
	peers    map[string]*counters // hashed once per call: peer keys are long
	breakers map[string]*Breaker
}

// counters are one peer's entries.
type counters struct {
	wide [2]*entry // peer-wide, by direction (In, Out)
	caps map[capKey]*entry
}

type capKey struct {
	capability string
	dir        Dir
}

func (c *counters) all(yield func(*entry) bool) {
	for _, e := range c.wide {
		if e != nil && !yield(e) {
			return
		}
	}
	for _, e := range c.caps {
		if !yield(e) {
			return
		}
	}
}

// entry is the counters of one Key. Its fields are guarded by mu.
type entry struct {
	mu  sync.Mutex
	key Key
	lim Limit  // filled
	src string // "default", "rule", or "" when nothing limits this key

	tokens float64
	last   time.Time
	primed bool // tokens is meaningful; false until the first check under a Rate

	inflight int
	// unnamed: no rule names this capability any more; the entry is kept
	// only while calls are in flight on it, so a rule restored meanwhile
	// still counts them.
	unnamed bool

	winEnd            time.Time // end of the current bytes window; zero before first use
	bytesIn, bytesOut int64

	costEnd time.Time
	cost    float64

	// into is the entry these counters were merged into by a key rotation
	// (Move); releases of calls in flight here go there.
	into *entry
}

// New returns a Limiter for cfg.
func New(cfg Config) (*Limiter, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	l := &Limiter{peers: map[string]*counters{}, breakers: map[string]*Breaker{}}
	l.setConfigLocked(cfg)
	return l, nil
}

func (l *Limiter) setConfigLocked(cfg Config) {
	l.cfg = cfg
	l.rules = make(map[Key]Limit, len(cfg.Rules))
	l.caps = map[string]struct{}{}
	for _, r := range cfg.Rules {
		l.rules[Key{r.Peer, r.Capability, r.Dir}] = r.Limit
		if r.Capability != "" {
			l.caps[r.Capability] = struct{}{}
		}
	}
}

// Config returns the configuration in force.
func (l *Limiter) Config() Config {
	l.mu.RLock()
	defer l.mu.RUnlock()
	c := l.cfg
	c.Rules = slices.Clone(c.Rules)
	return c
}

// resolveLocked returns the limit for k (k.Dir is In or Out) and where it came from.
func (l *Limiter) resolveLocked(k Key) (Limit, string) {
	for _, c := range [...]Key{{k.Peer, k.Capability, k.Dir}, {k.Peer, k.Capability, Both}, {"*", k.Capability, k.Dir}, {"*", k.Capability, Both}} {
		if r, ok := l.rules[c]; ok {
			return r, "rule"
		}
	}
	if k.Capability == "" {
		return l.cfg.Default, "default"
	}
	return Limit{}, ""
}

// Update replaces the configuration. Counters survive: a key keeps its tokens
// (capped at the new burst), calls in flight and window usage; only the limits
// applied to them change. The counters of a capability no rule names any more
// go once no call is in flight on them. Call it on every reload of treaty.yaml.
func (l *Limiter) Update(cfg Config) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.setConfigLocked(cfg)
	for _, c := range l.peers {
		for e := range c.all {
			lim, src := l.resolveLocked(e.key)
			e.mu.Lock()
			e.setLimit(lim.filled(), src)
			_, named := l.caps[e.key.Capability]
			e.unnamed = e.key.Capability != "" && !named
			if e.unnamed && e.inflight == 0 {
				delete(c.caps, capKey{e.key.Capability, e.key.Dir})
			}
			e.mu.Unlock()
		}
	}
	bc := cfg.Breaker.filled()
	for _, b := range l.breakers {
		b.setConfig(bc)
	}
	return nil
}

func (e *entry) setLimit(lim Limit, src string) {
	if lim.Rate > 0 && e.lim.Rate == 0 {
		e.primed = false // newly rate-limited: start with a full bucket
	}
	if lim.Rate > 0 {
		e.tokens = min(e.tokens, float64(lim.Burst))
	}
	// A running window keeps its start and takes the new length.
	if !e.winEnd.IsZero() {
		e.winEnd = e.winEnd.Add(lim.Window - e.lim.Window)
	}
	if !e.costEnd.IsZero() {
		e.costEnd = e.costEnd.Add(lim.CostWindow - e.lim.CostWindow)
	}
	e.lim, e.src = lim, src
}

// Forget drops every counter and the breaker of peer, for a removed peer.
func (l *Limiter) Forget(peer string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.peers, peer)
	delete(l.breakers, peer)
}

func (l *Limiter) lookup(peer, capability string, dir Dir) (pe, ce *entry) {
	l.mu.RLock()
	_, capped := l.caps[capability]
	if c := l.peers[peer]; c != nil {
		pe = c.wide[dir-1]
		if capped {
			ce = c.caps[capKey{capability, dir}]
		}
	}
	l.mu.RUnlock()
	if pe != nil && (!capped || ce != nil) {
		return pe, ce
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	c := l.peers[peer]
	if c == nil {
		c = &counters{caps: map[capKey]*entry{}}
		l.peers[peer] = c
	}
	if pe = c.wide[dir-1]; pe == nil {
		pe = l.newEntryLocked(Key{peer, "", dir})
		c.wide[dir-1] = pe
	}
	ce = nil
	if _, capped = l.caps[capability]; capped {
		k := capKey{capability, dir}
		if ce = c.caps[k]; ce == nil {
			ce = l.newEntryLocked(Key{peer, capability, dir})
			c.caps[k] = ce
		}
	}
	return pe, ce
}

func (l *Limiter) newEntryLocked(k Key) *entry {
	lim, src := l.resolveLocked(k)
	return &entry{key: k, lim: lim.filled(), src: src}
}

// Ticket is a granted call. Release it exactly once through the variable Acquire
// returned (or one pointer to it): Release is idempotent on that variable, but two
// copies of a Ticket would each release. The zero Ticket releases nothing.
type Ticket struct {
	l      *Limiter
	pe, ce *entry
	dir    Dir
	done   bool
	failed bool // the backend gave no result: charge at least FailedCost
}

// Failed marks the call as one that reached the backend and gave no result,
// so Release charges each limit at least its FailedCost. A zero Ticket
// ignores it.
func (t *Ticket) Failed() {
	if t != nil {
		t.failed = true
	}
}

// Acquire admits one call by (dir In) or to (dir Out) peer on capability carrying a
// request of reqBytes, if it fits both the peer-wide and the capability limit;
// otherwise it returns an *Exceeded and changes nothing. Of several exhausted
// budgets the refusal names the one that resets last. reqBytes count as bytes in
// for dir In and bytes out for dir Out; the reply's bytes are charged by Release.
// Other errors mean a malformed argument.
func (l *Limiter) Acquire(peer, capability string, dir Dir, reqBytes int64, now time.Time) (Ticket, error) {
	if dir != In && dir != Out {
		return Ticket{}, fmt.Errorf("budget: Acquire: direction %v is not in or out", dir)
	}
	if peer == "" || len(peer) > maxPeerLen || len(capability) > maxCapLen {
		return Ticket{}, fmt.Errorf("budget: Acquire: peer of %d bytes or capability of %d bytes outside [1, %d] and [0, %d]", len(peer), len(capability), maxPeerLen, maxCapLen)
	}
	reqBytes = max(reqBytes, 0)
	var f failure
	pe, ce := l.lookup(peer, capability, dir)
	for {
		pe.mu.Lock()
		if ce != nil {
			ce.mu.Lock()
		}
		if pe.into == nil && (ce == nil || ce.into == nil) {
			break
		}
		// Merged into another key's by a rotation meanwhile: look again.
		if ce != nil {
			ce.mu.Unlock()
		}
		pe.mu.Unlock()
		pe, ce = l.lookup(peer, capability, dir)
	}
	if ce != nil {
		ce.check(dir, reqBytes, now, &f) // first, so a tie names the narrower limit
	}
	pe.check(dir, reqBytes, now, &f)
	if f.e != nil {
		err := f.exceeded(peer, capability, dir) // reads the entry's limit: before unlocking
		if ce != nil {
			ce.mu.Unlock()
		}
		pe.mu.Unlock()
		return Ticket{}, err
	}
	if ce != nil {
		ce.commit(dir, reqBytes)
		ce.mu.Unlock()
	}
	pe.commit(dir, reqBytes)
	pe.mu.Unlock()
	return Ticket{l: l, pe: pe, ce: ce, dir: dir}, nil
}

// Release ends the call: it frees the concurrency slot and charges the cost the
// backend reported and the reply's bytes (bytes out for dir In, in for dir Out).
// These may overshoot a limit; later calls are then refused until the window resets.
// A negative or NaN cost counts as zero; a call marked Failed is charged at
// least each limit's FailedCost.
func (t *Ticket) Release(cost float64, replyBytes int64, now time.Time) {
	if t == nil || t.done || t.pe == nil {
		return
	}
	t.done = true
	if !(cost > 0) {
		cost = 0
	}
	cost = min(cost, maxCost)
	replyBytes = max(replyBytes, 0)
	t.pe.release(t.dir, cost, t.failed, replyBytes, now)
	if t.ce != nil {
		if idle := t.ce.release(t.dir, cost, t.failed, replyBytes, now); idle != nil {
			t.l.dropUnnamed(idle)
		}
	}
}

// dropUnnamed drops e, the counters of a capability no rule names any more,
// once no call is in flight on it.
func (l *Limiter) dropUnnamed(e *entry) {
	l.mu.Lock()
	defer l.mu.Unlock()
	e.mu.Lock()
	defer e.mu.Unlock()
	k := capKey{e.key.Capability, e.key.Dir}
	if c := l.peers[e.key.Peer]; c != nil && c.caps[k] == e && e.unnamed && e.inflight == 0 {
		delete(c.caps, k)
	}
}

// failure collects the exhausted budget that resets last.
type failure struct {
	e       *entry
	budget  string
	resetIn time.Duration
}

func (f *failure) note(e *entry, budget string, resetIn time.Duration) {
	if f.e == nil || resetIn > f.resetIn {
		f.e, f.budget, f.resetIn = e, budget, max(resetIn, 0)
	}
}

func (f *failure) exceeded(peer, capability string, dir Dir) *Exceeded {
	l := f.e.lim
	var limit string
	switch f.budget {
	case BudgetRate:
		limit = l.rateString()
	case BudgetConcurrency:
		limit = l.concurrencyString()
	case BudgetBytesIn:
		limit = l.bytesString(l.BytesIn)
	case BudgetBytesOut:
		limit = l.bytesString(l.BytesOut)
	case BudgetCost:
		limit = l.costString()
	}
	return &Exceeded{Budget: f.budget, Limit: limit, ResetIn: f.resetIn, Peer: peer, Capability: capability,
		Dir: dir, PeerWide: f.e.key.Capability == ""}
}

// refill adds the tokens earned since the last refill. Time never runs backwards
// for a bucket: an earlier now (another goroutine's clock read) adds nothing.
func (e *entry) refill(now time.Time) {
	if e.lim.Rate <= 0 {
		return
	}
	if !e.primed {
		e.tokens, e.last, e.primed = float64(e.lim.Burst), now, true
		return
	}
	if now.After(e.last) {
		e.tokens = min(float64(e.lim.Burst), e.tokens+now.Sub(e.last).Seconds()*e.lim.Rate)
		e.last = now
	}
}

// roll starts new byte and cost windows when the current ones have ended. Windows
// are fixed, starting at the first use after the previous one ended.
func (e *entry) roll(now time.Time) {
	if e.winEnd.IsZero() || !now.Before(e.winEnd) {
		e.winEnd, e.bytesIn, e.bytesOut = now.Add(e.lim.Window), 0, 0
	}
	if e.costEnd.IsZero() || !now.Before(e.costEnd) {
		e.costEnd, e.cost = now.Add(e.lim.CostWindow), 0
	}
}

func (e *entry) check(dir Dir, n int64, now time.Time, f *failure) {
	e.refill(now)
	e.roll(now)
	l := &e.lim
	if l.Concurrency > 0 && e.inflight >= l.Concurrency {
		f.note(e, BudgetConcurrency, 0)
	}
	if l.Rate > 0 && e.tokens < 1-tokenEps {
		f.note(e, BudgetRate, nanos(math.Ceil((1-e.tokens)/l.Rate*1e9-resetSlackNs)))
	}
	// The request's bytes must fit; the reply's direction must not be spent already.
	reqIn, reqOut := n, int64(0)
	if dir == Out {
		reqIn, reqOut = 0, n
	}
	if l.BytesIn > 0 && (e.bytesIn+reqIn > l.BytesIn || (dir == Out && e.bytesIn >= l.BytesIn)) {
		f.note(e, BudgetBytesIn, e.winEnd.Sub(now))
	}
	if l.BytesOut > 0 && (e.bytesOut+reqOut > l.BytesOut || (dir == In && e.bytesOut >= l.BytesOut)) {
		f.note(e, BudgetBytesOut, e.winEnd.Sub(now))
	}
	if l.Cost > 0 && e.cost >= l.Cost {
		f.note(e, BudgetCost, e.costEnd.Sub(now))
	}
}

// nanos converts ns to a Duration, capped at the longest one: below about
// 1e-10 calls/s the wait for a token does not fit.
func nanos(ns float64) time.Duration {
	if ns >= math.MaxInt64 {
		return math.MaxInt64
	}
	return time.Duration(ns)
}

func (e *entry) commit(dir Dir, n int64) {
	if e.lim.Rate > 0 {
		e.tokens--
	}
	e.inflight++
	if dir == In {
		e.bytesIn += n
	} else {
		e.bytesOut += n
	}
}

// release returns e (or the entry it was merged into) when that is now idle
// counters no rule names, to be dropped.
func (e *entry) release(dir Dir, cost float64, failed bool, reply int64, now time.Time) *entry {
	e.mu.Lock()
	if into := e.into; into != nil {
		e.mu.Unlock()
		return into.release(dir, cost, failed, reply, now)
	}
	defer e.mu.Unlock()
	if e.inflight > 0 {
		e.inflight--
	}
	e.roll(now)
	if dir == In {
		e.bytesOut += reply
	} else {
		e.bytesIn += reply
	}
	if failed {
		cost = max(cost, e.lim.FailedCost)
	}
	e.cost += cost
	if e.unnamed && e.inflight == 0 {
		return e
	}
	return nil
}

// CheckChain applies CheckChain with the configured Config.MaxDepth.
func (l *Limiter) CheckChain(chain []string, self string) error {
	l.mu.RLock()
	d := l.cfg.Depth()
	l.mu.RUnlock()
	return CheckChain(chain, self, d)
}

// Status is the state of one key's counters, or a configured rule nobody has used.
type Status struct {
	Key      Key     `json:"key"`    // Peer may be "*" and Dir Both for a rule not yet used (Live false)
	Source   string  `json:"source"` // "default", "rule", or "" when nothing limits the key
	Limit    Limit   `json:"limit"`  // with defaults applied
	Live     bool    `json:"live"`   // counters below are real
	Tokens   float64 `json:"tokens,omitempty"`
	InFlight int     `json:"in_flight"`
	BytesIn  int64   `json:"bytes_in"` // in the current window
	BytesOut int64   `json:"bytes_out"`
	Cost     float64 `json:"cost"` // in the current cost window
	// Until the current windows end; zero when they already have.
	WindowResetIn time.Duration `json:"window_reset_in_ns"`
	CostResetIn   time.Duration `json:"cost_reset_in_ns"`
}

// Snapshot returns every live key's counters and every configured rule not yet in
// use, sorted by peer, capability and direction; for `treaty limit ls`. It changes
// nothing.
func (l *Limiter) Snapshot(now time.Time) []Status {
	l.mu.RLock()
	out := make([]Status, 0, 2*len(l.peers)+len(l.cfg.Rules))
	live := map[Key]bool{}
	for _, c := range l.peers {
		for e := range c.all {
			e.mu.Lock()
			out = append(out, e.status(now))
			e.mu.Unlock()
			live[e.key] = true
		}
	}
	for _, r := range l.cfg.Rules {
		if k := (Key{r.Peer, r.Capability, r.Dir}); !live[k] {
			out = append(out, Status{Key: k, Source: "rule", Limit: r.Limit.filled()})
		}
	}
	l.mu.RUnlock()
	slices.SortFunc(out, func(a, b Status) int {
		return cmp.Or(cmp.Compare(a.Key.Peer, b.Key.Peer), cmp.Compare(a.Key.Capability, b.Key.Capability), cmp.Compare(a.Key.Dir, b.Key.Dir))
	})
	return out
}

func (e *entry) status(now time.Time) Status {
	s := Status{Key: e.key, Source: e.src, Limit: e.lim, Live: true, InFlight: e.inflight}
	if e.lim.Rate > 0 {
		s.Tokens = float64(e.lim.Burst)
		if e.primed {
			s.Tokens = e.tokens
			if now.After(e.last) {
				s.Tokens = min(float64(e.lim.Burst), e.tokens+now.Sub(e.last).Seconds()*e.lim.Rate)
			}
		}
	}
	if now.Before(e.winEnd) {
		s.BytesIn, s.BytesOut, s.WindowResetIn = e.bytesIn, e.bytesOut, e.winEnd.Sub(now)
	}
	if now.Before(e.costEnd) {
		s.Cost, s.CostResetIn = e.cost, e.costEnd.Sub(now)
	}
	return s
}

// Move hands peer from's counters and breaker to peer to, for a key rotation:
// what the old key spent (tokens, calls in flight, bytes and cost in their
// windows, a breaker's state) stays spent under the new key, so rotating a
// key never resets a budget. Limits are resolved again for the new key.
// Counters to already has are merged, each keeping the larger spending (calls
// in flight add up), so rotating onto a key never resets its budget either;
// of two breakers the more open one is kept. A peer with no counters moves
// nothing.
func (l *Limiter) Move(from, to string, now time.Time) {
	if from == to {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if c := l.peers[from]; c != nil {
		delete(l.peers, from)
		dst := l.peers[to]
		if dst == nil {
			dst = &counters{caps: map[capKey]*entry{}}
			l.peers[to] = dst
		}
		for e := range c.all {
			e.mu.Lock()
			e.key.Peer = to
			e.mu.Unlock()
			lim, src := l.resolveLocked(e.key)
			e.mu.Lock()
			primed, tokens := e.primed, e.tokens
			e.setLimit(lim.filled(), src)
			if primed && e.lim.Rate > 0 { // spent tokens stay spent, whatever limited them before
				e.primed, e.tokens = true, min(tokens, float64(e.lim.Burst))
			}
			e.mu.Unlock()
			if e.key.Capability == "" {
				if have := dst.wide[e.key.Dir-1]; have != nil {
					have.absorb(e, now)
				} else {
					dst.wide[e.key.Dir-1] = e
				}
				continue
			}
			k := capKey{e.key.Capability, e.key.Dir}
			if have := dst.caps[k]; have != nil {
				have.absorb(e, now)
			} else {
				dst.caps[k] = e
			}
		}
	}
	if b := l.breakers[from]; b != nil {
		delete(l.breakers, from)
		if have := l.breakers[to]; have == nil || openness(b.State(now)) > openness(have.State(now)) {
			l.breakers[to] = b.renamed(to)
		}
	}
}

// openness orders breaker states from letting calls through to refusing them.
func openness(state string) int {
	switch state {
	case StateOpen:
		return 2
	case StateClosed:
		return 0
	}
	return 1 // half-open
}

// absorb merges o, the same key's counters moved from a rotated key, into e:
// of what each spent in its running windows the larger stays spent, o's
// calls in flight become e's, and o forwards their releases to e. Call with
// l.mu held exclusively, so no other merge locks the pair.
func (e *entry) absorb(o *entry, now time.Time) {
	e.mu.Lock()
	defer e.mu.Unlock()
	o.mu.Lock()
	defer o.mu.Unlock()
	if e.lim.Rate > 0 && o.primed {
		e.refill(now)
		o.refill(now)
		e.tokens = min(e.tokens, o.tokens)
	}
	e.inflight += o.inflight
	if now.Before(o.winEnd) {
		if !now.Before(e.winEnd) {
			e.winEnd, e.bytesIn, e.bytesOut = o.winEnd, 0, 0
		}
		e.winEnd = later(e.winEnd, o.winEnd)
		e.bytesIn, e.bytesOut = max(e.bytesIn, o.bytesIn), max(e.bytesOut, o.bytesOut)
	}
	if now.Before(o.costEnd) {
		if !now.Before(e.costEnd) {
			e.costEnd, e.cost = o.costEnd, 0
		}
		e.costEnd = later(e.costEnd, o.costEnd)
		e.cost = max(e.cost, o.cost)
	}
	o.into = e
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
