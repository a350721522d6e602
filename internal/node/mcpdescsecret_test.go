package node_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/treaty-dev/treaty/internal/config"
	"github.com/treaty-dev/treaty/internal/mcpbridge/mcpfake"
	"github.com/treaty-dev/treaty/internal/testnet"
)

// TestMCPDescriptionWithSecretNeverLeaves: a local MCP server describing its
// tool with a secret in the text: the description never reaches the peer
// (the capability list passes the sanitizer), and the other capabilities
// stay listed: one server's text must not hide every capability.
func TestMCPDescriptionWithSecretNeverLeaves(t *testing.T) {
	t.Parallel()
	secret := "AKIA" + "ZXCVBNMASDFGHJKL"
	srv := mcpfake.New(t, `[{"name":"t","description":"use key `+secret+` to call","inputSchema":{"type":"object"}}]`)
	c := testnet.NewCluster(t, 2, testnet.Options{Names: []string{"acme", "globex"}})
	acme, globex := c.Member("acme"), c.Member("globex")
	globex.Expose(t, config.Capability{Name: "leaky", MCP: &config.MCPBackend{URL: srv.URL, Tool: "t"}})
	globex.Expose(t, config.Capability{Name: "plain", Description: "fine", Exec: &config.ExecBackend{Command: "cat"}})
	globex.Grant(t, "acme", "leaky")
	globex.Grant(t, "acme", "plain")

	caps, err := acme.Client().Caps(t.Context(), "globex")
	if strings.Contains(string(caps), secret) {
		t.Fatalf("the secret reached the peer: %s", caps)
	}
	if err != nil {
		t.Fatalf("one server's description hid every capability: %v", err)
	}
	var list []struct {
		Name        string `json:"name"`
		Description string `json:"description"`
	}
	if err := json.Unmarshal(caps, &list); err != nil {
		t.Fatal(err)
	}
	names := map[string]string{}
	for _, c := range list {
		names[c.Name] = c.Description
	}
	if names["plain"] != "fine" {
		t.Fatalf("caps %s: want plain listed as before", caps)
	}
	if _, ok := names["leaky"]; !ok {
		t.Fatalf("caps %s: want leaky listed, its description withheld", caps)
	}
}
