package testnet

import (
	"net/http"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Metrics is one scrape of a member's /metrics, by family name.
type Metrics map[string]*dto.MetricFamily

// ScrapeMetrics fetches m's /metrics over HTTP, as Prometheus would, and
// parses it.
func (m *Member) ScrapeMetrics(t testing.TB) Metrics {
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

// Value sums the series of family name whose labels include want: counters
// and gauges by value, histograms by sample count; 0 when there are none.
func (ms Metrics) Value(name string, want map[string]string) float64 {
	f := ms[name]
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
		sum += m.GetCounter().GetValue() + m.GetGauge().GetValue() + float64(m.GetHistogram().GetSampleCount())
	}
	return sum
}
