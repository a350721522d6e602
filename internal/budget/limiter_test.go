package budget

import (
	"errors"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/treaty-dev/treaty/internal/identity"
)

var t0 = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

func peerID(t testing.TB, n byte) string {
	t.Helper()
	seed := make([]byte, 32)
	seed[0] = n
	k, err := identity.FromSeed(seed)
	if err != nil {
		t.Fatal(err)
	}
	return k.Public().String()
}

func newLimiter(t testing.TB, cfg Config) *Limiter {
	t.Helper()
	l, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func ms(n int) time.Duration { return time.Duration(n) * time.Millisecond }

// mustExceed asserts err is an *Exceeded for budget and returns it.
func mustExceed(t *testing.T, err error, budget string) *Exceeded {
	t.Helper()
	var e *Exceeded
	if !errors.As(err, &e) {
		t.Fatalf("err = %v, want *Exceeded(%s)", err, budget)
	}
	if e.Budget != budget {
		t.Fatalf("budget = %q, want %q (%v)", e.Budget, budget, e)
	}
	if !errors.Is(err, ErrExceeded) {
		t.Fatal("errors.Is(ErrExceeded) false")
	}
	return e
}

func acquireN(t *testing.T, l *Limiter, peer, capability string, dir Dir, n int, now time.Time) {
	t.Helper()
	for i := range n {
		if _, err := l.Acquire(peer, capability, dir, 0, now); err != nil {
			t.Fatalf("call %d of %d at %v: %v", i+1, n, now.Sub(t0), err)
		}
	}
}

func TestTokenBucketExact(t *testing.T) {
	t.Parallel()
	p := peerID(t, 1)
	l := newLimiter(t, Config{Default: Limit{Rate: 10, Burst: 20}})
	acquireN(t, l, p, "c", In, 20, t0) // the whole burst at once
	_, err := l.Acquire(p, "c", In, 0, t0)
	e := mustExceed(t, err, BudgetRate)
	if e.ResetIn != ms(100) || e.Limit != "10/s burst 20" || !e.PeerWide || e.Peer != p || e.Capability != "c" || e.Dir != In {
		t.Fatalf("refusal = %+v", e)
	}
	for _, s := range []string{"rate", "10/s burst 20", "resets in 100ms", p} {
		if !strings.Contains(e.Error(), s) {
			t.Errorf("message %q lacks %q", e.Error(), s)
		}
	}
	_, err = l.Acquire(p, "c", In, 0, t0.Add(ms(99)))
	if e := mustExceed(t, err, BudgetRate); e.ResetIn != ms(1) {
		t.Fatalf("at 99ms ResetIn = %v", e.ResetIn)
	}
	acquireN(t, l, p, "c", In, 1, t0.Add(ms(100))) // exactly at ResetIn
	mustExceed(t, func() error { _, err := l.Acquire(p, "c", In, 0, t0.Add(ms(100))); return err }(), BudgetRate)
	acquireN(t, l, p, "c", In, 10, t0.Add(ms(1100))) // one second later: rate*1s
	mustExceed(t, func() error { _, err := l.Acquire(p, "c", In, 0, t0.Add(ms(1100))); return err }(), BudgetRate)
	// A long idle period refills only up to the burst.
	acquireN(t, l, p, "c", In, 20, t0.Add(time.Hour))
	mustExceed(t, func() error { _, err := l.Acquire(p, "c", In, 0, t0.Add(time.Hour)); return err }(), BudgetRate)
	// A clock read from the past (another goroutine) adds nothing and breaks nothing.
	mustExceed(t, func() error { _, err := l.Acquire(p, "c", In, 0, t0); return err }(), BudgetRate)
}

func TestBurstDefault(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		rate    float64
		burst   int
		resetIn time.Duration
	}{
		{2.5, 3, ms(400)},
		{0.5, 1, 2 * time.Second},
		{1000, 1000, time.Millisecond},
	} {
		p := peerID(t, 2)
		l := newLimiter(t, Config{Default: Limit{Rate: tc.rate}})
		acquireN(t, l, p, "", Out, tc.burst, t0)
		_, err := l.Acquire(p, "", Out, 0, t0)
		if e := mustExceed(t, err, BudgetRate); e.ResetIn != tc.resetIn {
			t.Errorf("rate %v: ResetIn = %v, want %v", tc.rate, e.ResetIn, tc.resetIn)
		}
	}
}

func TestConcurrencySlots(t *testing.T) {
	t.Parallel()
	p := peerID(t, 3)
	l := newLimiter(t, Config{Default: Limit{Concurrency: 2}})
	a, err := l.Acquire(p, "c", In, 0, t0)
	if err != nil {
		t.Fatal(err)
	}
	b, err := l.Acquire(p, "c", In, 0, t0)
	if err != nil {
		t.Fatal(err)
	}
	_, err = l.Acquire(p, "c", In, 0, t0)
	e := mustExceed(t, err, BudgetConcurrency)
	if e.ResetIn != 0 || !strings.Contains(e.Error(), "when a running call ends") || e.Limit != "2" {
		t.Fatalf("refusal = %v", e)
	}
	// Release is idempotent: releasing a twice frees one slot, not two.
	a.Release(0, 0, t0)
	a.Release(0, 0, t0)
	c, err := l.Acquire(p, "c", In, 0, t0)
	if err != nil {
		t.Fatalf("after release: %v", err)
	}
	mustExceed(t, func() error { _, err := l.Acquire(p, "c", In, 0, t0); return err }(), BudgetConcurrency)
	b.Release(0, 0, t0)
	c.Release(0, 0, t0)
	var zero Ticket
	zero.Release(1, 1, t0) // no-op
	var nilT *Ticket
	nilT.Release(1, 1, t0) // no-op
	if s := findStatus(l.Snapshot(t0), Key{p, "", In}); s.InFlight != 0 {
		t.Fatalf("in flight after all released: %d", s.InFlight)
	}
}

func findStatus(ss []Status, k Key) Status {
	for _, s := range ss {
		if s.Key == k {
			return s
		}
	}
	return Status{}
}

func TestBytesWindows(t *testing.T) {
	t.Parallel()
	p := peerID(t, 4)
	l := newLimiter(t, Config{Default: Limit{BytesIn: 1000, BytesOut: 100, Window: time.Minute}})
	acquire := func(dir Dir, n int64, at time.Duration) (Ticket, error) { return l.Acquire(p, "c", dir, n, t0.Add(at)) }

	if _, err := acquire(In, 600, 0); err != nil {
		t.Fatal(err)
	}
	_, err := acquire(In, 500, 10*time.Second)
	if e := mustExceed(t, err, BudgetBytesIn); e.ResetIn != 50*time.Second || e.Limit != "1000/1m" {
		t.Fatalf("refusal = %+v", e)
	}
	tk, err := acquire(In, 400, 10*time.Second) // exactly fills the window
	if err != nil {
		t.Fatal(err)
	}
	// The reply of an inbound call is bytes out; it may overshoot, then refuses.
	tk.Release(0, 150, t0.Add(11*time.Second))
	_, err = acquire(In, 0, 12*time.Second)
	mustExceed(t, err, BudgetBytesOut)
	// The window resets a minute after it started.
	if _, err := acquire(In, 1000, time.Minute); err != nil {
		t.Fatalf("after window: %v", err)
	}

	// Outbound: the request is bytes out, the reply bytes in.
	q := peerID(t, 5)
	tk, err = l.Acquire(q, "c", Out, 100, t0)
	if err != nil {
		t.Fatal(err)
	}
	mustExceed(t, func() error { _, err := l.Acquire(q, "c", Out, 1, t0); return err }(), BudgetBytesOut)
	tk.Release(0, 1000, t0)
	if s := findStatus(l.Snapshot(t0), Key{q, "", Out}); s.BytesIn != 1000 || s.BytesOut != 100 || s.WindowResetIn != time.Minute {
		t.Fatalf("status = %+v", s)
	}
}

func TestCostWindow(t *testing.T) {
	t.Parallel()
	p := peerID(t, 6)
	l := newLimiter(t, Config{Rules: []Rule{{Peer: p, Capability: "llm", Limit: Limit{Cost: 10, CostWindow: time.Hour}}}})
	call := func(at time.Duration, cost float64) error {
		tk, err := l.Acquire(p, "llm", In, 0, t0.Add(at))
		if err == nil {
			tk.Release(cost, 0, t0.Add(at))
		}
		return err
	}
	for _, c := range []float64{6, math.NaN(), -5, 3.5} { // NaN and negative count as zero
		if err := call(0, c); err != nil {
			t.Fatal(err)
		}
	}
	if err := call(time.Minute, 1); err != nil { // 9.5 < 10: passes, ends at 10.5
		t.Fatal(err)
	}
	e := mustExceed(t, call(2*time.Minute, 0), BudgetCost)
	if e.ResetIn != 58*time.Minute || e.Limit != "10/1h" || e.PeerWide || e.Capability != "llm" {
		t.Fatalf("refusal = %+v: %v", e, e)
	}
	if err := call(time.Hour, 0); err != nil {
		t.Fatalf("after the cost window: %v", err)
	}
	// Other capabilities of the same peer have no cost limit.
	if _, err := l.Acquire(p, "other", In, 0, t0.Add(2*time.Minute)); err != nil {
		t.Fatal(err)
	}
}

func TestPeerWideAndCapability(t *testing.T) {
	t.Parallel()
	p := peerID(t, 7)
	l := newLimiter(t, Config{
		Default: Limit{Rate: 5, Burst: 5},
		Rules:   []Rule{{Peer: "*", Capability: "slow", Limit: Limit{Concurrency: 1}}},
	})
	held, err := l.Acquire(p, "slow", In, 0, t0)
	if err != nil {
		t.Fatal(err)
	}
	_, err = l.Acquire(p, "slow", In, 0, t0)
	if e := mustExceed(t, err, BudgetConcurrency); e.PeerWide || !strings.Contains(e.Error(), "this capability") {
		t.Fatalf("refusal = %v", e)
	}
	// The refused call took no token from the peer-wide bucket.
	acquireN(t, l, p, "fast", In, 4, t0)
	_, err = l.Acquire(p, "fast", In, 0, t0)
	if e := mustExceed(t, err, BudgetRate); !e.PeerWide {
		t.Fatalf("refusal = %v", e)
	}
	held.Release(0, 0, t0)
	// Now the capability has a slot but the peer has no token: peer-wide refuses.
	_, err = l.Acquire(p, "slow", In, 0, t0)
	if e := mustExceed(t, err, BudgetRate); !e.PeerWide {
		t.Fatalf("refusal = %v", e)
	}
	// Directions have separate counters.
	acquireN(t, l, p, "fast", Out, 5, t0)
}

func TestRulePrecedence(t *testing.T) {
	t.Parallel()
	a, b, c := peerID(t, 8), peerID(t, 9), peerID(t, 10)
	l := newLimiter(t, Config{
		Default: Limit{Concurrency: 1},
		Rules: []Rule{
			{Peer: "*", Dir: Out, Limit: Limit{Concurrency: 2}},
			{Peer: a, Limit: Limit{Concurrency: 3}},
			{Peer: a, Dir: In, Limit: Limit{Concurrency: 4}},
			{Peer: b, Capability: "x", Limit: Limit{Concurrency: 5}},
			{Peer: "*", Capability: "x", Dir: In, Limit: Limit{Concurrency: 6}},
		},
	})
	for _, tc := range []struct {
		peer, capability string
		dir              Dir
		want             int // calls admitted before the first refusal
	}{
		{a, "", In, 4},   // exact rule wins over peer+both
		{a, "", Out, 3},  // peer+both wins over "*"+dir
		{c, "", Out, 2},  // "*"+dir wins over Default
		{c, "", In, 1},   // Default
		{b, "x", Out, 2}, // capability rule 5, but the peer-wide "*"+out rule is 2
	} {
		n := 0
		for ; n < 10; n++ {
			if _, err := l.Acquire(tc.peer, tc.capability, tc.dir, 0, t0); err != nil {
				break
			}
		}
		if n != tc.want {
			t.Errorf("%s %q %v: admitted %d, want %d", tc.peer[:16], tc.capability, tc.dir, n, tc.want)
		}
	}
	// Capability limits: with a roomy peer-wide limit, "x" inbound for c comes from
	// the "*" rule and for b from b's own rule.
	l2 := newLimiter(t, Config{Rules: []Rule{
		{Peer: b, Capability: "x", Limit: Limit{Concurrency: 5}},
		{Peer: "*", Capability: "x", Dir: In, Limit: Limit{Concurrency: 6}},
	}})
	for peer, want := range map[string]int{b: 5, c: 6} {
		n := 0
		for ; n < 10; n++ {
			if _, err := l2.Acquire(peer, "x", In, 0, t0); err != nil {
				break
			}
		}
		if n != want {
			t.Errorf("capability x for %s: admitted %d, want %d", peer[:16], n, want)
		}
	}
}

// One peer exhausting its budget never affects another, including through a "*" rule.
func TestIsolation(t *testing.T) {
	t.Parallel()
	noisy, quiet := peerID(t, 11), peerID(t, 12)
	l := newLimiter(t, Config{
		Default: Limit{Rate: 10, Burst: 10, Concurrency: 3},
		Rules:   []Rule{{Peer: "*", Capability: "c", Limit: Limit{Cost: 5}}},
	})
	// The noisy peer spends its cost on c, then holds its concurrency slots and
	// drains its bucket.
	tk, err := l.Acquire(noisy, "c", In, 0, t0)
	if err != nil {
		t.Fatal(err)
	}
	tk.Release(10, 0, t0)
	admitted := 0
	for range 1000 {
		if _, err := l.Acquire(noisy, "d", In, 0, t0); err == nil {
			admitted++
		}
	}
	if admitted != 3 {
		t.Fatalf("noisy peer admitted %d, want its concurrency 3", admitted)
	}
	mustExceed(t, func() error { _, err := l.Acquire(noisy, "c", In, 0, t0); return err }(), BudgetCost) // concurrency too; cost resets last
	tk, err = l.Acquire(quiet, "c", In, 0, t0)
	if err != nil {
		t.Fatalf("quiet peer refused after noisy one: %v", err)
	}
	tk.Release(1, 0, t0)
	acquireN(t, l, quiet, "d", In, 3, t0)
}

func TestWorstResetNamed(t *testing.T) {
	t.Parallel()
	p := peerID(t, 13)
	l := newLimiter(t, Config{Default: Limit{Rate: 1, Burst: 1, Cost: 1, CostWindow: time.Hour}})
	tk, err := l.Acquire(p, "", In, 0, t0)
	if err != nil {
		t.Fatal(err)
	}
	tk.Release(1, 0, t0)
	// Both rate (1s) and cost (1h) are exhausted: retrying after 1s would not help.
	_, err = l.Acquire(p, "", In, 0, t0)
	if e := mustExceed(t, err, BudgetCost); e.ResetIn != time.Hour {
		t.Fatalf("refusal = %v", e)
	}
}

func TestUpdateKeepsState(t *testing.T) {
	t.Parallel()
	p := peerID(t, 14)
	cfg := Config{
		Default: Limit{Rate: 1, Burst: 5, Concurrency: 2},
		Rules:   []Rule{{Peer: p, Capability: "x", Limit: Limit{Concurrency: 1}}},
	}
	l := newLimiter(t, cfg)
	held, err := l.Acquire(p, "x", In, 0, t0)
	if err != nil {
		t.Fatal(err)
	}
	acquireN(t, l, p, "y", In, 1, t0) // 3 tokens left, 2 in flight

	if err := l.Update(Config{Default: Limit{Rate: -1}}); err == nil {
		t.Fatal("Update accepted an invalid config")
	}
	// A bigger burst does not refill; the calls in flight still count.
	cfg.Default = Limit{Rate: 1, Burst: 50, Concurrency: 3}
	if err := l.Update(cfg); err != nil {
		t.Fatal(err)
	}
	if s := findStatus(l.Snapshot(t0), Key{p, "", In}); s.Tokens != 3 || s.InFlight != 2 || s.Limit.Burst != 50 {
		t.Fatalf("after Update: %+v", s)
	}
	acquireN(t, l, p, "y", In, 1, t0)
	mustExceed(t, func() error { _, err := l.Acquire(p, "y", In, 0, t0); return err }(), BudgetConcurrency)
	// A smaller burst caps the tokens.
	cfg.Default = Limit{Rate: 1, Burst: 1, Concurrency: 10}
	if err := l.Update(cfg); err != nil {
		t.Fatal(err)
	}
	if s := findStatus(l.Snapshot(t0), Key{p, "", In}); s.Tokens != 1 {
		t.Fatalf("tokens after smaller burst: %v", s.Tokens)
	}
	// Removing the capability rule drops its counters; the held ticket still releases.
	cfg.Rules = nil
	if err := l.Update(cfg); err != nil {
		t.Fatal(err)
	}
	held.Release(0, 0, t0)
	if s := findStatus(l.Snapshot(t0), Key{p, "x", In}); s.Live {
		t.Fatalf("capability counters survived their rule: %+v", s)
	}
	// Turning a rate on starts with a full bucket.
	q := peerID(t, 15)
	l2 := newLimiter(t, Config{})
	acquireN(t, l2, q, "", In, 100, t0)
	if err := l2.Update(Config{Default: Limit{Rate: 2, Burst: 4}}); err != nil {
		t.Fatal(err)
	}
	acquireN(t, l2, q, "", In, 4, t0)
	mustExceed(t, func() error { _, err := l2.Acquire(q, "", In, 0, t0); return err }(), BudgetRate)
}

func TestSnapshotRules(t *testing.T) {
	t.Parallel()
	p := peerID(t, 16)
	l := newLimiter(t, Config{Rules: []Rule{
		{Peer: p, Capability: "x", Dir: In, Limit: Limit{Rate: 2}},
		{Peer: "*", Capability: "y", Limit: Limit{Concurrency: 1}},
	}})
	ss := l.Snapshot(t0)
	if len(ss) != 2 || ss[0].Live || ss[0].Key.Peer != "*" || ss[1].Limit.Burst != 2 {
		t.Fatalf("unused rules: %+v", ss)
	}
	acquireN(t, l, p, "x", In, 1, t0)
	ss = l.Snapshot(t0.Add(250 * time.Millisecond))
	s := findStatus(ss, Key{p, "x", In})
	if !s.Live || s.Source != "rule" || s.Tokens != 1.5 {
		t.Fatalf("live rule: %+v", s)
	}
	if s := findStatus(ss, Key{p, "", In}); !s.Live || s.Source != "default" || s.Limit.String() != "unlimited" {
		t.Fatalf("peer-wide: %+v", s)
	}
}

func TestAcquireRejectsBadArguments(t *testing.T) {
	t.Parallel()
	l := newLimiter(t, Config{})
	p := peerID(t, 17)
	for _, tc := range []struct {
		name, peer, capability string
		dir                    Dir
	}{
		{"dir both", p, "c", Both},
		{"dir 9", p, "c", Dir(9)},
		{"empty peer", "", "c", In},
		{"huge peer", strings.Repeat("p", 600), "c", In},
		{"huge capability", p, strings.Repeat("c", 300), In},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := l.Acquire(tc.peer, tc.capability, tc.dir, 0, t0)
			if err == nil || errors.Is(err, ErrExceeded) {
				t.Fatalf("err = %v", err)
			}
		})
	}
	if n := len(l.Snapshot(t0)); n != 0 {
		t.Fatalf("bad calls created %d counters", n)
	}
}

func TestAcquireReleaseAllocs(t *testing.T) {
	p := peerID(t, 18)
	l := newLimiter(t, Config{
		Default: Limit{Rate: 1e6, Burst: 1e6, Concurrency: 100, BytesIn: 1 << 40, Cost: 1e12},
		Rules:   []Rule{{Peer: "*", Capability: "c", Limit: Limit{Concurrency: 10}}},
	})
	acquireN(t, l, p, "c", In, 1, t0) // creates the counters
	n := testing.AllocsPerRun(1000, func() {
		tk, err := l.Acquire(p, "c", In, 100, t0)
		if err != nil {
			t.Fatal(err)
		}
		tk.Release(1, 100, t0)
	})
	if n != 0 {
		t.Fatalf("Acquire+Release allocates %v times per call", n)
	}
}

// Concurrent Acquire/Release never exceeds the concurrency limit and leaves no slot
// behind; run with -race.
func TestConcurrentAcquireRelease(t *testing.T) {
	t.Parallel()
	const limit = 3
	p, q := peerID(t, 19), peerID(t, 20)
	l := newLimiter(t, Config{
		Default: Limit{Concurrency: limit},
		Rules:   []Rule{{Peer: "*", Capability: "c", Limit: Limit{Rate: 1e6, Burst: 1000}}},
	})
	var inFlight, peak atomic.Int64
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			peer := []string{p, q}[g%2]
			for i := range 500 {
				now := t0.Add(time.Duration(i) * time.Millisecond)
				tk, err := l.Acquire(peer, "c", In, 1, now)
				if err != nil {
					continue
				}
				if peer == p {
					n := inFlight.Add(1)
					for {
						m := peak.Load()
						if n <= m || peak.CompareAndSwap(m, n) {
							break
						}
					}
					inFlight.Add(-1)
				}
				tk.Release(0.5, 1, now)
			}
			if g == 0 {
				l.Update(Config{Default: Limit{Concurrency: limit}, Rules: []Rule{{Peer: "*", Capability: "c", Limit: Limit{Rate: 1e6, Burst: 500}}}})
			}
			l.Snapshot(t0)
		})
	}
	wg.Wait()
	if peak.Load() > limit {
		t.Fatalf("peak in flight %d > limit %d", peak.Load(), limit)
	}
	for _, s := range l.Snapshot(t0) {
		if s.InFlight != 0 {
			t.Fatalf("slot leaked: %+v", s)
		}
	}
}

func TestForget(t *testing.T) {
	t.Parallel()
	p := peerID(t, 21)
	l := newLimiter(t, Config{Default: Limit{Rate: 1, Burst: 1}})
	acquireN(t, l, p, "", In, 1, t0)
	if err := callEnds(l.Breaker(p), false, t0); err != nil {
		t.Fatal(err)
	}
	l.Forget(p)
	if len(l.Snapshot(t0)) != 0 || len(l.Breakers(t0)) != 0 {
		t.Fatal("Forget left state behind")
	}
	acquireN(t, l, p, "", In, 1, t0)
}
