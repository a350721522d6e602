package metrics

import (
	"context"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/treaty-dev/treaty/internal/localhttptest"
)

// TestIdleConnectionClosed: a scraper's keep-alive connection that goes
// quiet is closed (idleTimeout, shortened here), and the limit is explicit
// rather than ReadTimeout's side effect.
func TestIdleConnectionClosed(t *testing.T) {
	t.Parallel()
	m, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := Listen("127.0.0.1:0", false, m, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if srv.srv.IdleTimeout != 10*time.Second {
		t.Fatalf("idle timeout %v, want 10s", srv.srv.IdleTimeout)
	}
	srv.srv.IdleTimeout = 100 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	defer func() { cancel(); <-done }()
	c, err := net.Dial("tcp", srv.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	localhttptest.IdleClosed(t, c, "127.0.0.1", "/metrics")
}
