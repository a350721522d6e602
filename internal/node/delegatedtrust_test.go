package node_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/treaty-dev/treaty/internal/backend"
	"github.com/treaty-dev/treaty/internal/node"
	"github.com/treaty-dev/treaty/internal/testnet"
)

// A peer this node quarantined is refused on a delegated call's path too: it
// cannot have its calls served here by asking a peer in good standing to
// make them on its behalf. The delegate's own calls still pass.
func TestQuarantinedOriginatorRefusedThroughADelegate(t *testing.T) {
	c := testnet.NewCluster(t, 3, testnet.Options{Names: []string{"acme", "globex", "initech"}})
	acme, globex, initech := c.Member("acme"), c.Member("globex"), c.Member("initech")
	globex.ExposeExec(t, "echo", `cat`)
	globex.Grant(t, "acme", "echo")
	acme.Handle(t, "relay", func(ctx context.Context, inv backend.Invocation) ([]byte, error) {
		out, err := acme.CallWithin(ctx, inv.CallToken, "globex", "echo", inv.Input)
		if err != nil {
			return json.Marshal(map[string]string{"onward": err.Error()})
		}
		return out, nil
	})
	acme.Grant(t, "initech", "relay")
	if out := initech.MustCall(t, "acme", "relay", `{"x":1}`); out != `{"x":1}` {
		t.Fatalf("delegated call before the quarantine: %s", out)
	}

	node.Quarantine(t, globex.Node(), initech.ID)
	out := initech.MustCall(t, "acme", "relay", `{"x":2}`)
	if !strings.Contains(out, "quarantined") || strings.Contains(out, `"x":2`) {
		t.Fatalf("delegated call from a quarantined originator: %s, want a quarantine refusal", out)
	}
	if out := acme.MustCall(t, "globex", "echo", `{"x":3}`); out != `{"x":3}` {
		t.Fatalf("the delegate's own call: %s", out)
	}
}

// So is a key this node refuses (revoked, superseded) that a delegate not yet
// told still serves.
func TestRefusedOriginatorRefusedThroughADelegate(t *testing.T) {
	c := testnet.NewCluster(t, 3, testnet.Options{Names: []string{"acme", "globex", "initech"}})
	acme, globex, initech := c.Member("acme"), c.Member("globex"), c.Member("initech")
	globex.ExposeExec(t, "echo", `cat`)
	globex.Grant(t, "acme", "echo")
	acme.Handle(t, "relay", func(ctx context.Context, inv backend.Invocation) ([]byte, error) {
		out, err := acme.CallWithin(ctx, inv.CallToken, "globex", "echo", inv.Input)
		if err != nil {
			return json.Marshal(map[string]string{"onward": err.Error()})
		}
		return out, nil
	})
	acme.Grant(t, "initech", "relay")
	node.RefuseKey(globex.Node(), initech.ID, "revoked")
	out := initech.MustCall(t, "acme", "relay", `{"x":2}`)
	if !strings.Contains(out, "refused_key_on_the_delegation_path") || strings.Contains(out, `"x":2`) {
		t.Fatalf("delegated call from a revoked originator: %s, want a refusal", out)
	}
}
