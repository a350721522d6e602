package metrics

import (
	"context"
	"testing"

	dto "github.com/prometheus/client_model/go"
)

type fixedSource State

func (f *fixedSource) MetricsState(context.Context) State { return State(*f) }

// gathered scrapes m and returns the value of name's series whose labels
// include want, and how many series name has.
func gathered(t *testing.T, m *Metrics, name string, want map[string]string) (float64, int, bool) {
	t.Helper()
	fams, err := m.reg.Gather()
	if err != nil {
		t.Fatalf("scrape failed: %v", err)
	}
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
	series:
		for _, s := range f.Metric {
			got := map[string]string{}
			for _, l := range s.Label {
				got[l.GetName()] = l.GetValue()
			}
			for k, v := range want {
				if got[k] != v {
					continue series
				}
			}
			return value(s), len(f.Metric), true
		}
		return 0, len(f.Metric), false
	}
	return 0, 0, false
}

func value(s *dto.Metric) float64 {
	switch {
	case s.Gauge != nil:
		return s.Gauge.GetValue()
	case s.Counter != nil:
		return s.Counter.GetValue()
	}
	return 0
}

// TestUnwitnessedGauge: each admitted peer's streak of unjudged checkpoint
// notes is a gauge; peers beyond the bound share "other", which shows the
// longest of their streaks.
func TestUnwitnessedGauge(t *testing.T) {
	t.Parallel()
	m, err := New(Options{MaxPeers: 2})
	if err != nil {
		t.Fatal(err)
	}
	src := &fixedSource{Peers: []Peer{
		{Name: "acme", Unwitnessed: 3},
		{Name: "beta"},
		{Name: "gamma", Unwitnessed: 7},
		{Name: "delta", Unwitnessed: 12},
	}}
	if err := m.Watch(src); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		peer string
		want float64
	}{{"acme", 3}, {"beta", 0}, {Other, 12}} {
		got, n, ok := gathered(t, m, "treaty_peer_audit_unwitnessed", map[string]string{"peer": tc.peer})
		if !ok || got != tc.want {
			t.Errorf("unwitnessed{peer=%q} = %v (found %v), want %v", tc.peer, got, ok, tc.want)
		}
		if n != 3 {
			t.Errorf("%d unwitnessed series, want 3 (two peers and other)", n)
		}
	}
}

// TestPeerNamedOther: "other" is a valid nickname. Such a peer is counted
// with the overflow (its series would be the overflow's) and takes no slot of
// the bound from a peer that could have had its own.
func TestPeerNamedOther(t *testing.T) {
	t.Parallel()
	m, err := New(Options{MaxPeers: 2})
	if err != nil {
		t.Fatal(err)
	}
	src := &fixedSource{Peers: []Peer{
		{Name: Other, InFlight: 1, TrustLevel: "trusted", Breaker: "closed"},
		{Name: "acme", InFlight: 2},
		{Name: "beta", InFlight: 4},
		{Name: "gamma", InFlight: 8},
	}}
	if err := m.Watch(src); err != nil {
		t.Fatal(err)
	}
	for peer, want := range map[string]float64{"acme": 2, "beta": 4, Other: 1 + 8} {
		if got, _, ok := gathered(t, m, "treaty_peer_budget_in_flight", map[string]string{"peer": peer}); !ok || got != want {
			t.Errorf("in_flight{peer=%q} = %v (found %v), want %v", peer, got, ok, want)
		}
	}
	if _, n, _ := gathered(t, m, "treaty_peer_trust_level", nil); n != 2*len(trustLevels) {
		t.Errorf("%d trust level series, want those of acme and beta only", n)
	}
}
