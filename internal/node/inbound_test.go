package node

import (
	"testing"
)

func TestTakeUsage(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, in, out string
		cost          float64
	}{
		{"no usage", `{"a":1}`, `{"a":1}`, 0},
		{"usage stripped and charged", `{"a":1,"treaty_usage":{"cost":12.5}}`, `{"a":1}`, 12.5},
		{"negative cost ignored", `{"treaty_usage":{"cost":-3}}`, `{"treaty_usage":{"cost":-3}}`, 0},
		{"not an object", `["treaty_usage"]`, `["treaty_usage"]`, 0},
		{"malformed usage kept", `{"treaty_usage":"lots"}`, `{"treaty_usage":"lots"}`, 0},
		{"nested key is not usage", `{"x":{"treaty_usage":{"cost":5}}}`, `{"x":{"treaty_usage":{"cost":5}}}`, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, cost := takeUsage([]byte(tc.in))
			if string(out) != tc.out || cost != tc.cost {
				t.Fatalf("takeUsage(%s) = %s, %v; want %s, %v", tc.in, out, cost, tc.out, tc.cost)
			}
		})
	}
}

func TestToken(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"exited with status 3":       "exited_with_status_3",
		"timed out after 500ms":      "timed_out_after_500ms",
		"":                           "failed",
		"\x1b[31mRED\x1b[0m; rm -rf": "31mred_0m_rm_-rf",
	} {
		if got := token(in); got != want {
			t.Errorf("token(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestRoute(t *testing.T) {
	t.Parallel()
	for path, want := range map[string][2]string{
		"/v1/call/review":   {"call", "review"},
		"/v1/stream/ticks":  {"stream", "ticks"},
		"/v1/caps":          {"caps", capsCapability},
		"/v1/audit":         {"audit", auditCapability},
		"/v1/call/Review":   {"", ""},
		"/v1/call/a/b":      {"", ""},
		"/v2/call/review":   {"", ""},
		"/v1/delete/review": {"", ""},
		"/v1/call/":         {"", ""},
		"/v1/call/revіew":   {"", ""}, // Cyrillic і
	} {
		k, c := route(path)
		if k != want[0] || c != want[1] {
			t.Errorf("route(%q) = %q, %q; want %q, %q", path, k, c, want[0], want[1])
		}
	}
}
