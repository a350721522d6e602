package config_test

import (
	"strings"
	"testing"

	"github.com/treaty-dev/treaty/internal/config"
)

func TestA2ABackendValidation(t *testing.T) {
	base := "name: a\ncapabilities:\n  - name: c\n"
	for _, tc := range []struct{ yaml, wantErr string }{
		{"    a2a: {url: 'http://127.0.0.1:9100', skill: s}\n", ""},
		{"    a2a: {url: 'http://127.0.0.1:9100', skill: s}\n    stream: true\n", ""},
		{"    a2a: {skill: s}\n", "a2a.url"},
		{"    a2a: {url: 'grpc://127.0.0.1:9100', skill: s}\n", "a2a.url"},
		{"    a2a: {url: 'http://127.0.0.1:9100'}\n", "a2a.skill is required"},
		{"    a2a: {url: 'http://127.0.0.1:9100', skill: s}\n    mcp: {command: srv, tool: t}\n", "more than one of exec, http, mcp and a2a"},
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
