// Package metrics is a node's Prometheus instrumentation on a registry of its
// own (never the process-global one). It guarantees bounded label cardinality:
// peers and capabilities are admitted as label values up to a fixed count and
// share the value "other" beyond it; stages, outcomes and reasons come from
// closed sets, and anything outside a set is counted as "other". Every method
// is safe for concurrent use and on a nil *Metrics, where it does nothing, so
// call sites need no checks.
//
// A subsystem (consensus groups, membership) adds its own collectors with
// Register; its metric names start with "treaty_" and its labels obey the
// same bounds (a group or member label from a capped set, never an ID).
package metrics

import (
	"fmt"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Namespace prefixes every metric name.
const Namespace = "treaty"

// Other is the label value shared by values beyond a bound or outside a set.
const Other = "other"

// Stages of the call path that are timed (Stage's stage argument).
const (
	StageSign     = "sign"
	StageVerify   = "verify"
	StagePolicy   = "policy"
	StageGates    = "gates"
	StageSanitize = "sanitize"
	StageScreen   = "screen"
	StageBackend  = "backend"
	StageAudit    = "audit"
)

var timedStages = []string{StageSign, StageVerify, StagePolicy, StageGates, StageSanitize, StageScreen, StageBackend, StageAudit}

// refusalStages are internal/refusal's stage names.
var refusalStages = []string{"usage", "resolve", "budget", "sanitize", "transport", "wire", "trust", "policy", "screen", "backend", "audit", "internal"}

var directions = []string{"in", "out"}

var outcomes = []string{"ok", "refused", "failed", "cancelled"}

// reasons is the closed set of refusal reason tokens: the wire's failure
// tokens, the budget names and the node's own tokens.
var reasons = []string{
	// wire verification and failure envelopes
	"malformed", "missing_component", "bad_audience", "expired", "not_yet_valid", "ttl_too_long",
	"digest_mismatch", "bad_signature", "key_mismatch", "replayed", "replay_cache_full",
	"chain_malformed", "chain_broken", "chain_too_deep", "chain_loop", "limit_exceeded",
	// policy, trust, content
	"not_granted", "quarantined", "blocked", "injection",
	// budgets
	"rate", "concurrency", "bytes_in", "bytes_out", "cost", "breaker", "depth", "too_many_refused",
	// backend and audit
	"timed_out", "failed", "internal", "disk_high_water", "beyond_size", "unreachable", "not_found",
}

var verdicts = []string{"pass", "mark", "block", "allow"}

// Default bounds of the label values admitted per dimension.
const (
	DefaultMaxPeers        = 64
	DefaultMaxCapabilities = 64
	maxCategories          = 32
)

// Options bounds the labels. Zero fields take the defaults.
type Options struct {
	MaxPeers        int // distinct peer label values before "other"; at most 1024
	MaxCapabilities int // distinct capability label values before "other"; at most 1024
}

// Metrics holds a node's collectors and its registry.
type Metrics struct {
	reg *prometheus.Registry

	peers, caps, categories *bounded

	calls    *prometheus.CounterVec
	stages   *prometheus.HistogramVec
	refusals *prometheus.CounterVec
	findings *prometheus.CounterVec
	verdicts *prometheus.CounterVec
}

// New builds the collectors on a fresh registry, with Go runtime and process
// collectors beside them.
func New(o Options) (*Metrics, error) {
	if o.MaxPeers == 0 {
		o.MaxPeers = DefaultMaxPeers
	}
	if o.MaxCapabilities == 0 {
		o.MaxCapabilities = DefaultMaxCapabilities
	}
	if o.MaxPeers < 1 || o.MaxPeers > 1024 {
		return nil, fmt.Errorf("metrics: Options.MaxPeers %d outside [1, 1024]", o.MaxPeers)
	}
	if o.MaxCapabilities < 1 || o.MaxCapabilities > 1024 {
		return nil, fmt.Errorf("metrics: Options.MaxCapabilities %d outside [1, 1024]", o.MaxCapabilities)
	}
	m := &Metrics{
		reg:        prometheus.NewRegistry(),
		peers:      newBounded(o.MaxPeers),
		caps:       newBounded(o.MaxCapabilities),
		categories: newBounded(maxCategories),
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Name: "calls_total",
			Help: "Calls that ended, by peer, capability, direction (in: served, out: made) and outcome."},
			[]string{"peer", "capability", "direction", "outcome"}),
		stages: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: Namespace, Name: "stage_duration_seconds",
			Help:    "Time spent in each stage of the call path.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}},
			[]string{"stage"}),
		refusals: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Name: "refusals_total",
			Help: "Refused calls by direction, the stage that refused and the reason token."},
			[]string{"direction", "stage", "reason"}),
		findings: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Name: "sanitizer_findings_total",
			Help: "Sanitizer findings in outbound content, by category (never values)."},
			[]string{"category"}),
		verdicts: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Name: "screen_verdicts_total",
			Help: "Verdicts of the inbound screen, by action."},
			[]string{"verdict"}),
	}
	for _, c := range []prometheus.Collector{m.calls, m.stages, m.refusals, m.findings, m.verdicts,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})} {
		if err := m.reg.Register(c); err != nil {
			return nil, fmt.Errorf("metrics: %w", err)
		}
	}
	return m, nil
}

// Register adds a collector (a subsystem's, such as consensus or membership)
// to this registry. Its names must start with "treaty_".
func (m *Metrics) Register(c prometheus.Collector) error {
	if m == nil {
		return nil
	}
	if err := m.reg.Register(c); err != nil {
		return fmt.Errorf("metrics: %w", err)
	}
	return nil
}

// Handler serves the registry in the Prometheus text and protobuf formats.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{MaxRequestsInFlight: 4, Timeout: 10 * time.Second})
}

// Gatherer is the registry, for tests and embedding.
func (m *Metrics) Gatherer() prometheus.Gatherer { return m.reg }

// Call counts a call that ended.
func (m *Metrics) Call(direction, peer, capability, outcome string) {
	if m == nil {
		return
	}
	m.calls.WithLabelValues(m.peers.label(peer), m.caps.label(capability), oneOf(direction, directions), oneOf(outcome, outcomes)).Inc()
}

// Stage records the time a stage of the call path took since start.
func (m *Metrics) Stage(stage string, start time.Time) {
	if m == nil {
		return
	}
	m.stages.WithLabelValues(oneOf(stage, timedStages)).Observe(time.Since(start).Seconds())
}

// Refusal counts a refusal at stage (an internal/refusal stage) for reason.
func (m *Metrics) Refusal(direction, stage, reason string) {
	if m == nil {
		return
	}
	m.refusals.WithLabelValues(oneOf(direction, directions), oneOf(stage, refusalStages), oneOf(reason, reasons)).Inc()
}

// Findings counts n sanitizer findings of category.
func (m *Metrics) Findings(category string, n int) {
	if m == nil || n <= 0 {
		return
	}
	m.findings.WithLabelValues(m.categories.label(category)).Add(float64(n))
}

// Verdict counts one verdict of the screen.
func (m *Metrics) Verdict(action string) {
	if m == nil {
		return
	}
	m.verdicts.WithLabelValues(oneOf(action, verdicts)).Inc()
}

func oneOf(v string, set []string) string {
	if slices.Contains(set, v) {
		return v
	}
	return Other
}

// bounded admits the first max distinct values as themselves; later ones
// are Other. Admitted values are kept for the life of the process, which is
// what keeps the series count fixed.
type bounded struct {
	mu   sync.Mutex
	max  int
	seen map[string]struct{}
}

func newBounded(max int) *bounded { return &bounded{max: max, seen: map[string]struct{}{}} }

func (b *bounded) label(v string) string {
	if v == "" {
		return "none"
	}
	if len(v) > 64 || v == Other {
		return Other // a value named "other" is the overflow's, and takes no slot
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.seen[v]; ok {
		return v
	}
	if len(b.seen) >= b.max {
		return Other
	}
	b.seen[v] = struct{}{}
	return v
}
