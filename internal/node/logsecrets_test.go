package node_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/treaty-dev/treaty/internal/backend"
	"github.com/treaty-dev/treaty/internal/refusal"
	"github.com/treaty-dev/treaty/internal/testnet"
)

// TestLogsHoldNoSecretOrPII: calls that carry a secret and an email address,
// both ways, are pseudonymized or refused; neither node's log holds either
// value, while the refusals are logged with their event field.
func TestLogsHoldNoSecretOrPII(t *testing.T) {
	t.Parallel()
	c := testnet.NewCluster(t, 2, testnet.Options{})
	n0, n1 := c.Members[0], c.Members[1]
	secret := "AKIA" + "ZXCVBNMASDFGHJKL"
	email := "jane.roe" + "@example.org"
	n1.Handle(t, "echo", func(_ context.Context, inv backend.Invocation) ([]byte, error) { return inv.Input, nil })
	n1.Handle(t, "leak", func(context.Context, backend.Invocation) ([]byte, error) {
		return fmt.Appendf(nil, `{"key":%q}`, secret), nil
	})
	n1.Grant(t, "n0", "echo")
	n1.Grant(t, "n0", "leak")

	// PII outbound: pseudonymized on the way, restored on the way back.
	if out := n0.MustCall(t, "n1", "echo", fmt.Sprintf(`{"to":%q}`, email)); !strings.Contains(out, email) {
		t.Fatalf("echo of an email = %s; want it restored for the caller", out)
	}
	// A secret outbound: blocked at the caller.
	if out := n0.Call(t, "n1", "echo", fmt.Sprintf(`{"key":%q,"to":%q}`, secret, email)); out.Code != refusal.ExitBlocked {
		t.Fatalf("secret in input: %v, want blocked", out)
	}
	// A secret in a result: blocked at the callee, refused to the caller.
	if out := n0.Call(t, "n1", "leak", `{}`); out.Err == nil {
		t.Fatalf("secret in output: %v, want a refusal", out)
	}
	// An ungranted call, so a refusal is logged.
	if out := n0.Call(t, "n1", "nope", fmt.Sprintf(`{"to":%q}`, email)); out.Code != refusal.ExitDenied {
		t.Fatalf("ungranted: %v", out)
	}
	for _, m := range c.Members {
		log := m.Log()
		for _, v := range []string{secret, email, "jane.roe"} {
			if strings.Contains(log, v) {
				t.Errorf("%s's log holds %q:\n%s", m.Name, v, log)
			}
		}
	}
	if !strings.Contains(n1.Log(), "event=call.refused") {
		t.Errorf("n1 logged its refusals without event=call.refused:\n%s", n1.Log())
	}
}
