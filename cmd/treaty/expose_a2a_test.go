package main

import (
	"strings"
	"testing"

	"github.com/treaty-dev/treaty/internal/config"
)

func TestExposeA2A(t *testing.T) {
	dir, _, _ := tlHome(t)
	mustRun(t, "expose", "--home", dir, "triage", "--a2a", "http://127.0.0.1:9100", "--skill", "triage", "--stream")
	c, err := config.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Capabilities) != 1 || c.Capabilities[0].A2A == nil || *c.Capabilities[0].A2A != (config.A2ABackend{URL: "http://127.0.0.1:9100", Skill: "triage"}) ||
		!c.Capabilities[0].Stream {
		t.Fatalf("capabilities: %+v", c.Capabilities)
	}
	for _, tc := range []struct {
		name string
		args []string
		msg  string
	}{
		{"no skill", []string{"x", "--a2a", "http://127.0.0.1:9100"}, "--skill"},
		{"skill without a2a", []string{"x", "--exec", "/bin/true", "--skill", "s"}, "--skill"},
		{"two backends", []string{"x", "--a2a", "http://127.0.0.1:9100", "--http", "http://127.0.0.1:9", "--skill", "s"}, "exactly one of"},
		{"remote url", []string{"x", "--a2a", "http://192.0.2.1:9100", "--skill", "s"}, "--a2a \"http://192.0.2.1:9100\": 192.0.2.1 is not a loopback address"},
		{"not http", []string{"x", "--a2a", "grpc://127.0.0.1:9100", "--skill", "s"}, "--a2a"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, stderr, code := runTL(t, append([]string{"expose", "--home", dir}, tc.args...)...)
			if code != 2 || !strings.Contains(stderr, tc.msg) {
				t.Fatalf("exit %d, stderr %q; want 2 and %q", code, stderr, tc.msg)
			}
		})
	}
	mustRun(t, "expose", "--home", dir, "remote", "--a2a", "http://192.0.2.1:9100", "--skill", "s", "--allow-remote")
}
