package node

import (
	"bytes"
	"net/http"
	"testing"
	"time"

	"github.com/treaty-dev/treaty/internal/identity"
	"github.com/treaty-dev/treaty/internal/sanitize"
	"github.com/treaty-dev/treaty/internal/screen"
	"github.com/treaty-dev/treaty/internal/transport"
	"github.com/treaty-dev/treaty/internal/wire"
)

// BenchmarkCallEvidence is the node's own per-call evidence work besides
// ed25519 and the audit log: call.sent's and call.served's request evidence
// and the content report of each.
func BenchmarkCallEvidence(b *testing.B) {
	caller, err := identity.Generate(nil)
	if err != nil {
		b.Fatal(err)
	}
	callee, err := identity.Generate(nil)
	if err != nil {
		b.Fatal(err)
	}
	body := bytes.Repeat([]byte("x"), 1024)
	req, _ := http.NewRequest(http.MethodPost, transport.PeerURL(callee.Public(), "/v1/call/echo"), bytes.NewReader(body))
	sent, err := wire.SignRequest(req, body, wire.SignParams{Key: caller, Audience: callee.Public(), Capability: "echo", Now: time.Now()})
	if err != nil {
		b.Fatal(err)
	}
	v := &screen.Verdict{Action: screen.ActionPass, Reasons: []string{}}
	b.ReportAllocs()
	for b.Loop() {
		ev := requestEvidenceJSON(sent.Base, sent.Signature, caller.Public(), callee.Public(), "echo", nil)
		if len(ev) == 0 || bytes.Contains(ev, []byte(`"base"`)) {
			b.Fatalf("evidence not compact: %s", ev)
		}
		if r := contentReport(testCleanReport, v); len(r) == 0 {
			b.Fatal("no report")
		}
	}
}

var testCleanReport = sanitize.Report{Counts: map[sanitize.Category]map[sanitize.Action]int{}, Strongest: sanitize.ActionPass}

// contentReport keeps the JSON the map it replaced gave: the same bytes in
// the audit log before and after.
func TestContentReportJSON(t *testing.T) {
	rep := sanitize.Report{Counts: map[sanitize.Category]map[sanitize.Action]int{"email": {sanitize.ActionRedact: 2}}, Strongest: sanitize.ActionRedact}
	v := &screen.Verdict{Action: screen.ActionMark, Score: 0.5, Reasons: []string{"override"}}
	for _, tc := range []struct {
		v    *screen.Verdict
		want string
	}{
		{nil, `{"sanitizer":{"counts":{"email":{"redact":2}},"action":"redact"}}`},
		{v, `{"sanitizer":{"counts":{"email":{"redact":2}},"action":"redact"},"screen":{"action":"mark","score":0.5,"reasons":["override"]}}`},
	} {
		if got := string(contentReport(rep, tc.v)); got != tc.want {
			t.Errorf("contentReport = %s\nwant %s", got, tc.want)
		}
	}
}
