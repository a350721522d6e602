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

// A call that fails at the callee's backend still used it: under a rule
// with failed_cost it is charged that much, so failing calls are no way
// around a cost budget. Both a call and a stream.
func TestFailedCallsChargeFailedCost(t *testing.T) {
	c := testnet.NewCluster(t, 2, testnet.Options{Names: []string{"acme", "globex"}})
	acme, globex := c.Member("acme"), c.Member("globex")
	globex.Expose(t, config.Capability{
		Name: "broken",
		Exec: &config.ExecBackend{Command: testnet.WriteScript(t, "exit 3\n")},
	})
	globex.Expose(t, config.Capability{
		Name: "ticks", Stream: true,
		Exec: &config.ExecBackend{Command: testnet.WriteScript(t, `echo '{"n":1}'; exit 3`+"\n")},
	})
	globex.Grant(t, "acme", "broken")
	globex.Grant(t, "acme", "ticks")
	globex.AppendConfig(t, "budget:\n  rules:\n"+
		"    - peer: "+acme.ID.String()+"\n      capability: broken\n      dir: in\n      cost: 5\n      failed_cost: 5\n"+
		"    - peer: "+acme.ID.String()+"\n      capability: ticks\n      dir: in\n      cost: 5\n      failed_cost: 5\n")
	isBudget := func(err error) bool {
		var e *localapi.Error
		return errors.As(err, &e) && e.Stage == refusal.StageBudget && strings.Contains(e.Reason, "cost")
	}

	_, err := acme.Client().Call(t.Context(), "globex", "broken", json.RawMessage(`{}`))
	var e *localapi.Error
	if !errors.As(err, &e) || e.Stage != refusal.StageBackend {
		t.Fatalf("first call: %v, want a backend failure", err)
	}
	if _, err := acme.Client().Call(t.Context(), "globex", "broken", json.RawMessage(`{}`)); !isBudget(err) {
		t.Fatalf("second call after a failed one: %v, want a cost budget refusal", err)
	}

	err = acme.Client().Stream(t.Context(), "globex", "ticks", json.RawMessage(`{}`), func(json.RawMessage) error { return nil })
	if err == nil || isBudget(err) {
		t.Fatalf("first stream: %v, want a backend failure", err)
	}
	err = acme.Client().Stream(t.Context(), "globex", "ticks", json.RawMessage(`{}`), func(json.RawMessage) error { return nil })
	if !isBudget(err) {
		t.Fatalf("second stream after a failed one: %v, want a cost budget refusal", err)
	}
}
