package metrics

import (
	"fmt"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
)

// TestLabelsAreBounded: peers beyond the bound, reasons outside the closed
// set and over-long values all land in "other", so no peer can grow the
// series count.
func TestLabelsAreBounded(t *testing.T) {
	t.Parallel()
	m, err := New(Options{MaxPeers: 3, MaxCapabilities: 2})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 100 {
		m.Call("in", fmt.Sprintf("peer%d", i), fmt.Sprintf("cap%d", i), "ok")
		m.Refusal("in", "wire", fmt.Sprintf("made-up-%d", i))
	}
	m.Call("sideways", strings.Repeat("x", 65), "cap0", "exploded")
	if n := series(t, m, "treaty_calls_total"); n != 3+1+1 { // 3 peers, the overflow, the odd one
		t.Fatalf("calls series = %d, want 5", n)
	}
	if got := counter(t, m.calls.WithLabelValues(Other, Other, "in", "ok")); got != 97 {
		t.Fatalf("overflow series = %v, want 97", got)
	}
	if got := counter(t, m.calls.WithLabelValues(Other, "cap0", Other, Other)); got != 1 {
		t.Fatalf("out-of-set labels not mapped to other: %v", got)
	}
	if n := series(t, m, "treaty_refusals_total"); n != 1 {
		t.Fatalf("refusal series = %d, want 1 (reason other)", n)
	}
	if _, err := New(Options{MaxPeers: 5000}); err == nil || !strings.Contains(err.Error(), "MaxPeers") {
		t.Fatalf("New accepted MaxPeers 5000: %v", err)
	}
}

func series(t *testing.T, m *Metrics, name string) int {
	t.Helper()
	fams, err := m.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() == name {
			return len(f.Metric)
		}
	}
	return 0
}

func counter(t *testing.T, c interface{ Write(*dto.Metric) error }) float64 {
	t.Helper()
	var d dto.Metric
	if err := c.Write(&d); err != nil {
		t.Fatal(err)
	}
	return d.GetCounter().GetValue()
}

// TestNilMetricsIsANoOp: call sites need no nil checks.
func TestNilMetricsIsANoOp(t *testing.T) {
	t.Parallel()
	var m *Metrics
	m.Call("in", "p", "c", "ok")
	m.Refusal("in", "wire", "x")
	m.Findings("email", 2)
	m.Verdict("pass")
	if err := m.Register(nil); err != nil {
		t.Fatal(err)
	}
}

func TestCheckListen(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		addr  string
		allow bool
		ok    bool
	}{
		{"127.0.0.1:9420", false, true},
		{"[::1]:0", false, true},
		{"localhost:9420", false, true},
		{"0.0.0.0:9420", false, false},
		{"10.0.0.1:9420", false, false},
		{"0.0.0.0:9420", true, true},
		{"9420", false, false},
	} {
		if err := CheckListen(tc.addr, tc.allow); (err == nil) != tc.ok {
			t.Errorf("CheckListen(%q, %v) = %v", tc.addr, tc.allow, err)
		}
	}
}
