package node

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/treaty-dev/treaty/internal/consensus"
	"github.com/treaty-dev/treaty/internal/consensus/fsm"
	"github.com/treaty-dev/treaty/internal/metrics"
	"github.com/treaty-dev/treaty/internal/refusal"
	"github.com/treaty-dev/treaty/internal/trust"
)

// maxGroupLabels bounds the group label values, like the peer labels
// (metrics.DefaultMaxPeers): gauges are reported for the first groups by
// name, and counters of groups beyond the bound share the label "other".
const maxGroupLabels = metrics.DefaultMaxPeers

// groupMetrics is the consensus groups' collector. Its gauges are read from
// the manager at each scrape; its counters count from the node's start,
// whether or not metrics are served.
type groupMetrics struct {
	status    func() []consensus.Info
	decisions *prometheus.CounterVec
	evidence  *prometheus.CounterVec
	refused   *prometheus.CounterVec // groups_budget.go

	mu   sync.Mutex
	seen map[string]struct{} // group labels admitted to the counters

	mode, members, leader, term, applied, healthy, groups *prometheus.Desc
}

func newGroupMetrics(status func() []consensus.Info) *groupMetrics {
	ns := metrics.Namespace
	desc := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(ns+"_group_"+name, help, labels, nil)
	}
	return &groupMetrics{
		status: status,
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "group_decisions_total",
			Help: "Entries a consensus group committed and this node applied that decided something (ticks excluded), by group."},
			[]string{"group"}),
		evidence: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "group_evidence_total",
			Help: "Misbehaviour of group members this node's engines detected, by group and trust kind."},
			[]string{"group", "kind"}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "group_proposals_refused_total",
			Help: "Proposals other members asked this node to order that its trust or budget gate refused, by group and stage."},
			[]string{"group", "stage"}),
		seen:    map[string]struct{}{},
		mode:    desc("mode", "1 for the group's fault model (raft or bft).", "group", "mode"),
		members: desc("members", "Members of the group at its current epoch.", "group"),
		leader:  desc("leader_known", "1 when this member knows the group's leader (Raft) or the view's leader (BFT).", "group"),
		term:    desc("term", "The Raft term or the BFT view number.", "group"),
		applied: desc("last_applied_index", "The last index this member applied.", "group"),
		healthy: desc("healthy", "1 when a leader is known and heard from a quorum recently; 0 also for a group that could not start.", "group"),
		groups:  prometheus.NewDesc(ns+"_groups", "Consensus groups this node runs or failed to start (per-group gauges cover the first 64 by name).", nil, nil),
	}
}

// label is g's counter label: its name while fewer than maxGroupLabels
// names were admitted, else "other".
func (gm *groupMetrics) label(g string) string {
	gm.mu.Lock()
	defer gm.mu.Unlock()
	if _, ok := gm.seen[g]; ok {
		return g
	}
	if len(gm.seen) >= maxGroupLabels {
		return metrics.Other
	}
	gm.seen[g] = struct{}{}
	return g
}

func (gm *groupMetrics) decided(g fsm.Group) { gm.decisions.WithLabelValues(gm.label(g.Name)).Inc() }

func (gm *groupMetrics) gateRefused(g fsm.Group, stage refusal.Stage) {
	gm.refused.WithLabelValues(gm.label(g.Name), string(stage)).Inc()
}

func (gm *groupMetrics) evidenced(g fsm.Group, kind trust.Kind) {
	gm.evidence.WithLabelValues(gm.label(g.Name), string(kind)).Inc()
}

// Describe implements prometheus.Collector.
func (gm *groupMetrics) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{gm.mode, gm.members, gm.leader, gm.term, gm.applied, gm.healthy, gm.groups} {
		ch <- d
	}
	gm.decisions.Describe(ch)
	gm.evidence.Describe(ch)
	gm.refused.Describe(ch)
}

// Collect implements prometheus.Collector.
func (gm *groupMetrics) Collect(ch chan<- prometheus.Metric) {
	infos := gm.status() // sorted by name
	ch <- prometheus.MustNewConstMetric(gm.groups, prometheus.GaugeValue, float64(len(infos)))
	last := ""
	shown := 0
	for _, in := range infos {
		if in.Name == last || shown >= maxGroupLabels {
			continue // a failed definition behind a running group of that name; or beyond the bound
		}
		last = in.Name
		shown++
		gauge := func(d *prometheus.Desc, v float64, labels ...string) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, append([]string{in.Name}, labels...)...)
		}
		st := in.Status
		gauge(gm.healthy, b2f(in.Error == "" && st.Healthy))
		if in.Error != "" {
			continue
		}
		mode := string(st.Group.Mode)
		if st.Group.Mode != fsm.ModeRaft && st.Group.Mode != fsm.ModeBFT {
			mode = metrics.Other
		}
		gauge(gm.mode, 1, mode)
		gauge(gm.members, float64(len(st.Group.Members)))
		gauge(gm.leader, b2f(!st.Leader.IsZero()))
		gauge(gm.term, float64(st.Term))
		gauge(gm.applied, float64(st.LastIndex))
	}
	gm.decisions.Collect(ch)
	gm.evidence.Collect(ch)
	gm.refused.Collect(ch)
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// registerGroupMetrics adds the groups' collector to m (nothing when the
// node runs no groups or serves no metrics).
func (n *Node) registerGroupMetrics(m *metrics.Metrics) error {
	if n.groups == nil || m == nil {
		return nil
	}
	return m.Register(n.groups.metrics)
}
