package node

import (
	"log/slog"
	"strings"
	"testing"

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
	cp, err := buildCapability(c, wire.Limits{}.WithDefaults(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if cp.Info.InputSchema != nil || cp.Info.Description != "d" {
		t.Fatalf("a %d-byte schema was kept", len(big))
	}
}
