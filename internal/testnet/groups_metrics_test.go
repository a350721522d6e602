package testnet

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/treaty-dev/treaty/localapi"
)

// TestGroupsMetrics: a raft-3 group's gauges and decision counter are on a
// member's /metrics, labelled by group name, and move with a committed put.
func TestGroupsMetrics(t *testing.T) {
	const metricsYAML = "metrics:\n  listen: 127.0.0.1:0\n"
	c := NewCluster(t, 3, Options{Names: []string{"acme", "acme-eu", "acme-us"},
		Config: map[string]string{"acme": metricsYAML}})
	a, b, d := c.Members[0], c.Members[1], c.Members[2]
	team := map[string]string{"group": "team"}

	before := a.ScrapeMetrics(t)
	if v := before.Value("treaty_groups", nil); v != 0 {
		t.Fatalf("treaty_groups = %v before any group", v)
	}
	createGroup(t, "team", "raft", a, b, d)
	put := commit(t, func(ctx context.Context) (localapi.Decision, error) {
		return a.Client().KVPut(ctx, localapi.KVPutRequest{Group: "team", Key: "pr/42/reviewer", Value: "alice"})
	})
	Eventually(t, 20*time.Second, func() error {
		fams := a.ScrapeMetrics(t)
		for _, w := range []struct {
			name   string
			labels map[string]string
			ok     func(float64) bool
			want   string
		}{
			{"treaty_groups", nil, func(v float64) bool { return v == 1 }, "1"},
			{"treaty_group_mode", map[string]string{"group": "team", "mode": "raft"}, func(v float64) bool { return v == 1 }, "1"},
			{"treaty_group_members", team, func(v float64) bool { return v == 3 }, "3"},
			{"treaty_group_leader_known", team, func(v float64) bool { return v == 1 }, "1"},
			{"treaty_group_healthy", team, func(v float64) bool { return v == 1 }, "1"},
			{"treaty_group_term", team, func(v float64) bool { return v >= 1 }, ">= 1"},
			{"treaty_group_last_applied_index", team, func(v float64) bool { return v >= float64(put.Index) }, fmt.Sprintf(">= %d", put.Index)},
			{"treaty_group_decisions_total", team, func(v float64) bool { return v >= 1 }, ">= 1"},
		} {
			if v := fams.Value(w.name, w.labels); !w.ok(v) {
				return fmt.Errorf("%s%v = %v, want %s", w.name, w.labels, v, w.want)
			}
		}
		return nil
	})

	// A second put: the applied index and the decision count move on.
	fams := a.ScrapeMetrics(t)
	decided := fams.Value("treaty_group_decisions_total", team)
	put2 := commit(t, func(ctx context.Context) (localapi.Decision, error) {
		return a.Client().KVPut(ctx, localapi.KVPutRequest{Group: "team", Key: "pr/43/reviewer", Value: "bob"})
	})
	Eventually(t, 20*time.Second, func() error {
		fams := a.ScrapeMetrics(t)
		if v := fams.Value("treaty_group_decisions_total", team); v < decided+1 {
			return fmt.Errorf("decisions %v, want > %v", v, decided)
		}
		if v := fams.Value("treaty_group_last_applied_index", team); v < float64(put2.Index) {
			return fmt.Errorf("last applied %v, want >= %d", v, put2.Index)
		}
		return nil
	})
}
