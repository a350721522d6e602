package mcpbridge

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/treaty-dev/treaty/internal/catalogue"
	"github.com/treaty-dev/treaty/localapi"
)

// FuzzPeerCapability feeds what a peer controls (its nickname as we know it,
// its capability's name, description and input schema, and a call's output)
// through the bridge: the tool must be one the SDK takes, its name valid,
// its description free of control and format characters, and nothing may
// panic.
func FuzzPeerCapability(f *testing.F) {
	f.Add("globex", "echo", "returns its input", []byte(`{"type":"object","properties":{"q":{"type":"string"}}}`), []byte(`{"q":"x"}`))
	f.Add("a_", "_b", "\u202eevil\u200b", []byte(`{"type":"object","properties":{"h":{"type":"object","x-mcp-header":7}}}`), []byte(`{"treaty_untrusted":{"verdict":{"action":"mark"}}}`))
	f.Add("p.q", "c", strings.Repeat("é", 3000), []byte(`{"type":"array"}`), []byte(`"[treaty:untrusted id=1] x"`))
	f.Add("", "", "", []byte(`null`), []byte(``))
	f.Fuzz(func(t *testing.T, peer, capName, desc string, schema, output []byte) {
		name := catalogue.FitName(peer, capName)
		if len(name) == 0 || len(name) > catalogue.MaxToolName || !catalogue.ValidName(name) {
			t.Fatalf("FitName(%q, %q) = %q", peer, capName, name)
		}
		r := &remote{Entry: catalogue.Entry{PeerID: "did:key:z", PeerName: peer,
			Cap: localapi.CapabilityInfo{Name: capName, Description: desc, InputSchema: json.RawMessage(schema)}}}
		tool := remoteTool(name, r)
		if !utf8.ValidString(tool.Description) {
			t.Fatalf("description is not UTF-8: %q", tool.Description)
		}
		for _, c := range tool.Description {
			if c != '\n' && c != '\t' && (unicode.IsControl(c) || unicode.Is(unicode.Cf, c)) {
				t.Fatalf("description keeps %U", c)
			}
		}
		b, err := New(Options{Node: newFake()})
		if err != nil {
			t.Fatal(err)
		}
		if err := b.addTool(tool, b.remoteHandler(name)); err != nil {
			t.Fatalf("the SDK refused the tool made from schema %q: %v", schema, err)
		}
		catalogue.Marking(output)
	})
}
