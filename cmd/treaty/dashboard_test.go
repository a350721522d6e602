package main

import (
	"strings"
	"testing"
)

// TestDashboardFlags: bad addresses and polls are usage errors (exit 2),
// and a non-loopback address needs --allow-non-loopback.
func TestDashboardFlags(t *testing.T) {
	dir, _, _ := tlHome(t)
	for _, tc := range []struct {
		args []string
		msg  string
	}{
		{[]string{"dashboard", "--home", dir}, "--http"},
		{[]string{"dashboard", "--home", dir, "--http", "0.0.0.0:0"}, "not a loopback address"},
		{[]string{"dashboard", "--home", dir, "--http", "example.com:7780"}, "not a loopback address"},
		{[]string{"dashboard", "--home", dir, "--http", "127.0.0.1:0", "--poll", "1ms"}, "--poll"},
		{[]string{"dashboard", "--home", dir, "--http", "127.0.0.1:0", "--verify-every", "10ms"}, "--verify-every"},
		{[]string{"dashboard", "--home", dir, "--http", "127.0.0.1:0", "extra"}, ""},
	} {
		_, errOut, code := runTL(t, tc.args...)
		if code != 2 || !strings.Contains(errOut, tc.msg) {
			t.Errorf("%v: exit %d %q; want 2 naming %q", tc.args, code, errOut, tc.msg)
		}
	}
}
