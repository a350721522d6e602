package backend_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/treaty-dev/treaty/internal/backend"
	"github.com/treaty-dev/treaty/internal/config"
	"github.com/treaty-dev/treaty/internal/refusal"
	"github.com/treaty-dev/treaty/internal/testnet"
)

// TestMCPOversizeMessageThroughTheFederation: a stdio MCP server's endless
// message reaches the calling peer as a remote refusal at stage backend whose
// reason names the message limit (2 × max_body_bytes + 1 MiB), never the
// server's bytes.
func TestMCPOversizeMessageThroughTheFederation(t *testing.T) {
	srv := backend.MCPTestServer(t)
	c := testnet.NewCluster(t, 2, testnet.Options{Names: []string{"acme", "globex"}})
	acme, globex := c.Member("acme"), c.Member("globex")
	globex.Expose(t, config.Capability{Name: "flood", MCP: &config.MCPBackend{Command: srv, Tool: "flood"}})
	globex.Grant(t, "acme", "flood")

	o := acme.Call(t, "globex", "flood", `{}`)
	var r *refusal.Error
	if !errors.As(o.Err, &r) || r.Stage != refusal.StageBackend || !r.Remote ||
		!strings.HasPrefix(r.Reason, "mcp_server_message_exceeds_limit_max_message_bytes_") {
		t.Fatalf("an endless message: %v, want a remote backend refusal naming the message limit", o.Err)
	}
	if strings.Contains(r.Reason, "xxxx") {
		t.Fatalf("the server's bytes reached acme: %q", r.Reason)
	}
}
