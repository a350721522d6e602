package node

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/treaty-dev/treaty/internal/config"
	"github.com/treaty-dev/treaty/internal/membership"
	"github.com/treaty-dev/treaty/internal/metrics"
)

// membershipCounts counts membership events from the node's start, whether
// or not metrics are served. Its zero value is ready; the collector reads it
// at scrape time.
type membershipCounts struct {
	evidence      [membership.ReasonRejected + 1]atomic.Uint64 // by Reason; index 0 holds unknown reasons
	joinsAdmitted atomic.Uint64
	joinsRefused  atomic.Uint64
	rotationsIn   atomic.Uint64 // a peer's rotation applied here
	rotationsOut  atomic.Uint64 // this node rotated its own key
	revocations   atomic.Uint64
}

func (c *membershipCounts) evidenced(r membership.Reason) {
	if r < 0 || int(r) >= len(c.evidence) {
		r = 0
	}
	c.evidence[r].Add(1)
}

// memberStates are the treaty_members state label values (a closed set).
var memberStates = []membership.State{membership.StateAlive, membership.StateSuspect, membership.StateDead, membership.StateLeft}

// membershipMetrics is the membership collector: gauges from gossip, the
// peer book and the admission ledger; counters from membershipCounts.
type membershipMetrics struct {
	n *Node

	members, peers, revoked, evidence, joins, rotations, rotationsRefused, revocations *prometheus.Desc
}

func newMembershipMetrics(n *Node) *membershipMetrics {
	ns := metrics.Namespace
	return &membershipMetrics{
		n:           n,
		members:     prometheus.NewDesc(ns+"_members", "Gossip members this node knows, itself included, by failure-detection state (absent when membership.enabled is off).", []string{"state"}, nil),
		peers:       prometheus.NewDesc(ns+"_membership_peers", "Peer book entries by how they got there (operator, invite, gossip, decision).", []string{"source"}, nil),
		revoked:     prometheus.NewDesc(ns+"_membership_revoked_keys", "Keys this node refuses because they were revoked (or rotated from a revoked key).", nil, nil),
		evidence:    prometheus.NewDesc(ns+"_membership_evidence_total", "Gossiped records or statements dropped, by reason.", []string{"reason"}, nil),
		joins:       prometheus.NewDesc(ns+"_membership_joins_total", "Newcomers presenting this node's invites, by outcome (admitted, refused).", []string{"outcome"}, nil),
		rotations:   prometheus.NewDesc(ns+"_membership_rotations_total", "Key rotations: in (a peer's, applied here) and out (this node's own).", []string{"direction"}, nil),
		revocations: prometheus.NewDesc(ns+"_membership_revocations_total", "Revocation statements applied.", nil, nil),
		rotationsRefused: prometheus.NewDesc(ns+"_membership_rotations_refused_total",
			"Rotations of a member's live key refused because its key chain rotated here less than a minute before.", nil, nil),
	}
}

// Describe implements prometheus.Collector.
func (mm *membershipMetrics) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{mm.members, mm.peers, mm.revoked, mm.evidence, mm.joins, mm.rotations, mm.rotationsRefused, mm.revocations} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (mm *membershipMetrics) Collect(ch chan<- prometheus.Metric) {
	n := mm.n
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	if n.adm.gossip.Load() != nil {
		by := map[membership.State]int{}
		for _, m := range n.GossipMembers() {
			by[m.State]++
		}
		for _, s := range memberStates {
			gauge(mm.members, float64(by[s]), s.String())
		}
	}
	sources := map[string]int{}
	for _, p := range n.state.Load().cfg.Peers {
		s := p.Source
		if s == "" {
			s = config.SourceOperator
		}
		sources[s]++
	}
	for _, s := range config.PeerSources() {
		gauge(mm.peers, float64(sources[s]), s)
	}
	revoked := 0
	if m := n.adm.refused.Load(); m != nil {
		for _, why := range *m {
			if why == "revoked" {
				revoked++
			}
		}
	}
	gauge(mm.revoked, float64(revoked))
	c := &n.adm.counts
	for r := range c.evidence {
		label := membership.Reason(r).String() // 0: "unknown"
		counter(mm.evidence, c.evidence[r].Load(), label)
	}
	counter(mm.joins, c.joinsAdmitted.Load(), "admitted")
	counter(mm.joins, c.joinsRefused.Load(), "refused")
	counter(mm.rotations, c.rotationsIn.Load(), "in")
	counter(mm.rotations, c.rotationsOut.Load(), "out")
	if rl := n.adm.rotLimit; rl != nil {
		counter(mm.rotationsRefused, rl.Refused())
	}
	counter(mm.revocations, c.revocations.Load())
}

// registerMembershipMetrics adds the membership collector to m (nothing when
// metrics are not served).
func (n *Node) registerMembershipMetrics(m *metrics.Metrics) error {
	if m == nil {
		return nil
	}
	return m.Register(newMembershipMetrics(n))
}
