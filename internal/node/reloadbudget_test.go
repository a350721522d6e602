package node_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/treaty-dev/treaty/internal/backend"
	"github.com/treaty-dev/treaty/internal/refusal"
	"github.com/treaty-dev/treaty/internal/testnet"
	"github.com/treaty-dev/treaty/localapi"
)

// A reload that lowers a peer's concurrency counts the calls it already has
// in flight: its next call is refused at once, and its calls pass again as
// the running ones end.
func TestReloadLowersConcurrencyAtOnce(t *testing.T) {
	c := testnet.NewCluster(t, 2, testnet.Options{Names: []string{"acme", "globex"}})
	acme, globex := c.Member("acme"), c.Member("globex")
	started := make(chan struct{}, 8)
	release := make(chan struct{})
	globex.Handle(t, "slow", func(ctx context.Context, inv backend.Invocation) ([]byte, error) {
		started <- struct{}{}
		select {
		case <-release:
		case <-ctx.Done():
		}
		return []byte(`{}`), nil
	})
	globex.Grant(t, "acme", "slow")
	done := make(chan testnet.Outcome, 2)
	for range 2 {
		go func() { done <- acme.Call(t, "globex", "slow", `{}`) }()
	}
	for range 2 {
		select {
		case <-started:
		case <-time.After(10 * time.Second):
			t.Fatal("calls did not start")
		}
	}
	globex.AppendConfig(t, "budget:\n  rules:\n    - peer: "+acme.ID.String()+"\n      dir: in\n      concurrency: 2\n")
	o := acme.Call(t, "globex", "slow", `{}`)
	var e *localapi.Error
	if !errors.As(o.Err, &e) || e.Stage != refusal.StageBudget || !strings.Contains(e.Reason, "concurrency") {
		t.Fatalf("call over the lowered limit: %v, want a concurrency refusal", o)
	}
	close(release)
	for range 2 {
		if o := <-done; o.Err != nil {
			t.Fatalf("call in flight across the reload: %v", o)
		}
	}
	acme.MustCall(t, "globex", "slow", `{}`)
}
