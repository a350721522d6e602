package h1pool

import (
	"bufio"
	"context"
	"errors"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestBodyWithin: a server that sends an answer's head and then less body
// than it announced, holding the connection, fails the request within
// Request.BodyWithin even when the context has no deadline; before, the
// caller waited for ever. The wait for the head is not bounded by it, and a
// reused connection keeps no stale deadline.
func TestBodyWithin(t *testing.T) {
	t.Parallel()
	held := make(chan struct{})
	t.Cleanup(func() { close(held) })
	addr := rawServer(t, func(c net.Conn, nth int) {
		br := bufio.NewReader(c)
		for i := 0; ; i++ {
			req, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			switch req.URL.Path {
			case "/short":
				c.Write([]byte("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{}"))
				<-held
				return
			case "/slowhead":
				time.Sleep(300 * time.Millisecond) // the server is slow, not the test waiting
				c.Write([]byte("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}"))
			default:
				c.Write([]byte("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}"))
			}
		}
	})
	p := rawPool(t, addr)
	start := time.Now()
	_, _, err := p.Do(context.Background(), Request{Method: "GET", Target: "/short", BodyWithin: 200 * time.Millisecond}, 1<<20)
	if !errors.Is(err, ErrBody) || !strings.Contains(err.Error(), "within 200ms of its head") {
		t.Fatalf("short body: %v", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("short body failed after %v", d)
	}
	for _, target := range []string{"/", "/slowhead", "/slowhead"} {
		if _, body, err := p.Do(context.Background(), Request{Method: "GET", Target: target, BodyWithin: 100 * time.Millisecond}, 1<<20); err != nil || string(body) != "{}" {
			t.Fatalf("GET %s = %q, %v", target, body, err)
		}
	}
}
