package node_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/treaty-dev/treaty/internal/config"
	"github.com/treaty-dev/treaty/internal/refusal"
	"github.com/treaty-dev/treaty/internal/testnet"
	"github.com/treaty-dev/treaty/localapi"
)

// A stream's events may report cost as a result may: each event's
// treaty_usage is charged to the caller's cost budget and removed before the
// event leaves, so a stream capability is no way around a cost budget.
func TestStreamEventsChargeTheirCost(t *testing.T) {
	c := testnet.NewCluster(t, 2, testnet.Options{Names: []string{"acme", "globex"}})
	acme, globex := c.Member("acme"), c.Member("globex")
	globex.Expose(t, config.Capability{
		Name: "ticks", Stream: true,
		Exec: &config.ExecBackend{Command: testnet.WriteScript(t,
			`echo '{"n":1,"treaty_usage":{"cost":3}}'; echo '{"n":2,"treaty_usage":{"cost":3}}'`+"\n")},
	})
	globex.Grant(t, "acme", "ticks")
	globex.AppendConfig(t, "budget:\n  rules:\n    - peer: "+acme.ID.String()+"\n      dir: in\n      cost: 5\n      cost_window: 1h\n")
	var got []string
	err := acme.Client().Stream(t.Context(), "globex", "ticks", json.RawMessage(`{}`), func(d json.RawMessage) error {
		got = append(got, string(d))
		return nil
	})
	if err != nil {
		t.Fatalf("first stream: %v", err)
	}
	if len(got) != 2 || strings.Contains(strings.Join(got, ""), "treaty_usage") {
		t.Fatalf("events delivered: %q, want two without treaty_usage", got)
	}
	err = acme.Client().Stream(t.Context(), "globex", "ticks", json.RawMessage(`{}`), func(json.RawMessage) error { return nil })
	var e *localapi.Error
	if !errors.As(err, &e) || e.Stage != refusal.StageBudget || !strings.Contains(e.Reason, "cost") {
		t.Fatalf("second stream: %v, want a cost budget refusal", err)
	}
}
