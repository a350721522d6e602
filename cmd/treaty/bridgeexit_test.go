package main

import (
	"strings"
	"testing"
)

// TestBridgeUsageExitCodes: every bad argument of treaty mcp and treaty a2a
// is a usage error (2) naming it, before anything is served or written; a
// port that cannot be a port is a bad argument, not a runtime error (1).
func TestBridgeUsageExitCodes(t *testing.T) {
	dir, _, _ := tlHome(t)
	for _, tc := range []struct {
		args []string
		msg  string
	}{
		{[]string{"a2a", "--home", dir}, "--http"},
		{[]string{"a2a", "--home", dir, "--http", "192.0.2.1:7422"}, "loopback"},
		{[]string{"a2a", "--home", dir, "--http", "127.0.0.1:99999"}, "port"},
		{[]string{"a2a", "--home", dir, "--http", "127.0.0.1:http"}, "port"},
		{[]string{"a2a", "--home", dir, "--http", "127.0.0.1:0", "--poll", "1ms"}, "--poll"},
		{[]string{"mcp", "--home", dir, "--http", "192.0.2.1:7422"}, "loopback"},
		{[]string{"mcp", "--home", dir, "--http", "127.0.0.1:70000"}, "port"},
		{[]string{"mcp", "--home", dir, "--http", "[::1]:-1"}, "port"},
		{[]string{"mcp", "--home", dir, "--poll", "1ms"}, "--poll"},
		{[]string{"mcp", "--home", dir, "extra"}, ""},
	} {
		_, stderr, code := runTL(t, tc.args...)
		if code != 2 || !strings.Contains(stderr, tc.msg) {
			t.Errorf("%v: exit %d, stderr %q; want 2 naming %q", tc.args, code, stderr, tc.msg)
		}
	}
}
