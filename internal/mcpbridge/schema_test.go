package mcpbridge

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestLargeSchemaBounded: every agent's model reads the whole tool list at
// every turn, so a peer whose input schema is large (up to the node's answer
// bound, 1 MiB) would cost each agent that much context; the tool gets the
// plain object schema instead and treaty_peers leaves the schema out.
func TestLargeSchemaBounded(t *testing.T) {
	t.Parallel()
	f := newFake()
	big := `{"type":"object","properties":{"q":{"type":"string","description":"` + strings.Repeat("pad ", MaxInputSchema/4) + `"}}}`
	f.caps[globexID] = `[{"name":"big","input_schema":` + big + `},{"name":"small","input_schema":{"type":"object","properties":{"q":{"type":"string"}}}}]`
	s := connect(t, f, 0)
	tools := s.tools(t)
	if b, _ := json.Marshal(tools["globex__big"].InputSchema); string(b) != `{"type":"object"}` {
		t.Errorf("a %d-byte schema reached the tool list (%d bytes)", len(big), len(b))
	}
	if b, _ := json.Marshal(tools["globex__small"].InputSchema); !strings.Contains(string(b), `"q"`) {
		t.Errorf("a small schema was dropped: %s", b)
	}
	res := s.call(t, ToolPeers, map[string]any{}, nil)
	if out := text(res); strings.Contains(out, "pad pad") || !strings.Contains(out, `"properties":{"q"`) {
		t.Errorf("treaty_peers: %d bytes, big schema shown or small one lost", len(out))
	}
}
