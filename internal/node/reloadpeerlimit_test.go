package node_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/treaty-dev/treaty/localapi"
)

// A reload that lowers limits.max_concurrent_per_peer counts the calls a
// peer already has in flight: its next call is refused at once, not let
// through by a fresh count.
func TestReloadLowersCallsInFlightPerPeerAtOnce(t *testing.T) {
	acme, globex, release, done := twoSlowCallsInFlight(t)
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
