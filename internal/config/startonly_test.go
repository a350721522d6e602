package config

import (
	"slices"
	"testing"
)

func TestStartOnlyChanges(t *testing.T) {
	old := &Config{Name: "a", Listen: DefaultListen}
	next := *old
	next.Name = "b"
	next.Budget.MaxDepth = 3
	if got := StartOnlyChanges(old, &next); len(got) != 0 {
		t.Fatalf("live keys reported as start-only: %v", got)
	}
	next.Listen = "0.0.0.0:7420"
	next.Sanitize.Canaries = []string{"s3cret-canary"}
	next.Metrics.Listen = "127.0.0.1:9100"
	next.Membership.Enabled = true
	next.Membership.Org = "Acme"
	next.Relay.Via = []string{"globex"}
	want := []string{"listen", "sanitize.canaries", "metrics", "membership.enabled", "membership.org", "relay"}
	if got := StartOnlyChanges(old, &next); !slices.Equal(got, want) {
		t.Fatalf("StartOnlyChanges = %v, want %v", got, want)
	}
}
