package config_test

import (
	"strings"
	"testing"

	"github.com/treaty-dev/treaty/internal/config"
)

func TestMCPBackendValidation(t *testing.T) {
	base := "name: a\ncapabilities:\n  - name: c\n"
	for _, tc := range []struct{ yaml, wantErr string }{
		{"    mcp: {command: 'srv --x', tool: t}\n", ""},
		{"    mcp: {url: 'http://127.0.0.1:9/mcp', tool: t}\n", ""},
		{"    mcp: {tool: t}\n", "exactly one of command and url"},
		{"    mcp: {command: srv, url: 'http://127.0.0.1:9', tool: t}\n", "exactly one of command and url"},
		{"    mcp: {command: srv}\n", "mcp.tool is required"},
		{"    mcp: {command: \"'open\", tool: t}\n", "mcp.command"},
		{"    mcp: {command: srv, tool: t}\n    stream: true\n", "cannot stream"},
		{"    mcp: {command: srv, tool: t}\n    exec: {command: x}\n", "more than one of exec, http, mcp and a2a"},
		{"    http: {url: 'http://127.0.0.1:9'}\n    exec: {command: x}\n", "more than one of exec, http, mcp and a2a"},
	} {
		_, err := config.Parse([]byte(base + tc.yaml))
		switch {
		case tc.wantErr == "" && err != nil:
			t.Errorf("%q: %v", tc.yaml, err)
		case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
			t.Errorf("%q: got %v, want %q", tc.yaml, err, tc.wantErr)
		}
	}
}
