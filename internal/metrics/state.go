package metrics

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Source reports a node's state when the registry is scraped, so gauges are
// read where they live instead of being copied on every change.
type Source interface {
	MetricsState(ctx context.Context) State
}

// State is what a Source reports.
type State struct {
	Peers      []Peer
	Handshakes Handshakes
	Audit      Audit
}

// Peer is one peer's trust and budget standing. Name is its nickname.
type Peer struct {
	Name       string
	TrustScore float64
	TrustLevel string // quarantined, untrusted, provisional, trusted, high
	Breaker    string // closed, open, half-open
	InFlight   int    // calls holding a concurrency slot, both directions
	BytesIn    int64  // in the current bytes window
	BytesOut   int64
	Cost       float64 // in the current cost window
	// Unwitnessed is how many of its checkpoint notes in a row the audit
	// witness could not judge for want of a consistency proof (0 once one
	// is judged; the witness alerts at audit.MaxUnwitnessed).
	Unwitnessed int
}

// Handshakes counts TLS handshakes since the node started.
type Handshakes struct {
	Accepted, Dialed uint64
	Refused          map[string]uint64 // by reason
}

// Audit is the audit log's size and the work of its group commits.
type Audit struct {
	Entries     uint64 // tree size: entries in the log
	Appended    uint64 // entries appended since the node started
	Bytes       uint64 // audit.db and its WAL on disk
	Commits     uint64
	BatchSum    uint64
	Batches     map[float64]uint64 // cumulative count per upper bound (entries per commit)
	CommitSum   time.Duration
	CommitTimes map[float64]uint64 // cumulative count per upper bound (seconds)
}

var trustLevels = []string{"quarantined", "untrusted", "provisional", "trusted", "high"}

var breakerStates = []string{"closed", "open", "half-open"}

// Watch makes the registry ask src for its state at every scrape.
func (m *Metrics) Watch(src Source) error {
	if m == nil {
		return nil
	}
	return m.Register(&stateCollector{m: m, src: src})
}

type stateCollector struct {
	m   *Metrics
	src Source
}

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(prometheus.BuildFQName(Namespace, "", name), help, labels, nil)
}

var (
	dTrustScore   = desc("peer_trust_score", "A peer's behavioural trust score, 0 to 1.", "peer")
	dTrustLevel   = desc("peer_trust_level", "1 for a peer's current trust level, 0 for the others.", "peer", "level")
	dBreaker      = desc("peer_breaker_state", "1 for a peer's outbound circuit breaker state, 0 for the others.", "peer", "state")
	dInFlight     = desc("peer_budget_in_flight", "Calls with a peer holding a concurrency slot.", "peer")
	dBudgetBytes  = desc("peer_budget_bytes", "Bytes counted against a peer's budget in the current window.", "peer", "direction")
	dBudgetCost   = desc("peer_budget_cost", "Cost charged to a peer in the current cost window.", "peer")
	dUnwitnessed  = desc("peer_audit_unwitnessed", "Checkpoint notes of a peer in a row that the audit witness could not judge (no consistency proof had); 0 once one is judged. For peer=\"other\", the longest such streak.", "peer")
	dHandshakes   = desc("handshakes_accepted_total", "Completed TLS handshakes by side (accept: served, dial: made).", "side")
	dHandRefused  = desc("handshakes_refused_total", "Refused TLS handshakes, both sides, by reason.", "reason")
	dAuditEntries = desc("audit_entries", "Entries in the audit log (its Merkle tree size).")
	dAuditAppend  = desc("audit_appended_total", "Entries appended to the audit log since the node started.")
	dAuditBytes   = desc("audit_size_bytes", "Size of the audit database and its write-ahead log on disk.")
	dAuditBatch   = desc("audit_commit_batch_entries", "Entries per group commit of the audit log.")
	dAuditCommit  = desc("audit_commit_duration_seconds", "Duration of one group commit of the audit log, fsync included.")
)

// Describe sends nothing: the collector is unchecked, since the peers it
// reports change at run time.
func (c *stateCollector) Describe(chan<- *prometheus.Desc) {}

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s := c.src.MetricsState(ctx)
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	// Peers beyond the bound are summed into one "other" series per gauge
	// where a sum means something; scores and states are reported for
	// admitted peers only.
	var other Peer
	hasOther := false
	for _, p := range s.Peers {
		name := c.m.peers.label(p.Name)
		if name == Other {
			hasOther = true
			other.InFlight += p.InFlight
			other.BytesIn += p.BytesIn
			other.BytesOut += p.BytesOut
			other.Cost += p.Cost
			other.Unwitnessed = max(other.Unwitnessed, p.Unwitnessed)
			continue
		}
		gauge(dTrustScore, p.TrustScore, name)
		for _, l := range trustLevels {
			gauge(dTrustLevel, b2f(l == p.TrustLevel), name, l)
		}
		for _, st := range breakerStates {
			gauge(dBreaker, b2f(st == p.Breaker), name, st)
		}
		budgetGauges(gauge, name, p)
	}
	if hasOther {
		budgetGauges(gauge, Other, other)
	}
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	counter(dHandshakes, s.Handshakes.Accepted, "accept")
	counter(dHandshakes, s.Handshakes.Dialed, "dial")
	for r, v := range s.Handshakes.Refused {
		counter(dHandRefused, v, r)
	}
	gauge(dAuditEntries, float64(s.Audit.Entries))
	counter(dAuditAppend, s.Audit.Appended)
	gauge(dAuditBytes, float64(s.Audit.Bytes))
	ch <- prometheus.MustNewConstHistogram(dAuditBatch, s.Audit.Commits, float64(s.Audit.BatchSum), s.Audit.Batches)
	ch <- prometheus.MustNewConstHistogram(dAuditCommit, s.Audit.Commits, s.Audit.CommitSum.Seconds(), s.Audit.CommitTimes)
}

func budgetGauges(gauge func(*prometheus.Desc, float64, ...string), name string, p Peer) {
	gauge(dInFlight, float64(p.InFlight), name)
	gauge(dBudgetBytes, float64(p.BytesIn), name, "in")
	gauge(dBudgetBytes, float64(p.BytesOut), name, "out")
	gauge(dBudgetCost, p.Cost, name)
	gauge(dUnwitnessed, float64(p.Unwitnessed), name)
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
