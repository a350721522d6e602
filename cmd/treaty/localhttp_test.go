package main

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/treaty-dev/treaty/internal/localhttptest"
)

func TestIsLoopback(t *testing.T) {
	t.Parallel()
	for addr, want := range map[string]bool{
		"127.0.0.1:8765": true, "[::1]:8765": true, "localhost:1": true, "127.1.2.3:0": true,
		"0.0.0.0:8765": false, "[::]:1": false, "10.0.0.1:80": false, "example.com:80": false,
		"127.0.0.1": false, "": false, "localhost.evil.com:1": false,
	} {
		if got := isLoopback(addr); got != want {
			t.Errorf("isLoopback(%q) = %v, want %v", addr, got, want)
		}
	}
}

// TestLocalServerIdle: treaty a2a, mcp --http and dashboard close a
// keep-alive connection idle for localIdleTimeout (shortened here), and
// never a stream that outlasts it. Before, an idle connection was kept for
// ever.
func TestLocalServerIdle(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	mux := http.NewServeMux()
	mux.HandleFunc("GET /", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	mux.HandleFunc("GET /stream", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "first\n")
		w.(http.Flusher).Flush()
		select {
		case <-release:
		case <-r.Context().Done():
			return
		}
		io.WriteString(w, "second\n")
	})
	log := slog.New(slog.DiscardHandler)
	srv := localServer(mux, log)
	if srv.IdleTimeout != localIdleTimeout || srv.ReadHeaderTimeout == 0 || srv.WriteTimeout != 0 {
		t.Fatalf("idle %v, read header %v, write %v: want %v, some, none", srv.IdleTimeout, srv.ReadHeaderTimeout, srv.WriteTimeout, localIdleTimeout)
	}
	srv.IdleTimeout = 100 * time.Millisecond
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serveLocal(ctx, ln, srv, func(context.Context) {}, io.Discard, "") }()
	defer func() { cancel(); <-done }()
	addr := ln.Addr().String()

	// A stream whose answer waits longer than the idle timeout.
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Get("http://" + addr + "/stream")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	if line, err := br.ReadString('\n'); line != "first\n" {
		t.Fatalf("stream: %q, %v", line, err)
	}
	// An idle connection is closed: the idle timeout has passed...
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	localhttptest.IdleClosed(t, c, addr, "/")
	// ...and the stream, quiet all that time, still ends.
	close(release)
	if rest, err := io.ReadAll(br); err != nil || string(rest) != "second\n" {
		t.Fatalf("stream after the idle timeout: %q, %v", rest, err)
	}
}
