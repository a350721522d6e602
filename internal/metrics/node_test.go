package metrics_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/treaty-dev/treaty/internal/backend"
	"github.com/treaty-dev/treaty/internal/config"
	"github.com/treaty-dev/treaty/internal/refusal"
	"github.com/treaty-dev/treaty/internal/testnet"
)

func labels(kv ...string) map[string]string {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return m
}

const metricsYAML = "metrics:\n  listen: 127.0.0.1:0\n"

// TestMetricsOfARealCall: two real nodes, one granted call and one refused
// call; both ends' counters, stage histograms, trust and audit gauges move
// as the calls did, as seen by a scrape over HTTP.
func TestMetricsOfARealCall(t *testing.T) {
	t.Parallel()
	c := testnet.NewCluster(t, 2, testnet.Options{Names: []string{"acme", "beta"},
		Config: map[string]string{"acme": metricsYAML, "beta": metricsYAML}})
	acme, beta := c.Members[0], c.Members[1]
	beta.Handle(t, "echo", func(_ context.Context, inv backend.Invocation) ([]byte, error) { return inv.Input, nil })
	beta.Grant(t, "acme", "echo")
	beta.Handle(t, "secret", func(context.Context, backend.Invocation) ([]byte, error) { return []byte(`{}`), nil })

	before := beta.ScrapeMetrics(t)
	acme.MustCall(t, "beta", "echo", `{"q":"hello"}`)
	out := acme.Call(t, "beta", "secret", `{}`)
	if out.Code != refusal.ExitDenied {
		t.Fatalf("ungranted call: %v, want exit %d", out, refusal.ExitDenied)
	}

	a, b := acme.ScrapeMetrics(t), beta.ScrapeMetrics(t)
	for _, tc := range []struct {
		fams testnet.Metrics
		name string
		l    map[string]string
		want float64
	}{
		{a, "treaty_calls_total", labels("peer", "beta", "capability", "echo", "direction", "out", "outcome", "ok"), 1},
		{a, "treaty_calls_total", labels("peer", "beta", "capability", "secret", "direction", "out", "outcome", "refused"), 1},
		{a, "treaty_refusals_total", labels("direction", "out", "stage", "policy", "reason", "not_granted"), 1},
		{b, "treaty_calls_total", labels("peer", "acme", "capability", "echo", "direction", "in", "outcome", "ok"), 1},
		{b, "treaty_calls_total", labels("peer", "acme", "capability", "secret", "direction", "in", "outcome", "refused"), 1},
		{b, "treaty_refusals_total", labels("direction", "in", "stage", "policy", "reason", "not_granted"), 1},
		{b, "treaty_screen_verdicts_total", labels("verdict", "pass"), 1},
		{b, "treaty_handshakes_accepted_total", labels("side", "accept"), 1},
		{a, "treaty_handshakes_accepted_total", labels("side", "dial"), 1},
		{b, "treaty_peer_trust_level", labels("peer", "acme"), 1}, // exactly one level is 1
		{a, "treaty_peer_breaker_state", labels("peer", "beta", "state", "closed"), 1},
		{a, "treaty_peer_breaker_state", labels("peer", "beta"), 1}, // and no other state
	} {
		if got := tc.fams.Value(tc.name, tc.l); got < tc.want || (tc.name != "treaty_handshakes_accepted_total" && got != tc.want) {
			t.Errorf("%s%v = %v, want %v", tc.name, tc.l, got, tc.want)
		}
	}
	// Every timed stage ran on one side or the other.
	for _, st := range []struct {
		fams  testnet.Metrics
		stage string
	}{{a, "sign"}, {a, "gates"}, {a, "sanitize"}, {a, "screen"}, {a, "audit"},
		{b, "verify"}, {b, "gates"}, {b, "policy"}, {b, "screen"}, {b, "backend"}, {b, "sanitize"}, {b, "audit"}} {
		if st.fams.Value("treaty_stage_duration_seconds", labels("stage", st.stage)) < 1 {
			t.Errorf("stage %s recorded no duration", st.stage)
		}
	}
	if got, was := b.Value("treaty_audit_entries", nil), before.Value("treaty_audit_entries", nil); got < was+2 {
		t.Errorf("beta's audit entries %v -> %v: want at least the served and the refused call", was, got)
	}
	if b.Value("treaty_audit_commit_batch_entries", nil) < 2 || b.Value("treaty_audit_size_bytes", nil) <= 0 {
		t.Error("the audit commit histogram or size did not move")
	}
	// The echo's input and output are charged to acme's budget at beta.
	if in, out := b.Value("treaty_peer_budget_bytes", labels("peer", "acme", "direction", "in")),
		b.Value("treaty_peer_budget_bytes", labels("peer", "acme", "direction", "out")); in < 13 || out < 13 {
		t.Errorf("budget bytes of acme at beta: in %v, out %v; want at least the 13-byte input and its echo", in, out)
	}
	if s := b.Value("treaty_peer_trust_score", labels("peer", "acme")); s <= 0 || s > 1 {
		t.Errorf("trust score of acme = %v", s)
	}
}

// TestMetricsSanitizerFindings: a secret in outbound input is blocked and
// counted by category, and the value is nowhere in the scrape.
func TestMetricsSanitizerFindings(t *testing.T) {
	t.Parallel()
	c := testnet.NewCluster(t, 2, testnet.Options{Config: map[string]string{"n0": metricsYAML}})
	n0, n1 := c.Members[0], c.Members[1]
	n1.Handle(t, "echo", func(_ context.Context, inv backend.Invocation) ([]byte, error) { return inv.Input, nil })
	n1.Grant(t, "n0", "echo")
	secret := "AKIA" + "QWERTYUIOPASDFGH"
	out := n0.Call(t, "n1", "echo", fmt.Sprintf(`{"key":%q}`, secret))
	if out.Code != refusal.ExitBlocked {
		t.Fatalf("call with a secret: %v, want blocked", out)
	}
	fams := n0.ScrapeMetrics(t)
	total := 0.0
	for _, m := range fams["treaty_sanitizer_findings_total"].GetMetric() {
		total += m.Counter.GetValue()
	}
	if total < 1 {
		t.Error("no sanitizer finding counted")
	}
	if fams.Value("treaty_refusals_total", labels("direction", "out", "stage", "sanitize", "reason", "blocked")) != 1 {
		t.Error("the blocked call is not counted as a sanitize refusal")
	}
	resp, err := http.Get("http://" + n0.Node().MetricsAddr().String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var sb strings.Builder
	buf := make([]byte, 32<<10)
	for {
		k, err := resp.Body.Read(buf)
		sb.Write(buf[:k])
		if err != nil {
			break
		}
	}
	if strings.Contains(sb.String(), secret) {
		t.Fatal("the secret is in the metrics")
	}
}

// TestMetricsOffByDefault: without metrics.listen nothing is served.
func TestMetricsOffByDefault(t *testing.T) {
	t.Parallel()
	c := testnet.NewCluster(t, 1, testnet.Options{})
	if a := c.Members[0].Node().MetricsAddr(); a != nil {
		t.Fatalf("metrics served at %v without metrics.listen", a)
	}
}

// TestMetricsOfAStream: a finished stream counts as one call on both sides.
func TestMetricsOfAStream(t *testing.T) {
	t.Parallel()
	c := testnet.NewCluster(t, 2, testnet.Options{Config: map[string]string{"n0": metricsYAML, "n1": metricsYAML}})
	n0, n1 := c.Members[0], c.Members[1]
	n1.Expose(t, config.Capability{Name: "three", Stream: true,
		Exec: &config.ExecBackend{Command: testnet.WriteScript(t, `for i in 1 2 3; do echo "{\"i\":$i}"; done`)}})
	n1.Grant(t, "n0", "three")
	events := 0
	if err := n0.Client().Stream(t.Context(), "n1", "three", json.RawMessage(`{}`), func(json.RawMessage) error {
		events++
		return nil
	}); err != nil || events != 3 {
		t.Fatalf("stream: %v after %d events", err, events)
	}
	if got := n1.ScrapeMetrics(t).Value("treaty_calls_total", labels("peer", "n0", "capability", "three", "direction", "in", "outcome", "ok")); got != 1 {
		t.Errorf("callee counted %v streams, want 1", got)
	}
	if got := n0.ScrapeMetrics(t).Value("treaty_calls_total", labels("peer", "n1", "capability", "three", "direction", "out", "outcome", "ok")); got != 1 {
		t.Errorf("caller counted %v streams, want 1", got)
	}
}

// TestMetricsOfARefusedHandshake: a node outside the peer book is refused
// at the handshake, and the refusal is counted by reason.
func TestMetricsOfARefusedHandshake(t *testing.T) {
	t.Parallel()
	c := testnet.NewCluster(t, 1, testnet.Options{Names: []string{"acme"}, Config: map[string]string{"acme": metricsYAML}})
	acme := c.Members[0]
	stranger := c.Add(t, "stranger", "")
	stranger.AddPeer(t, acme)
	acme.Handle(t, "echo", func(_ context.Context, inv backend.Invocation) ([]byte, error) { return inv.Input, nil })
	if out := stranger.Call(t, "acme", "echo", `{}`); out.Code != refusal.ExitUnreachable && out.Code != refusal.ExitDenied {
		t.Fatalf("a stranger's call: %v", out)
	}
	fams := acme.ScrapeMetrics(t)
	total := fams.Value("treaty_handshakes_refused_total", nil)
	if total < 1 || fams.Value("treaty_handshakes_refused_total", labels("reason", "unknown_key")) < 1 {
		t.Fatalf("refused handshakes = %v; want one for unknown_key: %v", total, fams["treaty_handshakes_refused_total"])
	}
	if fams.Value("treaty_handshakes_accepted_total", labels("side", "accept")) != 0 {
		t.Fatal("a refused handshake counted as accepted")
	}
}
