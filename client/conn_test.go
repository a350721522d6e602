package client

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/treaty-dev/treaty/localapi"
)

// countingNode serves h on a new home's socket, counting the connections
// clients open to it and how many have closed.
type countingNode struct {
	srv            *httptest.Server
	home           string
	mu             sync.Mutex
	opened, closed int
}

func newCountingNode(t *testing.T, h http.HandlerFunc) (*countingNode, *Client) {
	t.Helper()
	dir := t.TempDir()
	ln, err := net.Listen("unix", filepath.Join(dir, localapi.SocketName))
	if err != nil {
		t.Fatal(err)
	}
	n := &countingNode{srv: httptest.NewUnstartedServer(h), home: dir}
	n.srv.Listener = ln
	n.srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		n.mu.Lock()
		defer n.mu.Unlock()
		switch s {
		case http.StateNew:
			n.opened++
		case http.StateClosed, http.StateHijacked:
			n.closed++
		}
	}
	n.srv.Start()
	t.Cleanup(n.srv.Close)
	return n, New(dir)
}

func (n *countingNode) counts() (opened, closed int) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.opened, n.closed
}

func callAnswer(w http.ResponseWriter, r *http.Request) {
	io.Copy(io.Discard, r.Body)
	io.WriteString(w, `{"output":{"ok":1},"receipt":{},"elapsed_ms":1}`)
}

// eventually polls cond until it holds, for at most 10 seconds.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within 10s: %s", what)
		}
		tick := time.NewTimer(2 * time.Millisecond)
		select {
		case <-t.Context().Done():
			tick.Stop()
			t.Fatal(t.Context().Err())
		case <-tick.C:
		}
	}
}

// TestConnectionReuse: one client's calls, one after another, share one
// connection; 16 goroutines sharing a client open at most 16.
func TestConnectionReuse(t *testing.T) {
	t.Parallel()
	n, cl := newCountingNode(t, callAnswer)
	for range 20 {
		if _, err := cl.Call(t.Context(), "globex", "echo", nil); err != nil {
			t.Fatal(err)
		}
	}
	if opened, _ := n.counts(); opened != 1 {
		t.Fatalf("20 calls one after another opened %d connections, want 1", opened)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for range 16 {
		wg.Go(func() {
			for range 20 {
				if _, err := cl.Call(t.Context(), "globex", "echo", nil); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if opened, _ := n.counts(); opened > 17 {
		t.Fatalf("16 concurrent callers opened %d connections", opened)
	}
}

// TestNodeClosedIdleConnection: a connection the node closed while idle (a
// restart) is not used again; the next request, a call included, goes on a
// new one and succeeds.
func TestNodeClosedIdleConnection(t *testing.T) {
	t.Parallel()
	n, cl := newCountingNode(t, callAnswer)
	for i := range 3 {
		if _, err := cl.Call(t.Context(), "globex", "echo", nil); err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
		n.srv.CloseClientConnections()
		eventually(t, "the node closed the connection", func() bool { _, c := n.counts(); return c == i+1 })
	}
	if opened, _ := n.counts(); opened != 3 {
		t.Fatalf("%d connections for 3 calls with the node closing each in between", opened)
	}
}

// TestIdleConnectionsClose: the client closes a connection idle for its idle
// timeout, without another request.
func TestIdleConnectionsClose(t *testing.T) {
	t.Parallel()
	n, _ := newCountingNode(t, callAnswer)
	cl := newClient(n.home, 20*time.Millisecond)
	if _, err := cl.Call(t.Context(), "globex", "echo", nil); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the idle connection closed", func() bool { _, c := n.counts(); return c == 1 })
}

// TestCancelAndDeadline: a request the caller cancels, or whose deadline
// passes, returns at once with the context's error, and its connection is
// not reused half-read.
func TestCancelAndDeadline(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	defer close(release)
	n, cl := newCountingNode(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("peer") == "slow" {
			select {
			case <-release:
			case <-r.Context().Done():
			}
		}
		io.WriteString(w, `{"capabilities":[]}`)
	})
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { _, err := cl.Caps(ctx, "slow"); done <- err }()
	eventually(t, "the request reached the node", func() bool { o, _ := n.counts(); return o == 1 })
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled: %v, want context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a cancelled request did not return")
	}
	ctx, cancel = context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	if _, err := cl.Caps(ctx, "slow"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("past its deadline: %v, want context.DeadlineExceeded", err)
	}
	if _, err := cl.Caps(t.Context(), "fast"); err != nil {
		t.Fatalf("after two abandoned requests: %v", err)
	}
	if opened, _ := n.counts(); opened != 3 {
		t.Fatalf("%d connections: want the two abandoned ones dropped and a third", opened)
	}
}

// TestRetryOnReusedConnection: when the node reads a request on a reused
// connection and closes it without answering (it is stopping), a GET is sent
// again on a new connection and succeeds; a call, which the node may have
// acted on, is not.
func TestRetryOnReusedConnection(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ln, err := net.Listen("unix", filepath.Join(dir, localapi.SocketName))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var mu sync.Mutex
	var opened, calls int
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			opened++
			mu.Unlock()
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				for i := 0; ; i++ {
					r, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					io.Copy(io.Discard, r.Body)
					mu.Lock()
					if r.URL.Path == "/v1/call" {
						calls++
					}
					mu.Unlock()
					if i == 1 {
						return // the second request on a connection: no answer
					}
					io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n[]")
				}
			}()
		}
	}()
	cl := New(dir)
	for i := range 2 {
		if _, err := cl.Peers(t.Context()); err != nil {
			t.Fatalf("GET %d: %v", i, err)
		}
	}
	mu.Lock()
	if opened != 2 {
		t.Fatalf("%d connections for a GET sent again, want 2", opened)
	}
	mu.Unlock()
	if _, err := cl.Call(t.Context(), "globex", "echo", nil); err == nil {
		t.Fatal("a call on a connection the node closed unanswered succeeded")
	}
	mu.Lock()
	defer mu.Unlock()
	if calls != 1 {
		t.Fatalf("the node read %d calls, want 1: a call is not sent again", calls)
	}
}
