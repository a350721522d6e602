package testnet

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

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

	before := scrapeMetrics(t, a)
	if v := metricValue(before, "treaty_groups", nil); v != 0 {
		t.Fatalf("treaty_groups = %v before any group", v)
	}
	createGroup(t, "team", "raft", a, b, d)
	put := commit(t, func(ctx context.Context) (localapi.Decision, error) {
		return a.Client().KVPut(ctx, localapi.KVPutRequest{Group: "team", Key: "pr/42/reviewer", Value: "alice"})
	})
	Eventually(t, 20*time.Second, func() error {
		fams := scrapeMetrics(t, a)
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
			if v := metricValue(fams, w.name, w.labels); !w.ok(v) {
				return fmt.Errorf("%s%v = %v, want %s", w.name, w.labels, v, w.want)
			}
		}
		return nil
	})

	// A second put: the applied index and the decision count move on.
	fams := scrapeMetrics(t, a)
	decided := metricValue(fams, "treaty_group_decisions_total", team)
	put2 := commit(t, func(ctx context.Context) (localapi.Decision, error) {
		return a.Client().KVPut(ctx, localapi.KVPutRequest{Group: "team", Key: "pr/43/reviewer", Value: "bob"})
	})
	Eventually(t, 20*time.Second, func() error {
		fams := scrapeMetrics(t, a)
		if v := metricValue(fams, "treaty_group_decisions_total", team); v < decided+1 {
			return fmt.Errorf("decisions %v, want > %v", v, decided)
		}
		if v := metricValue(fams, "treaty_group_last_applied_index", team); v < float64(put2.Index) {
			return fmt.Errorf("last applied %v, want >= %d", v, put2.Index)
		}
		return nil
	})
}

func scrapeMetrics(t *testing.T, m *Member) map[string]*dto.MetricFamily {
	t.Helper()
	addr := m.Node().MetricsAddr()
	if addr == nil {
		t.Fatalf("%s serves no metrics", m.Name)
	}
	resp, err := http.Get("http://" + addr.String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %s", resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return fams
}

// metricValue sums the counters and gauges of family name whose labels
// include want; 0 when there are none.
func metricValue(fams map[string]*dto.MetricFamily, name string, want map[string]string) float64 {
	f := fams[name]
	if f == nil {
		return 0
	}
	sum := 0.0
next:
	for _, m := range f.Metric {
		got := map[string]string{}
		for _, l := range m.Label {
			got[l.GetName()] = l.GetValue()
		}
		for k, v := range want {
			if got[k] != v {
				continue next
			}
		}
		sum += m.GetCounter().GetValue() + m.GetGauge().GetValue()
	}
	return sum
}
