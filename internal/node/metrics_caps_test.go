package node

import (
	"fmt"
	"testing"

	"github.com/treaty-dev/treaty/internal/metrics"
	"github.com/treaty-dev/treaty/internal/refusal"
)

// A peer that calls capabilities this node does not have must not take the
// capability label slots (admitted for the life of the process): its names
// count as "other", and the node's own capabilities keep their names.
func TestPeerCannotTakeCapabilityLabels(t *testing.T) {
	caller, callee := pairNodes(t)
	m, err := metrics.New(metrics.Options{MaxCapabilities: 4})
	if err != nil {
		t.Fatal(err)
	}
	callee.obs.m.Store(m)
	for i := range 8 {
		callee.countInbound(caller.ID(), fmt.Sprintf("made-up-%d", i), refusal.StagePolicy, "not_granted")
	}
	callee.countInbound(caller.ID(), "echo", "", "")
	fams, err := m.Gatherer().Gather()
	if err != nil {
		t.Fatal(err)
	}
	caps := map[string]float64{}
	for _, f := range fams {
		if f.GetName() != "treaty_calls_total" {
			continue
		}
		for _, s := range f.Metric {
			for _, l := range s.Label {
				if l.GetName() == "capability" {
					caps[l.GetValue()] += s.Counter.GetValue()
				}
			}
		}
	}
	if caps["echo"] != 1 || caps[metrics.Other] != 8 || len(caps) != 2 {
		t.Fatalf("calls by capability label %v; want echo 1 and other 8", caps)
	}
}
