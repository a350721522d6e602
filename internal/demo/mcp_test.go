package demo

import (
	"strings"
	"testing"
)

// TestDemoCodeReviewOverMCP runs the whole demo: every step checks itself,
// and the code-review capability must be served by globex's MCP tool server
// and called by acme's agent through treaty mcp.
func TestDemoCodeReviewOverMCP(t *testing.T) {
	if testing.Short() {
		t.Skip("the whole demo takes seconds")
	}
	var out strings.Builder
	if err := Run(t.Context(), &out); err != nil {
		t.Fatalf("demo: %v\n%s", err, out.String())
	}
	for _, want := range []string{
		"code-review is served by globex's MCP tool server (review_code)",
		"lists its tools: [globex__code-review globex__search globex__summarize treaty_call treaty_peers]",
		"tools/call globex__code-review -> globex's node -> its MCP tool server",
		`"notify":"dana.scully@acme.example"`,
		"demo complete",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the demo does not say %q:\n%s", want, out.String())
		}
	}
}
