package node_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/treaty-dev/treaty/internal/config"
	"github.com/treaty-dev/treaty/internal/mcpbridge/mcpfake"
	"github.com/treaty-dev/treaty/internal/refusal"
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

// TestMCPToolErrorTextLoggedScrubbed: a local MCP tool failing with a secret
// and an email address in its error text: the peer gets the short reason,
// and the node's log keeps the text for the operator with both values
// redacted (secrets never reach the log in clear).
func TestMCPToolErrorTextLoggedScrubbed(t *testing.T) {
	t.Parallel()
	secret := "AKIA" + "QWERTYUIOPASDFGH"
	email := "ops.lead" + "@example.org"
	srv := mcpfake.New(t, `[{"name":"t","description":"d","inputSchema":{"type":"object"}}]`)
	srv.OnCall(func(w http.ResponseWriter, id json.RawMessage) {
		mcpfake.Result(w, id, `{"isError":true,"content":[{"type":"text","text":"denied for key `+secret+`, ask `+email+` (quota)"}]}`)
	})
	c := testnet.NewCluster(t, 2, testnet.Options{Names: []string{"acme", "globex"}})
	acme, globex := c.Member("acme"), c.Member("globex")
	globex.Expose(t, config.Capability{Name: "tool", MCP: &config.MCPBackend{URL: srv.URL, Tool: "t"}})
	globex.Grant(t, "acme", "tool")

	out := acme.Call(t, "globex", "tool", `{}`)
	if out.Code != refusal.ExitRemoteFail {
		t.Fatalf("a failing tool: %v, want exit %d", out, refusal.ExitRemoteFail)
	}
	for _, m := range c.Members {
		for _, v := range []string{secret, email} {
			if strings.Contains(m.Log(), v) {
				t.Errorf("%s's log holds %q:\n%s", m.Name, v, m.Log())
			}
		}
	}
	if !strings.Contains(globex.Log(), "quota") {
		t.Errorf("globex's log lost the tool's error text:\n%s", globex.Log())
	}
}

// TestBackendLogsRedacted: what a local MCP server says when it fails (here
// a tools/list error naming a secret) reaches the node's log only redacted:
// backends log through a handler that scrubs every value.
func TestBackendLogsRedacted(t *testing.T) {
	t.Parallel()
	secret := "AKIA" + "MNBVCXZLKJHGFDSA"
	srv := mcpfake.New(t, `[]`)
	srv.OnList(func(w http.ResponseWriter, id json.RawMessage) {
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"jsonrpc":"2.0","id":` + string(id) + `,"error":{"code":-32603,"message":"backend key ` + secret + ` rejected"}}`))
	})
	c := testnet.NewCluster(t, 1, testnet.Options{Names: []string{"globex"}})
	globex := c.Member("globex")
	globex.Expose(t, config.Capability{Name: "tool", MCP: &config.MCPBackend{URL: srv.URL, Tool: "t"}})
	log := globex.Log()
	if strings.Contains(log, secret) {
		t.Fatalf("the node's log holds the server's secret:\n%s", log)
	}
	if !strings.Contains(log, "did not describe its tool") || !strings.Contains(log, "rejected") {
		t.Fatalf("the server's failure was not logged:\n%s", log)
	}
}
