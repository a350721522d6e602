package node_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/treaty-dev/treaty/internal/audit"
	"github.com/treaty-dev/treaty/internal/config"
	"github.com/treaty-dev/treaty/internal/refusal"
	"github.com/treaty-dev/treaty/internal/testnet"
	"github.com/treaty-dev/treaty/localapi"
)

var answerSchema = map[string]any{
	"type":       "object",
	"required":   []any{"answer"},
	"properties": map[string]any{"answer": map[string]any{"type": "string"}},
}

// TestOutputSchemaRefusesAMismatchingResult: the serving node checks the
// backend's result against the capability's output schema. A matching result
// is served; one that does not match is refused at the backend stage with
// reason output_schema_..., audited as a failure, and its content never
// reaches the caller nor the audit log.
func TestOutputSchemaRefusesAMismatchingResult(t *testing.T) {
	c := testnet.NewCluster(t, 2, testnet.Options{Names: []string{"acme", "globex"}})
	acme, globex := c.Member("acme"), c.Member("globex")
	globex.Expose(t, config.Capability{
		Name: "oracle", OutputSchema: answerSchema,
		// Echoes its input: the caller picks what the backend answers.
		Exec: &config.ExecBackend{Command: testnet.WriteScript(t, "cat\n")},
	})
	globex.Grant(t, "acme", "oracle")

	if out := acme.MustCall(t, "globex", "oracle", `{"answer":"42"}`); !strings.Contains(out, `"42"`) {
		t.Fatalf("matching result: %s", out)
	}
	for _, tc := range []struct{ in, reason string }{
		{`{"answer":31337}`, "output_schema_properties_answer_type"},
		{`{"nope":"31337"}`, "output_schema_required"},
		{`[31337]`, "output_schema_type"},
	} {
		o := acme.Call(t, "globex", "oracle", tc.in)
		var e *localapi.Error
		if !errors.As(o.Err, &e) || e.Stage != refusal.StageBackend || !e.Remote || !strings.HasPrefix(e.Reason, tc.reason) {
			t.Fatalf("%s: %v, want a remote backend refusal %s", tc.in, o, tc.reason)
		}
		if strings.Contains(o.Out, "31337") || strings.Contains(e.Error(), "31337") {
			t.Fatalf("%s: the refused result reached the caller: %s %v", tc.in, o.Out, e)
		}
	}

	// Audited as failed at stage backend with the reason; the result's
	// content is in no entry.
	var failed int
	for _, e := range globex.Audit(t, audit.Filter{Kind: audit.KindCallRefused}) {
		if e.Stage == string(refusal.StageBackend) && strings.Contains(string(e.Report), `"output_schema_`) {
			failed++
		}
		if strings.Contains(string(e.Content), "31337") {
			t.Fatalf("the refused result is in the audit log: %s", e.Content)
		}
	}
	if failed != 3 {
		t.Fatalf("%d output_schema refusals audited, want 3", failed)
	}

	// caps shows the output schema to the peer.
	caps, err := acme.Client().Caps(t.Context(), "globex")
	if err != nil || !strings.Contains(string(caps), `"output_schema":{`) {
		t.Fatalf("caps %s: %v", caps, err)
	}
}

// TestOutputSchemaChecksEachStreamEvent: a stream capability's output schema
// applies to each event; the first event that does not match ends the stream
// with a backend failure and is not delivered.
func TestOutputSchemaChecksEachStreamEvent(t *testing.T) {
	c := testnet.NewCluster(t, 2, testnet.Options{Names: []string{"acme", "globex"}})
	acme, globex := c.Member("acme"), c.Member("globex")
	globex.Expose(t, config.Capability{
		Name: "ticks", Stream: true, OutputSchema: answerSchema,
		Exec: &config.ExecBackend{Command: testnet.WriteScript(t,
			`echo '{"answer":"a"}'; echo '{"answer":"b"}'; echo '{"answer":31337}'; echo '{"answer":"c"}'`+"\n")},
	})
	globex.Grant(t, "acme", "ticks")
	var got []string
	err := acme.Client().Stream(t.Context(), "globex", "ticks", json.RawMessage(`{}`), func(d json.RawMessage) error {
		got = append(got, string(d))
		return nil
	})
	var e *localapi.Error
	if !errors.As(err, &e) || e.Stage != refusal.StageBackend || e.Reason != "output_schema_properties_answer_type" {
		t.Fatalf("stream ended with %v, want a backend failure output_schema_properties_answer_type", err)
	}
	if len(got) != 2 || strings.Contains(strings.Join(got, ""), "31337") {
		t.Fatalf("events delivered: %q, want the two valid ones", got)
	}
}

// An output schema that does not compile fails the load, naming the
// capability and the key.
func TestOutputSchemaThatDoesNotCompileFailsTheLoad(t *testing.T) {
	c := testnet.NewCluster(t, 1, testnet.Options{})
	m := c.Members[0]
	if e := appendCapability(m.Home, "  - name: bad\n    output_schema: {$ref: 'https://example.com/s.json'}\n"); e != nil {
		t.Fatal(e)
	}
	if e := m.Node().Reload(); e == nil || !strings.Contains(e.Error(), "capability bad") || !strings.Contains(e.Error(), "output_schema") {
		t.Fatalf("reload: %v", e)
	}
}
