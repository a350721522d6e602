package node

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/treaty-dev/treaty/internal/audit"
)

// TestRefusedCallKeepsMadeUpTextOut: a local client's call refused before
// anything left names its capability and peer as given. Text that is not a
// capability name or a peer reference (a secret pasted in the wrong field,
// terminal escapes) goes back to the caller in the error but is not written
// into the audit log, which keeps it forever.
func TestRefusedCallKeepsMadeUpTextOut(t *testing.T) {
	n, _, bob, _ := startReloadNode(t)
	const secret = "sk-live-4eC39HqLyjWDarjtT1zdp7dc"
	for _, tc := range []struct{ peer, capName string }{
		{"bob", "Bearer " + secret + "\x1b[2J"},
		{"Bearer " + secret, "review.code"},
		{"Bearer " + secret, secret + "\x1b]0;x\a"},
	} {
		_, err := n.Call(t.Context(), tc.peer, tc.capName, []byte(`{}`))
		if err == nil || !strings.Contains(err.Error(), secret) {
			t.Fatalf("Call(%q, %q): %v; want a refusal that shows the caller what it gave", tc.peer, tc.capName, err)
		}
	}
	// A refusal with a plain reference keeps it.
	if _, err := n.Call(t.Context(), "carol", "review.code", []byte(`{}`)); err == nil {
		t.Fatal("call to an unknown peer succeeded")
	}
	var refused int
	for _, e := range AuditEntries(t, n) {
		b, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(b), secret) || strings.Contains(string(b), `\u001b`) {
			t.Fatalf("audit entry %d keeps made-up text: %s", e.Index, b)
		}
		if e.Kind == audit.KindCallRefused && e.Direction == "out" {
			refused++
			if e.Capability != "" && e.Capability != "review.code" {
				t.Fatalf("entry %d capability %q", e.Index, e.Capability)
			}
			if e.Peer != "" && e.Peer != bob.String() {
				t.Fatalf("entry %d peer %q", e.Index, e.Peer)
			}
			if !strings.Contains(string(e.Report), "carol") && !strings.Contains(string(e.Report), "not kept") {
				t.Fatalf("entry %d report %s says neither the plain reference nor that one was not kept", e.Index, e.Report)
			}
		}
	}
	if refused != 4 {
		t.Fatalf("%d outbound call.refused entries, want 4", refused)
	}
}
