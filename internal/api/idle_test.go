package api_test

import (
	"context"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/treaty-dev/treaty/internal/api"
	"github.com/treaty-dev/treaty/internal/home"
	"github.com/treaty-dev/treaty/internal/localhttptest"
	"github.com/treaty-dev/treaty/internal/node"
	"github.com/treaty-dev/treaty/localapi"
)

// TestIdleConnectionClosed: a keep-alive connection to treaty.sock that goes
// quiet is closed by the server (2 minutes; shortened here), so a local
// process cannot hold the node's descriptors with idle connections. Before,
// the server had no idle timeout and kept them for ever.
func TestIdleConnectionClosed(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "solo")
	if _, err := home.Init(dir, "solo", "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	n, err := node.Open(node.Options{Home: dir, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	if err := n.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	srv, err := api.Listen(n, quiet)
	if err != nil {
		t.Fatal(err)
	}
	if got := srv.IdleTimeoutForTest(100 * time.Millisecond); got != 2*time.Minute {
		t.Fatalf("idle timeout %v, want 2m", got)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx) }()
	defer func() { cancel(); <-served }()
	c, err := net.Dial("unix", filepath.Join(dir, localapi.SocketName))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	localhttptest.IdleClosed(t, c, "treaty", "/v1/openapi.json")
}
