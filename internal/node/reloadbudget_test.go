package node_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/treaty-dev/treaty/internal/backend"
	"github.com/treaty-dev/treaty/internal/config"
	"github.com/treaty-dev/treaty/internal/refusal"
	"github.com/treaty-dev/treaty/internal/testnet"
	"github.com/treaty-dev/treaty/localapi"
)

// A reload that lowers a peer's concurrency counts the calls it already has
// in flight: its next call is refused at once, and its calls pass again as
// the running ones end.
func TestReloadLowersConcurrencyAtOnce(t *testing.T) {
	acme, globex, release, done := twoSlowCallsInFlight(t)
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

// twoSlowCallsInFlight starts two calls from acme to globex's "slow" and
// returns once both run; they end when release is closed, and report on done.
func twoSlowCallsInFlight(t *testing.T) (acme, globex *testnet.Member, release chan struct{}, done chan testnet.Outcome) {
	t.Helper()
	c := testnet.NewCluster(t, 2, testnet.Options{Names: []string{"acme", "globex"}})
	acme, globex = c.Member("acme"), c.Member("globex")
	started := make(chan struct{}, 8)
	release = make(chan struct{})
	globex.Handle(t, "slow", func(ctx context.Context, inv backend.Invocation) ([]byte, error) {
		started <- struct{}{}
		select {
		case <-release:
		case <-ctx.Done():
		}
		return []byte(`{}`), nil
	})
	globex.Grant(t, "acme", "slow")
	done = make(chan testnet.Outcome, 2)
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
	return acme, globex, release, done
}

// An edit that fails validation changes nothing: the budgets in force before
// it stay in force whole, even when the bad edit would have widened them.
func TestInvalidReloadKeepsBudgets(t *testing.T) {
	c := testnet.NewCluster(t, 2, testnet.Options{Names: []string{"acme", "globex"}})
	acme, globex := c.Member("acme"), c.Member("globex")
	globex.ExposeExec(t, "echo", `cat`)
	globex.Grant(t, "acme", "echo")
	globex.AppendConfig(t, "budget:\n  rules:\n    - peer: "+acme.ID.String()+"\n      dir: in\n      rate: 0.001\n      burst: 1\n")
	acme.MustCall(t, "globex", "echo", `{}`)
	path := filepath.Join(globex.Home, config.FileName)
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// The rule raised a hundredfold, and a field that does not exist.
	bad := strings.Replace(string(raw), "rate: 0.001", "rate: 0.1", 1) + "bogus_field: 1\n"
	if err := os.WriteFile(path, []byte(bad), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := globex.Node().Reload(); err == nil {
		t.Fatal("an invalid edit was applied")
	}
	o := acme.Call(t, "globex", "echo", `{}`)
	var e *localapi.Error
	if !errors.As(o.Err, &e) || e.Stage != refusal.StageBudget || !strings.Contains(e.Reason, "0.001") {
		t.Fatalf("call after an invalid edit: %v, want the old rate limit's refusal", o)
	}
}
