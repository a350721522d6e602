package node

import (
	"bytes"
	"encoding/json"
	"math"
	"math/rand"
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
		if r := contentReport(testClean, v); len(r) == 0 {
			b.Fatal("no report")
		}
	}
}

// cleanOf is text through a sanitizer that redacts secrets and PII.
func cleanOf(tb testing.TB, text string) sanitize.Clean {
	tb.Helper()
	s, err := sanitize.New(sanitize.Config{PseudonymKey: bytes.Repeat([]byte{1}, 32)})
	if err != nil {
		tb.Fatal(err)
	}
	defer s.Close()
	c, err := s.Apply("did:key:z6MkPeer", sanitize.Policy{Secrets: sanitize.ActionRedact, PII: sanitize.ActionRedact}, []byte(text))
	if err != nil {
		tb.Fatal(err)
	}
	return c
}

var testClean = sanitize.Clean{}

// contentReport keeps the JSON the map it replaced gave: the same bytes in
// the audit log before and after.
func TestContentReportJSON(t *testing.T) {
	clean := cleanOf(t, "mail a@example.com or b@example.org")
	v := &screen.Verdict{Action: screen.ActionMark, Score: 0.5, Reasons: []string{"override"}}
	for _, tc := range []struct {
		v    *screen.Verdict
		want string
	}{
		{nil, `{"sanitizer":{"counts":{"email":{"redact":2}},"action":"redact"}}`},
		{v, `{"sanitizer":{"counts":{"email":{"redact":2}},"action":"redact"},"screen":{"action":"mark","score":0.5,"reasons":["override"]}}`},
	} {
		if got := string(contentReport(clean, tc.v)); got != tc.want {
			t.Errorf("contentReport = %s\nwant %s", got, tc.want)
		}
	}
}

// contentReport writes what json.Marshal gives for the struct it stands
// for, whatever the verdict: scores that json writes in exponent form or
// refuses, reasons that need escaping, none, or no verdict.
func TestContentReportIsMarshal(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	cleans := []sanitize.Clean{{}, cleanOf(t, "nothing"), cleanOf(t, "mail a@example.com, call +1 415 555 0100, card 4111 1111 1111 1111")}
	scores := []float64{0, 1, 0.5, 0.294, 0.837, 1e-7, 1e-6, 9.99e-7, 1e21, 1e20, -0.25, 123456789.125, math.SmallestNonzeroFloat64, math.MaxFloat64, math.NaN(), math.Inf(1), math.Inf(-1)}
	reasons := [][]string{nil, {}, {"override"}, {"encoded:base64", "a<b>&\"\n\u2028\xff"}}
	for i := range 2000 {
		clean := cleans[rng.Intn(len(cleans))]
		var v *screen.Verdict
		if i%5 != 0 {
			score := scores[rng.Intn(len(scores))]
			if i%3 == 0 {
				score = rng.Float64() * math.Pow(10, float64(rng.Intn(50)-25))
			}
			v = &screen.Verdict{Action: screen.Action([]string{"pass", "mark", "block", "x<"}[rng.Intn(4)]), Score: score, Reasons: reasons[rng.Intn(len(reasons))]}
		}
		want, err := json.Marshal(struct {
			Sanitizer sanitize.Report `json:"sanitizer"`
			Screen    *screen.Verdict `json:"screen,omitempty"`
		}{clean.Report(), v})
		if err != nil {
			want = nil
		}
		if got := contentReport(clean, v); !bytes.Equal(got, want) {
			t.Fatalf("contentReport(%+v)\n got %s\nwant %s", v, got, want)
		}
	}
}
