package config

import (
	"strings"
	"testing"
)

// TestMetricsListen: the endpoint is off by default, loopback unless
// allowed, and a bad address names the key.
func TestMetricsListen(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		yaml, err string
	}{
		{"name: a\n", ""},
		{"name: a\nmetrics:\n  listen: 127.0.0.1:9420\n", ""},
		{"name: a\nmetrics:\n  listen: '[::1]:0'\n", ""},
		{"name: a\nmetrics:\n  listen: 0.0.0.0:9420\n", "metrics.allow_non_loopback"},
		{"name: a\nmetrics:\n  listen: 0.0.0.0:9420\n  allow_non_loopback: true\n", ""},
		{"name: a\nmetrics:\n  listen: 9420\n", "metrics.listen"},
		{"name: a\nmetrics:\n  listen: 127.0.0.1:99999\n", "metrics.listen"},
		{"name: a\nmetrics:\n  listn: 127.0.0.1:9420\n", "listn"},
	} {
		c, err := Parse([]byte(tc.yaml))
		switch {
		case tc.err == "" && err != nil:
			t.Errorf("%q: %v", tc.yaml, err)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("%q: error %v; want one naming %s", tc.yaml, err, tc.err)
		case tc.err == "" && tc.yaml == "name: a\n" && c.Metrics.Listen != "":
			t.Errorf("metrics on by default: %q", c.Metrics.Listen)
		}
	}
}
