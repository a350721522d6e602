// Package bench_gates measures the trust and budget gates of the call path against
// an empty call path in the same run, and reports per-call p50/p99 and their ratio:
//
//	go test ./bench/gates -run '^$' -bench . -benchtime 2s
//
// Each b.Loop iteration times one batch of calls through the gates and one batch
// through the baseline (a non-inlined function with the same signature that does
// nothing), interleaved so machine noise hits both alike. Per-call times are batch
// means (batches of 32, so the clock reads cost under 1 ns per call); p50 and p99
// are over batches. ns/op is the gates' mean per call; "ratio" is gates p50 over
// baseline p50; "overhead-p50-ns" is their difference, the cost the gates add.
// The target is overhead p50 <= 5000 ns.
package bench_gates

import (
	"errors"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/treaty-dev/treaty/internal/budget"
	"github.com/treaty-dev/treaty/internal/identity"
	"github.com/treaty-dev/treaty/internal/trust"
)

const (
	batch  = 32
	nPeers = 200
)

var (
	errDenied = errors.New("denied")
	t0        = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
)

type fixture struct {
	book  *trust.Book
	lim   *budget.Limiter
	peers []string
}

// newFixture builds a book with evidence for every peer and a limiter with every kind
// of limit switched on (generous, so the benchmark never hits one), as a busy node
// would have.
func newFixture(b *testing.B) *fixture {
	b.Helper()
	book, err := trust.Open(trust.Config{FlushEvery: time.Minute}, filepath.Join(b.TempDir(), "trust.json"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { book.Close() })
	lim, err := budget.New(budget.Config{
		Default: budget.Limit{Rate: 1e6, Burst: 1_000_000, Concurrency: 10_000, BytesIn: 1 << 50, BytesOut: 1 << 50, Cost: 1e15},
		Rules: []budget.Rule{
			{Peer: "*", Capability: "review", Limit: budget.Limit{Rate: 1e6, Burst: 1_000_000, Concurrency: 1000, Cost: 1e15}},
		},
	})
	if err != nil {
		b.Fatal(err)
	}
	f := &fixture{book: book, lim: lim}
	for i := range nPeers {
		seed := make([]byte, 32)
		seed[0], seed[1] = byte(i), byte(i>>8)
		k, err := identity.FromSeed(seed)
		if err != nil {
			b.Fatal(err)
		}
		p := k.Public().String()
		f.peers = append(f.peers, p)
		for j := range 20 {
			kind := trust.KindSuccess
			if j%5 == 0 {
				kind = trust.KindFailure
			}
			if _, err := book.Observe(p, trust.Evidence{Kind: kind, At: t0}); err != nil {
				b.Fatal(err)
			}
		}
		// Creates the peer's counters, as its first call would.
		tk, err := lim.Acquire(p, "review", budget.In, 0, t0)
		if err != nil {
			b.Fatal(err)
		}
		tk.Release(0, 0, t0)
	}
	return f
}

// gateStanding is the inbound call path's step 9 as internal/node runs it: trust
// standing for the Cedar context, then budgets around the call.
func (f *fixture) gateStanding(peer, capability string, now time.Time) error {
	st := f.book.Standing(peer, now)
	if st.Quarantined || st.Level < trust.LevelUntrusted {
		return errDenied
	}
	tk, err := f.lim.Acquire(peer, capability, budget.In, 512, now)
	if err != nil {
		return err
	}
	tk.Release(1, 256, now)
	return nil
}

// gateGet is the same with the full trust Snapshot (recent evidence copied).
func (f *fixture) gateGet(peer, capability string, now time.Time) error {
	s := f.book.Get(peer, now)
	if s.Quarantined || s.Level < trust.LevelUntrusted {
		return errDenied
	}
	tk, err := f.lim.Acquire(peer, capability, budget.In, 512, now)
	if err != nil {
		return err
	}
	tk.Release(1, 256, now)
	return nil
}

func (f *fixture) trustOnly(peer, _ string, now time.Time) error {
	if st := f.book.Standing(peer, now); st.Quarantined {
		return errDenied
	}
	return nil
}

func (f *fixture) budgetOnly(peer, capability string, now time.Time) error {
	tk, err := f.lim.Acquire(peer, capability, budget.In, 512, now)
	if err != nil {
		return err
	}
	tk.Release(1, 256, now)
	return nil
}

// baseline is the empty call path: same signature, no work.
//
//go:noinline
func baseline(peer, capability string, now time.Time) error { return nil }

type gateFunc func(peer, capability string, now time.Time) error

// samples collects per-call batch means for the gates and the baseline.
type samples struct{ gates, base []float64 }

// runBatches times batches of calls for goroutine g until loop says stop, with a
// virtual clock advancing 1 µs per call (so decay and refill always have work).
func runBatches(f *fixture, gate gateFunc, g int, loop func() bool) (samples, error) {
	var s samples
	now := t0.Add(time.Duration(g) * time.Hour)
	i := g * 7
	for loop() {
		start := time.Now()
		for range batch {
			p := f.peers[i%nPeers]
			i++
			now = now.Add(time.Microsecond)
			if err := gate(p, "review", now); err != nil {
				return s, err
			}
		}
		mid := time.Now()
		for range batch {
			p := f.peers[i%nPeers]
			i++
			now = now.Add(time.Microsecond)
			if err := baseline(p, "review", now); err != nil {
				return s, err
			}
		}
		end := time.Now()
		s.gates = append(s.gates, float64(mid.Sub(start))/batch)
		s.base = append(s.base, float64(end.Sub(mid))/batch)
	}
	return s, nil
}

func pct(xs []float64, p float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[min(len(s)-1, int(p*float64(len(s))))]
}

func mean(xs []float64) float64 {
	var t float64
	for _, x := range xs {
		t += x
	}
	return t / float64(max(len(xs), 1))
}

func report(b *testing.B, s samples) {
	g50, b50 := pct(s.gates, 0.5), pct(s.base, 0.5)
	b.ReportMetric(mean(s.gates), "ns/op")
	b.ReportMetric(g50, "gates-p50-ns")
	b.ReportMetric(pct(s.gates, 0.99), "gates-p99-ns")
	b.ReportMetric(b50, "baseline-p50-ns")
	b.ReportMetric(g50-b50, "overhead-p50-ns")
	b.ReportMetric(g50/b50, "ratio")
}

func BenchmarkGates(b *testing.B) {
	f := newFixture(b)
	for _, tc := range []struct {
		name string
		gate gateFunc
	}{
		{"standing+budget", f.gateStanding},
		{"get+budget", f.gateGet},
		{"trust.Standing", f.trustOnly},
		{"budget.AcquireRelease", f.budgetOnly},
	} {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			s, err := runBatches(f, tc.gate, 0, b.Loop)
			if err != nil {
				b.Fatal(err)
			}
			report(b, s)
		})
	}
}

// BenchmarkGatesParallel runs the call-path gates on GOMAXPROCS goroutines at once,
// each over all peers, to show lock contention.
func BenchmarkGatesParallel(b *testing.B) {
	f := newFixture(b)
	var mu sync.Mutex
	var all samples
	var g int
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		mu.Lock()
		id := g
		g++
		mu.Unlock()
		s, err := runBatches(f, f.gateStanding, id, pb.Next)
		if err != nil {
			b.Error(err)
			return
		}
		mu.Lock()
		all.gates = append(all.gates, s.gates...)
		all.base = append(all.base, s.base...)
		mu.Unlock()
	})
	report(b, all)
}
