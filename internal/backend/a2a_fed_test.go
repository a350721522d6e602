package backend_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/treaty-dev/treaty/internal/backend"
	"github.com/treaty-dev/treaty/internal/config"
	"github.com/treaty-dev/treaty/internal/refusal"
	"github.com/treaty-dev/treaty/internal/testnet"
)

// TestA2ASkillThroughTheFederation: globex exposes skills of a real A2A
// agent process; acme lists one (with the skill's description from the
// agent's card) and calls it through both nodes; a skill whose task fails
// is a backend refusal that does not carry the agent's text; an agent that
// asks for more input is a clear refusal; a stream capability delivers the
// agent's artifact updates as events.
func TestA2ASkillThroughTheFederation(t *testing.T) {
	url := backend.A2ATestAgent(t)
	c := testnet.NewCluster(t, 2, testnet.Options{Names: []string{"acme", "globex"}})
	acme, globex := c.Member("acme"), c.Member("globex")
	for _, cp := range []config.Capability{
		{Name: "echo", A2A: &config.A2ABackend{URL: url, Skill: "echo"}},
		{Name: "fail", A2A: &config.A2ABackend{URL: url, Skill: "fail"}},
		{Name: "ask", A2A: &config.A2ABackend{URL: url, Skill: "ask"}},
		{Name: "ticks", Stream: true, A2A: &config.A2ABackend{URL: url, Skill: "ticks"}},
	} {
		globex.Expose(t, cp)
		globex.Grant(t, "acme", cp.Name)
	}

	caps, err := acme.Client().Caps(t.Context(), "globex")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(caps), `"name":"echo","description":"the echo skill"`) {
		t.Fatalf("caps do not carry the skill's description: %s", caps)
	}

	var out struct {
		Msg      string   `json:"msg"`
		PID      int      `json:"pid"`
		Metadata []string `json:"metadata"`
	}
	if err := json.Unmarshal([]byte(acme.MustCall(t, "globex", "echo", `{"msg":"hello globex"}`)), &out); err != nil {
		t.Fatal(err)
	}
	if out.Msg != "hello globex" || out.PID == 0 || strings.Join(out.Metadata, ",") != "skill" {
		t.Fatalf("output %+v", out)
	}

	for capName, want := range map[string]string{"fail": "a2a_task_failed", "ask": "a2a_agent_asked_for_more_input-required"} {
		o := acme.Call(t, "globex", capName, `{}`)
		var r *refusal.Error
		if !errors.As(o.Err, &r) || r.Stage != refusal.StageBackend || !r.Remote || r.Reason != want {
			t.Fatalf("%s: %v, want a remote backend refusal %q", capName, o.Err, want)
		}
		if strings.Contains(r.Reason, "secret") {
			t.Fatalf("the agent's text reached acme: %q", r.Reason)
		}
	}

	var events []string
	if err := acme.Client().Stream(t.Context(), "globex", "ticks", json.RawMessage(`{}`), func(ev json.RawMessage) error {
		events = append(events, string(ev))
		return nil
	}); err != nil || strings.Join(events, " ") != `{"tick":1} {"tick":2} {"tick":3}` {
		t.Fatalf("stream: %v %v", events, err)
	}
}
