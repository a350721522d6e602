package node

import (
	"encoding/json"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/treaty-dev/treaty/internal/backend"
	"github.com/treaty-dev/treaty/internal/config"
	"github.com/treaty-dev/treaty/internal/mcpbridge/mcpfake"
	"github.com/treaty-dev/treaty/internal/wire"
)

// TestMCPServerSchemaCannotRefuseReload: a local MCP server whose tool
// describes an input schema that does not compile (a reference outside
// itself) must not make the whole configuration invalid: that would refuse
// every other change of the reload (a revocation among them) and keep the
// node from starting. The schema is dropped and the capability kept.
func TestMCPServerSchemaCannotRefuseReload(t *testing.T) {
	t.Parallel()
	srv := mcpfake.New(t, `[{"name":"t","description":"d","inputSchema":{"type":"object","$ref":"http://198.51.100.1/x.json"}}]`)
	c := config.Capability{Name: "m", MCP: &config.MCPBackend{URL: srv.URL, Tool: "t"}}
	cp, err := buildCapability(c, wire.Limits{}.WithDefaults(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("a server's bad schema refused the configuration: %v", err)
	}
	if cp.Info.InputSchema != nil || cp.Info.Description != "d" {
		t.Fatalf("info %+v: want the description and no schema", cp.Info)
	}
}

// TestMCPServerDescriptionBounded: a server's description is cut to
// backend.MaxDescribed (it goes to every peer in every capability list).
func TestMCPServerDescriptionBounded(t *testing.T) {
	t.Parallel()
	srv := mcpfake.New(t, `[{"name":"t","description":"`+strings.Repeat("é", 1<<20)+`","inputSchema":{"type":"object"}}]`)
	c := config.Capability{Name: "m", MCP: &config.MCPBackend{URL: srv.URL, Tool: "t"}}
	cp, err := buildCapability(c, wire.Limits{}.WithDefaults(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if len(cp.Info.Description) > backend.MaxDescribed || len(cp.Info.Description) == 0 {
		t.Fatalf("description of %d bytes", len(cp.Info.Description))
	}
}

// TestMCPServerSchemaBounded: a server's input schema over
// backend.MaxDescribedSchema is not used (every peer would be sent it in
// every capability list).
func TestMCPServerSchemaBounded(t *testing.T) {
	t.Parallel()
	big := `{"type":"object","description":"` + strings.Repeat("x", backend.MaxDescribedSchema) + `"}`
	srv := mcpfake.New(t, `[{"name":"t","description":"d","inputSchema":`+big+`}]`)
	c := config.Capability{Name: "m", MCP: &config.MCPBackend{URL: srv.URL, Tool: "t"}}
	var log strings.Builder
	var mu sync.Mutex
	cp, err := buildCapability(c, wire.Limits{}.WithDefaults(), slog.New(slog.NewTextHandler(lockedWriter{&mu, &log}, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if cp.Info.InputSchema != nil || cp.Info.Description != "d" {
		t.Fatalf("a %d-byte schema was kept", len(big))
	}
	mu.Lock()
	defer mu.Unlock()
	if !strings.Contains(log.String(), "over the limit") {
		t.Fatalf("the MCP backend does not log to the node's logger; it logged %q", log.String())
	}
}

// TestReloadRedescribesMCPTool: a reload that leaves an MCP capability's
// configuration unchanged still asks its server for the tool again, so a
// server updated in place (new description, new schema) is shown to peers
// from the next reload, through the same backend (no new server). A server
// that does not answer then keeps the last description.
func TestReloadRedescribesMCPTool(t *testing.T) {
	t.Parallel()
	srv := mcpfake.New(t, `[{"name":"t","description":"v1","inputSchema":{"type":"object"}}]`)
	n, dir, _, _ := openMovesNode(t)
	cfg, err := config.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Capabilities = append(cfg.Capabilities, config.Capability{Name: "m", MCP: &config.MCPBackend{URL: srv.URL, Tool: "t"}})
	if err := config.Save(dir, cfg); err != nil {
		t.Fatal(err)
	}
	if err := n.Reload(); err != nil {
		t.Fatal(err)
	}
	m0 := n.state.Load().caps["m"]
	if m0.Info.Description != "v1" {
		t.Fatalf("description %q", m0.Info.Description)
	}

	srv.SetTools(`[{"name":"t","description":"v2","inputSchema":{"type":"object","properties":{"q":{"type":"string"}},"required":["q"]}}]`)
	if err := n.Reload(); err != nil {
		t.Fatal(err)
	}
	m1 := n.state.Load().caps["m"]
	if m1.Info.Description != "v2" || m1.Info.InputSchema["required"] == nil {
		t.Fatalf("after the server changed, a reload shows %+v", m1.Info)
	}
	if m1.Backend != m0.Backend {
		t.Fatal("the backend was built again: re-listing the tool should not restart its server")
	}
	if m0.Info.Description != "v1" {
		t.Fatal("the capability of the running state was changed in place")
	}
	if err := m1.checkInput([]byte(`{}`)); err == nil {
		t.Fatal("the new schema is not enforced")
	}

	// Unchanged: the same capability is kept.
	if err := n.Reload(); err != nil {
		t.Fatal(err)
	}
	if n.state.Load().caps["m"] != m1 {
		t.Fatal("a reload with nothing changed replaced the capability")
	}

	// A server that fails to list keeps the last description.
	srv.OnList(func(w http.ResponseWriter, id json.RawMessage) {
		http.Error(w, "down", http.StatusServiceUnavailable)
	})
	if err := n.Reload(); err != nil {
		t.Fatal(err)
	}
	if d := n.state.Load().caps["m"].Info.Description; d != "v2" {
		t.Fatalf("a server failing to list changed the description to %q", d)
	}
}

// TestReloadRedescribesA2ASkill: as for an MCP tool, a reload reads a kept
// A2A capability's card again, so an agent updated in place is described
// anew; an agent that does not answer keeps the last description.
func TestReloadRedescribesA2ASkill(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	desc, down := "v1", false
	mux := http.NewServeMux()
	hs := httptest.NewUnstartedServer(mux)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs.Listener = ln
	hs.Start()
	t.Cleanup(hs.Close)
	mux.HandleFunc("/.well-known/agent-card.json", func(w http.ResponseWriter, _ *http.Request) {
		mu.Lock()
		d, off := desc, down
		mu.Unlock()
		if off {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"name": "agent", "description": "a", "url": hs.URL + "/",
			"preferredTransport": "JSONRPC", "protocolVersion": "0.3.0", "version": "1",
			"capabilities": map[string]any{}, "defaultInputModes": []string{"text/plain"}, "defaultOutputModes": []string{"text/plain"},
			"skills": []map[string]any{{"id": "s", "name": "s", "description": d, "tags": []string{}}}})
	})
	n, dir, _, _ := openMovesNode(t)
	cfg, err := config.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Capabilities = append(cfg.Capabilities, config.Capability{Name: "a", A2A: &config.A2ABackend{URL: hs.URL, Skill: "s"}})
	if err := config.Save(dir, cfg); err != nil {
		t.Fatal(err)
	}
	if err := n.Reload(); err != nil {
		t.Fatal(err)
	}
	a0 := n.state.Load().caps["a"]
	if a0.Info.Description != "v1" {
		t.Fatalf("description %q", a0.Info.Description)
	}
	mu.Lock()
	desc = "v2"
	mu.Unlock()
	if err := n.Reload(); err != nil {
		t.Fatal(err)
	}
	a1 := n.state.Load().caps["a"]
	if a1.Info.Description != "v2" || a1.Backend != a0.Backend {
		t.Fatalf("after the card changed, a reload shows %q (backend kept: %v)", a1.Info.Description, a1.Backend == a0.Backend)
	}
	mu.Lock()
	down = true
	mu.Unlock()
	if err := n.Reload(); err != nil {
		t.Fatal(err)
	}
	if d := n.state.Load().caps["a"].Info.Description; d != "v2" {
		t.Fatalf("an agent that is down changed the description to %q", d)
	}
}

// TestReloadRedescribesAtOnce: kept MCP capabilities whose servers stopped
// answering tools/list, and capabilities built again at each reload because
// their servers never answered, hold a reload up for one describe timeout,
// not one per capability (a reload carries every other change too: a
// revocation must not wait behind slow servers).
func TestReloadRedescribesAtOnce(t *testing.T) {
	t.Parallel()
	n, dir, _, _ := openMovesNode(t)
	cfg, err := config.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	var srvs []*mcpfake.Server
	for _, name := range []string{"m1", "m2", "m3", "m4"} {
		srv := mcpfake.New(t, `[{"name":"t","description":"d","inputSchema":{"type":"object"}}]`)
		srvs = append(srvs, srv)
		cfg.Capabilities = append(cfg.Capabilities, config.Capability{Name: name, MCP: &config.MCPBackend{URL: srv.URL, Tool: "t"}})
	}
	for _, name := range []string{"h1", "h2", "h3"} {
		srv := mcpfake.New(t, `[]`)
		srv.Hang("initialize")
		cfg.Capabilities = append(cfg.Capabilities, config.Capability{Name: name, MCP: &config.MCPBackend{URL: srv.URL, Tool: "t"}})
	}
	if err := config.Save(dir, cfg); err != nil {
		t.Fatal(err)
	}
	if err := n.Reload(); err != nil {
		t.Fatal(err)
	}
	for _, srv := range srvs {
		srv.Hang("tools/list")
	}
	start := time.Now()
	if err := n.Reload(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 2*mcpDescribeTimeout+time.Second {
		t.Fatalf("a reload with 7 slow MCP servers took %v", d)
	}
	if d := n.state.Load().caps["m3"].Info.Description; d != "d" {
		t.Fatalf("description %q", d)
	}
}
