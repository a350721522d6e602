package node_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/treaty-dev/treaty/internal/backend"
	"github.com/treaty-dev/treaty/internal/testnet"
	"github.com/treaty-dev/treaty/localapi"
)

// A reload that lowers limits.max_concurrent_per_peer counts the calls a
// peer already has in flight: its next call is refused at once, not let
// through by a fresh count.
func TestReloadLowersCallsInFlightPerPeerAtOnce(t *testing.T) {
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
	globex.AppendConfig(t, "limits:\n  max_concurrent_per_peer: 2\n")
	o := acme.Call(t, "globex", "slow", `{}`)
	var e *localapi.Error
	if !errors.As(o.Err, &e) || !strings.Contains(o.Err.Error(), "max_concurrent_per_peer") {
		t.Fatalf("call over the lowered limit: %v, want a max_concurrent_per_peer refusal", o)
	}
	close(release)
	for range 2 {
		if o := <-done; o.Err != nil {
			t.Fatalf("call in flight across the reload: %v", o)
		}
	}
	acme.MustCall(t, "globex", "slow", `{}`)
}
