package backend_test

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/treaty-dev/treaty/internal/backend"
	"github.com/treaty-dev/treaty/internal/config"
	"github.com/treaty-dev/treaty/internal/testnet"
)

// TestMCPToolThroughTheFederation: globex exposes the echo tool of a real MCP
// server process; acme lists it (with the tool's description and schema) and
// calls it through both nodes; after the server is killed, globex starts a new
// one and a later call succeeds.
func TestMCPToolThroughTheFederation(t *testing.T) {
	srv := backend.MCPTestServer(t)
	c := testnet.NewCluster(t, 2, testnet.Options{Names: []string{"acme", "globex"}})
	acme, globex := c.Member("acme"), c.Member("globex")
	pidfile := filepath.Join(t.TempDir(), "pid")
	globex.Expose(t, config.Capability{Name: "echo", MCP: &config.MCPBackend{Command: srv + " -pidfile " + pidfile, Tool: "echo"}})
	globex.Grant(t, "acme", "echo")

	caps, err := acme.Client().Caps(t.Context(), "globex")
	if err != nil {
		t.Fatal(err)
	}
	var list []struct {
		Name        string         `json:"name"`
		Description string         `json:"description"`
		InputSchema map[string]any `json:"input_schema"`
	}
	if err := json.Unmarshal(caps, &list); err != nil || len(list) != 1 {
		t.Fatalf("caps %s: %v", caps, err)
	}
	if list[0].Description != "echoes msg" || !strings.Contains(mustJSON(t, list[0].InputSchema), `"msg"`) {
		t.Errorf("caps do not carry the tool's description and schema: %s", caps)
	}

	var out struct {
		Msg       string   `json:"msg"`
		PID       int      `json:"pid"`
		TreatyEnv []string `json:"treaty_env"`
	}
	if err := json.Unmarshal([]byte(acme.MustCall(t, "globex", "echo", `{"msg":"hello globex"}`)), &out); err != nil {
		t.Fatal(err)
	}
	first := backend.ReadPID(t, pidfile, 0)
	if out.Msg != "hello globex" || out.PID != first || len(out.TreatyEnv) != 0 {
		t.Fatalf("output %+v (server %d)", out, first)
	}

	if err := syscall.Kill(first, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		o := acme.Call(t, "globex", "echo", `{"msg":"again"}`)
		if o.Err == nil {
			if err := json.Unmarshal([]byte(o.Out), &out); err != nil {
				t.Fatal(err)
			}
			if out.PID == first || out.Msg != "again" {
				t.Fatalf("answered %+v by the killed server %d", out, first)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("globex did not restart the server: %v", o)
		}
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
