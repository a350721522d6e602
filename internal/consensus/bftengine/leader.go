package bftengine

import (
	"sync/atomic"

	"github.com/hyperledger-labs/SmartBFT/pkg/metrics"
	"github.com/hyperledger-labs/SmartBFT/pkg/metrics/disabled"
)

// leaderMetrics is the metrics provider the engine gives SmartBFT: every
// metric is discarded except the leader of the current view, which SmartBFT
// sets whenever it starts a view. The engine reads the leader from it
// because SmartBFT's Consensus.GetLeaderID reads a field that an in-place
// reconfiguration replaces without a lock.
type leaderMetrics struct {
	disabled.Provider
	leader *atomic.Uint64
}

// leaderGaugeName is SmartBFT v1.0.1's name of that gauge.
const leaderGaugeName = "view_leader_id"

func (p *leaderMetrics) NewGauge(o metrics.GaugeOpts) metrics.Gauge {
	if o.Name == leaderGaugeName {
		return leaderGauge{p.leader}
	}
	return p.Provider.NewGauge(o)
}

type leaderGauge struct{ v *atomic.Uint64 }

func (g leaderGauge) With(...string) metrics.Gauge { return g }
func (g leaderGauge) Add(float64)                  {}
func (g leaderGauge) Set(v float64)                { g.v.Store(uint64(v)) }

// leaderID is the leader of SmartBFT's current view, 0 while this member
// runs no SmartBFT (a learner, a removed member, a closed engine).
func (e *Engine) leaderID() uint64 {
	if e.cons() == nil || e.self.Load() == 0 || e.isClosed() {
		return 0
	}
	return e.leader.Load()
}
