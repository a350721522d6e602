package node_test

import (
	"strings"
	"testing"

	"github.com/treaty-dev/treaty/internal/testnet"
)

// A reload that changes a key read only at start says so: a canary added
// to a running node is not enforced until it restarts, and the operator
// must not believe otherwise.
func TestReloadWarnsAboutStartOnlyKeys(t *testing.T) {
	c := testnet.NewCluster(t, 1, testnet.Options{})
	m := c.Members[0]
	m.AppendConfig(t, "sanitize:\n  canaries: [\"canary-value-0042\"]\n")
	if log := m.Log(); !strings.Contains(log, "config.restart_needed") || !strings.Contains(log, "sanitize.canaries") {
		t.Fatalf("no restart warning for a changed canary in the log:\n%s", log)
	}
}
