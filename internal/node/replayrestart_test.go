package node_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"testing"
	"time"

	"github.com/treaty-dev/treaty/internal/backend"
	"github.com/treaty-dev/treaty/internal/home"
	"github.com/treaty-dev/treaty/internal/identity"
	"github.com/treaty-dev/treaty/internal/node"
)

// TestReplayRefusedAfterRestart: a signed request the node served is refused
// as a replay (stage wire, reason replayed) when sent again after the node
// restarted on the same home, within the request's lifetime; a fresh request
// from the same peer is served.
func TestReplayRefusedAfterRestart(t *testing.T) {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	dir := t.TempDir() + "/server"
	if _, err := home.Init(dir, "server", "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	key, err := identity.Generate(nil)
	must(t, err)
	must(t, home.AddPeer(dir, "caller", "127.0.0.1:1", key.Public().String()))
	_, err = home.Grant(dir, "caller", "echo")
	must(t, err)
	echo := backend.Func(func(_ context.Context, inv backend.Invocation) ([]byte, error) { return inv.Input, nil })
	start := func() *node.Node {
		n, err := node.Open(node.Options{Home: dir, Logger: quiet})
		must(t, err)
		must(t, n.Register(node.Handler{Info: node.CapabilityInfo{Name: "echo"}, Backend: echo}))
		ctx, cancel := context.WithCancel(context.Background())
		must(t, n.Start(ctx))
		t.Cleanup(func() { cancel(); n.Close() })
		return n
	}

	first := start()
	a := newClient(t, key, first)
	req := a.signed(t)
	if st, _ := a.send(req); st != http.StatusOK {
		t.Fatalf("first send: status %d", st)
	}
	must(t, first.Close())

	second := start()
	b := newClient(t, key, second)
	st, resp := b.send(req)
	if st != http.StatusConflict || resp == nil {
		t.Fatalf("replay after restart: status %d, want %d", st, http.StatusConflict)
	}
	if f := resp.failure(); f.Stage != "wire" || f.Reason != "replayed" {
		t.Fatalf("replay after restart refused as %+v, want stage wire, reason replayed", f)
	}
	eventually(t, 5*time.Second, func() error {
		if st, _ := b.send(b.signed(t)); st != http.StatusOK {
			return fmt.Errorf("fresh request after restart: status %d", st)
		}
		return nil
	})
}
