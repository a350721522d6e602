package node_test

import (
	"errors"
	"testing"

	"github.com/treaty-dev/treaty/internal/config"
	"github.com/treaty-dev/treaty/internal/home"
	"github.com/treaty-dev/treaty/internal/refusal"
	"github.com/treaty-dev/treaty/internal/testnet"
	"github.com/treaty-dev/treaty/localapi"
)

// TestDeadMCPServerDoesNotHoldUpReloads: an MCP server that cannot start does
// not fail the reload that carries it, so the other changes in that reload (a
// revocation above all) still take effect; its own calls fail at the backend
// stage.
func TestDeadMCPServerDoesNotHoldUpReloads(t *testing.T) {
	c := testnet.NewCluster(t, 2, testnet.Options{Names: []string{"acme", "globex"}})
	acme, globex := c.Member("acme"), c.Member("globex")
	globex.ExposeExec(t, "echo", "cat")
	globex.Grant(t, "acme", "echo")
	acme.MustCall(t, "globex", "echo", `{"n":1}`)

	// Expose reloads and fails the test if the reload fails.
	globex.Expose(t, config.Capability{Name: "tool", MCP: &config.MCPBackend{Command: testnet.WriteScript(t, "exit 3"), Tool: "t"}})
	globex.Grant(t, "acme", "tool")
	o := acme.Call(t, "globex", "tool", `{}`)
	var e *localapi.Error
	if !errors.As(o.Err, &e) || e.Stage != refusal.StageBackend || !e.Remote {
		t.Fatalf("call of a dead MCP server: %v, want a remote backend failure", o)
	}

	if _, _, err := home.Ungrant(globex.Home, "acme", "echo"); err != nil {
		t.Fatal(err)
	}
	globex.Reload(t)
	o = acme.Call(t, "globex", "echo", `{"n":2}`)
	if !errors.As(o.Err, &e) || e.Stage != refusal.StagePolicy {
		t.Fatalf("after the revocation: %v, want a policy refusal", o)
	}
}
