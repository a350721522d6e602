package node

import (
	"fmt"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/treaty-dev/treaty/internal/consensus"
	"github.com/treaty-dev/treaty/internal/consensus/fsm"
	"github.com/treaty-dev/treaty/internal/metrics"
	"github.com/treaty-dev/treaty/internal/trust"
)

// The group label is bounded: gauges cover the first maxGroupLabels groups
// by name and counters of later groups share "other"; a group that failed to
// start reports healthy 0 and nothing else.
func TestGroupMetricsBoundAndFailedGroups(t *testing.T) {
	var infos []consensus.Info
	for i := range maxGroupLabels + 10 {
		infos = append(infos, consensus.Info{Name: fmt.Sprintf("g%03d", i),
			Status: consensus.Status{Group: fsm.Group{Mode: fsm.ModeBFT}, Healthy: true, Term: 2, LastIndex: 9}})
	}
	infos = append(infos, consensus.Info{Name: "zz-failed", Error: "no engine"})
	gm := newGroupMetrics(func() []consensus.Info { return infos })
	for _, in := range infos {
		gm.decided(fsm.Group{Name: in.Name})
	}
	gm.evidenced(fsm.Group{Name: "g000"}, trust.KindEquivocation)

	reg := prometheus.NewRegistry()
	if err := reg.Register(gm); err != nil {
		t.Fatal(err)
	}
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]*dto.MetricFamily{}
	for _, f := range fams {
		byName[f.GetName()] = f
	}
	if n := len(byName["treaty_group_healthy"].GetMetric()); n != maxGroupLabels {
		t.Errorf("healthy series: %d, want %d", n, maxGroupLabels)
	}
	if v := byName["treaty_groups"].GetMetric()[0].GetGauge().GetValue(); v != float64(len(infos)) {
		t.Errorf("treaty_groups = %v, want %d", v, len(infos))
	}
	labels := map[string]float64{}
	for _, m := range byName["treaty_group_decisions_total"].GetMetric() {
		labels[m.GetLabel()[0].GetValue()] = m.GetCounter().GetValue()
	}
	if len(labels) != maxGroupLabels+1 || labels[metrics.Other] != 11 || labels["g000"] != 1 {
		t.Errorf("decision labels: %d, other %v, g000 %v", len(labels), labels[metrics.Other], labels["g000"])
	}
	if ev := byName["treaty_group_evidence_total"].GetMetric(); len(ev) != 1 || ev[0].GetCounter().GetValue() != 1 {
		t.Errorf("evidence: %v", ev)
	}

	// A failed group within the bound: healthy 0, no other gauge.
	gm = newGroupMetrics(func() []consensus.Info { return infos[len(infos)-1:] })
	reg = prometheus.NewRegistry()
	if err := reg.Register(gm); err != nil {
		t.Fatal(err)
	}
	fams, err = reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		switch f.GetName() {
		case "treaty_group_healthy":
			if m := f.GetMetric(); len(m) != 1 || m[0].GetGauge().GetValue() != 0 {
				t.Errorf("failed group healthy: %v", m)
			}
		case "treaty_groups":
		default:
			t.Errorf("failed group reports %s", f.GetName())
		}
	}
}
