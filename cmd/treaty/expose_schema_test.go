package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/treaty-dev/treaty/internal/config"
)

// TestExposeOutputSchema: --output-schema puts the file's schema in
// treaty.yaml; a file that is not a JSON object, or not a schema the node
// would compile, is refused with exit 2 and a message naming the flag, and
// treaty.yaml is left unchanged.
func TestExposeOutputSchema(t *testing.T) {
	dir, _, _ := tlHome(t)
	srv := filepath.Join(t.TempDir(), "srv")
	if err := os.WriteFile(srv, []byte("#!/bin/sh\ncat\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(name, body string) string {
		p := filepath.Join(t.TempDir(), name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("out.json", `{"type":"object","required":["answer"]}`)
	mustRun(t, "expose", "--home", dir, "oracle", "--exec", srv, "--output-schema", good, "--input-schema", good)
	c, err := config.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Capabilities) != 1 || c.Capabilities[0].OutputSchema["type"] != "object" || c.Capabilities[0].InputSchema["type"] != "object" {
		t.Fatalf("capabilities: %+v", c.Capabilities)
	}
	before, err := os.ReadFile(filepath.Join(dir, config.FileName))
	if err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name string
		args []string
		msg  string
	}{
		{"missing", []string{"--output-schema", "/nonexistent.json"}, "--output-schema"},
		{"not JSON", []string{"--output-schema", write("a.json", `{type: object`)}, "--output-schema"},
		{"not an object", []string{"--output-schema", write("b.json", `[1]`)}, "want a JSON object"},
		{"not a schema", []string{"--output-schema", write("c.json", `{"type":7}`)}, "output_schema is not a JSON Schema"},
		{"remote ref", []string{"--output-schema", write("d.json", `{"$ref":"https://example.com/s.json"}`)}, "--output-schema"},
		{"old draft", []string{"--output-schema", write("e.json", `{"$schema":"http://json-schema.org/draft-04/schema#"}`)}, "cannot validate version"},
		{"bad input schema", []string{"--input-schema", write("f.json", `{"type":7}`)}, "input_schema is not a JSON Schema"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, stderr, code := runTL(t, append([]string{"expose", "--home", dir, "other", "--exec", srv}, tc.args...)...)
			if code != 2 || !strings.Contains(stderr, tc.msg) {
				t.Fatalf("exit %d, stderr %q; want 2 and %q", code, stderr, tc.msg)
			}
		})
	}
	after, err := os.ReadFile(filepath.Join(dir, config.FileName))
	if err != nil || string(after) != string(before) {
		t.Fatalf("a refused expose changed treaty.yaml (%v)", err)
	}
}
