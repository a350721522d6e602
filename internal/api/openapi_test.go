package api

import (
	"encoding/json"
	"os"
	"slices"
	"strings"
	"testing"
)

// TestOpenAPIMatchesRoutes: every endpoint the server registers is in
// openapi.json, and the document describes no endpoint the server lacks.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	t.Parallel()
	var doc struct {
		OpenAPI string                    `json:"openapi"`
		Paths   map[string]map[string]any `json:"paths"`
	}
	if err := json.Unmarshal([]byte(openAPI), &doc); err != nil {
		t.Fatalf("openapi.json: %v", err)
	}
	if doc.OpenAPI != "3.1.0" {
		t.Fatalf("openapi = %q", doc.OpenAPI)
	}
	var served, documented []string
	for _, rt := range (&Server{}).table() {
		served = append(served, rt.method+" "+rt.path)
	}
	for path, ops := range doc.Paths {
		for method := range ops {
			documented = append(documented, strings.ToUpper(method)+" "+path)
		}
	}
	slices.Sort(served)
	slices.Sort(documented)
	if !slices.Equal(served, documented) {
		t.Fatalf("served %v\ndocumented %v", served, documented)
	}
	// The prose reference has a section per endpoint too.
	md, err := os.ReadFile("../../docs/api.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, ep := range served {
		if !strings.Contains(string(md), "\n### "+ep) {
			t.Errorf("docs/api.md has no section %q", "### "+ep)
		}
	}
}

// TestOpenAPIStagesComplete: the document's stage enum is every stage the
// exit-code table knows.
func TestOpenAPIStagesComplete(t *testing.T) {
	t.Parallel()
	var doc struct {
		Components struct {
			Schemas struct {
				ErrorBody struct {
					Properties struct {
						Stage struct {
							Enum []string `json:"enum"`
						} `json:"stage"`
					} `json:"properties"`
				} `json:"ErrorBody"`
			} `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal([]byte(openAPI), &doc); err != nil {
		t.Fatal(err)
	}
	want := []string{"usage", "resolve", "budget", "sanitize", "transport", "wire", "trust", "policy", "screen", "backend", "consensus", "audit", "internal"}
	if got := doc.Components.Schemas.ErrorBody.Properties.Stage.Enum; !slices.Equal(got, want) {
		t.Fatalf("stage enum = %v, want %v", got, want)
	}
}

// TestOpenAPIRefsResolve: every $ref points at a component that exists.
func TestOpenAPIRefsResolve(t *testing.T) {
	t.Parallel()
	var doc map[string]any
	if err := json.Unmarshal([]byte(openAPI), &doc); err != nil {
		t.Fatal(err)
	}
	var walk func(v any)
	refs := 0
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			if ref, ok := v["$ref"].(string); ok {
				refs++
				var node any = doc
				for _, part := range strings.Split(strings.TrimPrefix(ref, "#/"), "/") {
					m, ok := node.(map[string]any)
					if !ok || m[part] == nil {
						t.Errorf("$ref %s does not resolve", ref)
						return
					}
					node = m[part]
				}
			}
			for _, x := range v {
				walk(x)
			}
		case []any:
			for _, x := range v {
				walk(x)
			}
		}
	}
	walk(doc)
	if refs < 10 {
		t.Fatalf("only %d $refs found; the walk is broken", refs)
	}
}
