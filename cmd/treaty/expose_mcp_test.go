package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/treaty-dev/treaty/internal/config"
)

func TestExposeMCP(t *testing.T) {
	dir, _, _ := tlHome(t)
	srv := filepath.Join(t.TempDir(), "srv")
	if err := os.WriteFile(srv, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	schema := filepath.Join(t.TempDir(), "schema.json")
	if err := os.WriteFile(schema, []byte(`{"type":"object","required":["q"]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	notJSON := filepath.Join(t.TempDir(), "bad.json")
	if err := os.WriteFile(notJSON, []byte(`[1]`), 0o600); err != nil {
		t.Fatal(err)
	}
	mustRun(t, "expose", "--home", dir, "review", "--mcp", srv+" --stdio", "--tool", "review_code")
	mustRun(t, "expose", "--home", dir, "search", "--mcp-url", "http://127.0.0.1:9000/mcp", "--tool", "search", "--input-schema", schema)
	c, err := config.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]config.Capability{}
	for _, cp := range c.Capabilities {
		got[cp.Name] = cp
	}
	if m := got["review"].MCP; m == nil || m.Command != srv+" --stdio" || m.Tool != "review_code" {
		t.Errorf("review: %+v", got["review"].MCP)
	}
	if m := got["search"].MCP; m == nil || m.URL != "http://127.0.0.1:9000/mcp" || m.Tool != "search" {
		t.Errorf("search: %+v", got["search"].MCP)
	}
	if got["search"].InputSchema["type"] != "object" {
		t.Errorf("search schema: %v", got["search"].InputSchema)
	}

	for _, tc := range []struct {
		name string
		args []string
		msg  string
	}{
		{"two backends", []string{"x", "--mcp", srv, "--exec", srv, "--tool", "t"}, "exactly one of"},
		{"no tool", []string{"x", "--mcp", srv}, "--tool"},
		{"tool without mcp", []string{"x", "--exec", srv, "--tool", "t"}, "--tool"},
		{"missing program", []string{"x", "--mcp", "/nonexistent/srv", "--tool", "t"}, "--mcp: command /nonexistent/srv does not exist"},
		{"remote url", []string{"x", "--mcp-url", "http://192.0.2.1/mcp", "--tool", "t"}, "--allow-remote"},
		{"stream", []string{"x", "--mcp", srv, "--tool", "t", "--stream"}, "cannot stream"},
		{"schema not an object", []string{"x", "--exec", srv, "--input-schema", notJSON}, "JSON object"},
		{"schema missing", []string{"x", "--exec", srv, "--input-schema", "/nonexistent.json"}, "--input-schema"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, stderr, code := runTL(t, append([]string{"expose", "--home", dir}, tc.args...)...)
			if code != 2 || !strings.Contains(stderr, tc.msg) {
				t.Fatalf("exit %d, stderr %q; want 2 and %q", code, stderr, tc.msg)
			}
		})
	}
	mustRun(t, "expose", "--home", dir, "remote", "--mcp-url", "http://192.0.2.1/mcp", "--tool", "t", "--allow-remote")
}
