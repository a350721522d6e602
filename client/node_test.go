package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"testing"

	"github.com/treaty-dev/treaty/client"
	"github.com/treaty-dev/treaty/internal/api"
	"github.com/treaty-dev/treaty/internal/home"
	"github.com/treaty-dev/treaty/internal/node"
	"github.com/treaty-dev/treaty/localapi"
)

// TestAgainstRealNode runs the client against a real node's socket. (The
// test links the node; the client package itself does not, see
// TestDependencyBound.) internal/api's tests cover every endpoint with two
// federated nodes.
func TestAgainstRealNode(t *testing.T) {
	t.Parallel()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	dir := filepath.Join(t.TempDir(), "acme")
	id, err := home.Init(dir, "acme", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cl := client.New(dir)
	if _, err := cl.Status(t.Context()); !errors.Is(err, client.ErrNotRunning) {
		t.Fatalf("before the node runs: %v, want ErrNotRunning", err)
	}
	n, err := node.Open(node.Options{Home: dir, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	if err := n.Start(ctx); err != nil {
		t.Fatal(err)
	}
	srv, err := api.Listen(n, quiet)
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx) }()

	s, err := cl.Status(t.Context())
	if err != nil || s.ID != id.String() || s.Name != "acme" || s.Addr != n.Addr().String() {
		t.Fatalf("Status = %+v, %v", s, err)
	}
	if peers, err := cl.Peers(t.Context()); err != nil || len(peers) != 0 || peers == nil {
		t.Fatalf("Peers = %#v, %v; want an empty list", peers, err)
	}
	_, err = cl.Call(t.Context(), "globex", "echo", json.RawMessage(`{}`))
	var r *localapi.Error
	if !errors.As(err, &r) || r.Stage != localapi.StageResolve || r.Remote || localapi.ExitCode(err) != localapi.ExitDenied {
		t.Fatalf("Call to unknown peer = %v", err)
	}

	cancel()
	if err := <-served; err != nil {
		t.Fatal(err)
	}
	if _, err := cl.Status(t.Context()); !errors.Is(err, client.ErrNotRunning) {
		t.Fatalf("after the server stopped: %v, want ErrNotRunning", err)
	}
}
