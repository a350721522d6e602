package config

import (
	"strings"
	"testing"
)

// TestEnvErrorHidesTheEntry: an env entry is where secrets live. One written
// without its NAME= (a pasted key) or with an invalid name is refused without
// echoing it: a refused reload's error goes to the node's log and, as the
// report of a policy.changed entry, into the audit log forever.
func TestEnvErrorHidesTheEntry(t *testing.T) {
	t.Parallel()
	const secret = "sk-live-4eC39HqLyjWDarjtT1zdp7dc"
	for _, kv := range []string{secret, secret + "=x", "Bearer " + secret + "=1"} {
		c := &Config{Name: "n", Listen: DefaultListen, Capabilities: []Capability{{Name: "cap", Exec: &ExecBackend{Command: "x", Env: []string{"A=1", kv}}}}}
		err := c.Validate()
		if err == nil || !strings.Contains(err.Error(), "env[1]") {
			t.Fatalf("env entry %q: %v, want a refusal naming env[1]", kv, err)
		}
		if name, _, _ := strings.Cut(kv, "="); strings.Contains(err.Error(), name) {
			t.Fatalf("the error echoes the entry: %v", err)
		}
	}
}
