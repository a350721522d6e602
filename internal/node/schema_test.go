package node_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/treaty-dev/treaty/internal/config"
	"github.com/treaty-dev/treaty/internal/refusal"
	"github.com/treaty-dev/treaty/internal/testnet"
	"github.com/treaty-dev/treaty/localapi"
)

// TestInputSchemaRefusedBeforeTheBackend: an input that does not match the
// capability's input schema is refused by the callee at the screen stage with
// reason input_schema_..., and the backend never runs; a matching one passes.
func TestInputSchemaRefusedBeforeTheBackend(t *testing.T) {
	c := testnet.NewCluster(t, 2, testnet.Options{Names: []string{"acme", "globex"}})
	acme, globex := c.Member("acme"), c.Member("globex")
	ran := filepath.Join(t.TempDir(), "ran")
	globex.Expose(t, config.Capability{
		Name: "search",
		InputSchema: map[string]any{
			"type":       "object",
			"required":   []any{"q"},
			"properties": map[string]any{"q": map[string]any{"type": "string", "maxLength": 10}},
		},
		Exec: &config.ExecBackend{Command: testnet.WriteScript(t, "echo x >> "+ran+"\ncat\n")},
	})
	globex.Grant(t, "acme", "search")

	if out := acme.MustCall(t, "globex", "search", `{"q":"cats"}`); !strings.Contains(out, `"cats"`) {
		t.Fatalf("valid input: %s", out)
	}
	for _, in := range []string{`{}`, `{"q":7}`, `{"q":"far too long a query"}`, `[1]`} {
		o := acme.Call(t, "globex", "search", in)
		var e *localapi.Error
		if !errors.As(o.Err, &e) || e.Stage != refusal.StageScreen || !e.Remote || !strings.HasPrefix(e.Reason, "input_schema") {
			t.Fatalf("%s: %v, want a remote screen refusal input_schema_...", in, o)
		}
		t.Logf("%s: %s", in, e.Reason)
	}
	o := acme.Call(t, "globex", "search", `{"q":7}`)
	if e := (*localapi.Error)(nil); !errors.As(o.Err, &e) || e.Reason != "input_schema_properties_q_type" {
		t.Errorf("reason does not say what did not match: %v", o)
	}
	o = acme.Call(t, "globex", "search", `{"q":"secretsecretsecret"}`)
	if e := (*localapi.Error)(nil); !errors.As(o.Err, &e) || e.Reason != "input_schema_properties_q_maxlength" {
		t.Errorf("the reason must name the keyword and never quote the input: %v", o)
	}
	b, err := os.ReadFile(ran)
	if err != nil || strings.Count(string(b), "x") != 1 {
		t.Fatalf("the backend ran %q times (%v); want once, for the valid input", b, err)
	}

	// caps shows the schema to the peer.
	caps, err := acme.Client().Caps(t.Context(), "globex")
	if err != nil || !strings.Contains(string(caps), `"maxLength":10`) {
		t.Fatalf("caps %s: %v", caps, err)
	}
}

// A schema that does not compile (a remote $ref is never fetched) fails the
// load, naming the capability.
func TestInputSchemaThatDoesNotCompileFailsTheLoad(t *testing.T) {
	c := testnet.NewCluster(t, 1, testnet.Options{})
	m := c.Members[0]
	if e := appendCapability(m.Home, "  - name: bad\n    input_schema: {$ref: 'https://example.com/s.json'}\n"); e != nil {
		t.Fatal(e)
	}
	if e := m.Node().Reload(); e == nil || !strings.Contains(e.Error(), "capability bad") {
		t.Fatalf("reload: %v", e)
	}
}

func TestInputSchemaOfAnUnsupportedVersionFailsTheLoad(t *testing.T) {
	c := testnet.NewCluster(t, 1, testnet.Options{})
	m := c.Members[0]
	if e := appendCapability(m.Home, "  - name: old\n    input_schema: {$schema: 'http://json-schema.org/draft-04/schema#'}\n"); e != nil {
		t.Fatal(e)
	}
	if e := m.Node().Reload(); e == nil || !strings.Contains(e.Error(), "cannot validate version") {
		t.Fatalf("reload: %v", e)
	}
}

func appendCapability(home, yaml string) error {
	f, err := os.OpenFile(filepath.Join(home, config.FileName), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = f.WriteString("capabilities:\n" + yaml)
	return err
}
