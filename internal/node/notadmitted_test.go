package node_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/treaty-dev/treaty/internal/budget"
	"github.com/treaty-dev/treaty/internal/home"
	"github.com/treaty-dev/treaty/internal/refusal"
)

// TestNotAdmittedKeepsBreakerShut: calls to a healthy peer that has not yet
// applied its `peer add` of this node fail at the handshake (stage transport,
// exit 4, naming the refusal), but do not count as the peer's failures: its
// breaker stays closed, so the calls after the peer adds this node reach it.
func TestNotAdmittedKeepsBreakerShut(t *testing.T) {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	acme := startNode(t, "acme", quiet, nil)
	globex := startNode(t, "globex", quiet, nil)
	must(t, home.AddPeer(acme.Home(), "globex", globex.Addr().String(), globex.ID().String()))
	must(t, acme.Reload())

	// Twice the breaker's default min_calls, all failing the same way.
	for i := range 10 {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, err := acme.Call(ctx, "globex", "echo", []byte(`{}`))
		cancel()
		var re *refusal.Error
		if !errors.As(err, &re) || re.Stage != refusal.StageTransport || !strings.Contains(err.Error(), "not admitted") {
			t.Fatalf("call %d: %v; want a transport refusal saying globex does not admit acme", i, err)
		}
		if code := refusal.ExitCode(err); code != refusal.ExitUnreachable {
			t.Fatalf("call %d: exit %d, want %d", i, code, refusal.ExitUnreachable)
		}
	}
	for _, p := range acme.Peers() {
		if p.Name == "globex" && p.Breaker != budget.StateClosed {
			t.Fatalf("globex's breaker is %s after calls it refused at the handshake, want closed", p.Breaker)
		}
	}

	must(t, home.AddPeer(globex.Home(), "acme", acme.Addr().String(), acme.ID().String()))
	must(t, globex.Reload())
	eventually(t, 5*time.Second, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, err := acme.Call(ctx, "globex", "echo", []byte(`{}`))
		var re *refusal.Error
		if !errors.As(err, &re) || !re.Remote { // globex answers: it grants acme nothing
			return fmt.Errorf("call after globex added acme: %v; want globex's own refusal", err)
		}
		return nil
	})
}
