package metrics

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"testing"
	"time"
)

// TestServerRefusesRebindHost: a page on another site whose name a DNS
// rebinding points at 127.0.0.1 reaches the loopback metrics with its own
// name in the Host header; it must not read the peers and capabilities the
// metrics name. A scraper naming the bound address, localhost or a
// loopback IP is served.
func TestServerRefusesRebindHost(t *testing.T) {
	t.Parallel()
	m, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	m.Call("out", "secret-peer", "secret-cap", "ok")
	srv, err := Listen("127.0.0.1:0", false, m, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	addr := srv.Addr().String()
	c := &http.Client{Timeout: 5 * time.Second}
	get := func(host string) (int, string) {
		req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/metrics", nil)
		req.Host = host
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	_, port, _ := net.SplitHostPort(addr)
	for _, host := range []string{"evil.example:" + port, "evil.example", "127.0.0.1.nip.io", "localhost.evil.example"} {
		if code, body := get(host); code != http.StatusMisdirectedRequest {
			t.Errorf("Host %q: status %d, want 421; body %.80q", host, code, body)
		}
	}
	for _, host := range []string{addr, "localhost:9420", "127.0.0.1", "[::1]:9420", "[::1]"} {
		if code, body := get(host); code != http.StatusOK {
			t.Errorf("Host %q: status %d, want 200; body %.80q", host, code, body)
		}
	}
}
