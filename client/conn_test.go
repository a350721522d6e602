package client

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/treaty-dev/treaty/localapi"
)

// countingNode serves h on a new home's socket, counting the connections
// clients open to it and how many have closed.
type countingNode struct {
	srv            *httptest.Server
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
	n := &countingNode{srv: httptest.NewUnstartedServer(h)}
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

// TestRetryOnReusedConnection: when the node reads a request on a reused
// connection and closes it without answering (it is stopping), a GET is sent
// again on a new connection and succeeds; a call, which the node may have
// acted on, is not. (The pool's own behaviour is tested in internal/h1pool.)
func TestRetryOnReusedConnection(t *testing.T) {
	t.Parallel()
	var requests, calls atomic.Int32
	n, cl := newCountingNode(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v1/call" {
			calls.Add(1)
		}
		// Every second request is the second on its connection: GET, GET
		// (dropped), GET again on a new connection, call (dropped).
		if requests.Add(1)%2 == 0 {
			c, _, _ := http.NewResponseController(w).Hijack()
			c.Close()
			return
		}
		io.WriteString(w, `[]`)
	})
	for i := range 2 {
		if _, err := cl.Peers(t.Context()); err != nil {
			t.Fatalf("GET %d: %v", i, err)
		}
	}
	if opened, _ := n.counts(); opened != 2 {
		t.Fatalf("%d connections for a GET sent again, want 2", opened)
	}
	if _, err := cl.Call(t.Context(), "globex", "echo", nil); err == nil {
		t.Fatal("a call on a connection the node closed unanswered succeeded")
	}
	if c := calls.Load(); c != 1 {
		t.Fatalf("the node had %d calls, want 1: a call is not sent again", c)
	}
}

// TestDialFailures: only a missing or refusing socket means no node runs; a
// socket the user may not open, or a home whose socket path is too long for
// the system, is reported as what it is, naming the socket.
func TestDialFailures(t *testing.T) {
	t.Parallel()
	sock := "/h/" + strings.Repeat("x", 100) + "/" + localapi.SocketName
	for name, tc := range map[string]struct {
		err        error
		notRunning bool
		msg        string
	}{
		"missing":    {syscall.ENOENT, true, ""},
		"refused":    {syscall.ECONNREFUSED, true, ""},
		"permission": {syscall.EACCES, false, "permission denied"},
		"too long":   {syscall.EINVAL, false, "longer than"},
	} {
		t.Run(name, func(t *testing.T) {
			err := dialError(sock, &net.OpError{Op: "dial", Net: "unix", Err: os.NewSyscallError("connect", tc.err)})
			if errors.Is(err, ErrNotRunning) != tc.notRunning || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("dial failing with %v: %v; want ErrNotRunning %v and %q", tc.err, err, tc.notRunning, tc.msg)
			}
			if !tc.notRunning && !strings.Contains(err.Error(), sock) {
				t.Fatalf("%v does not name the socket", err)
			}
		})
	}
	// A home that does not exist is named as such, and is still ErrNotRunning.
	missing := filepath.Join(t.TempDir(), "typo")
	_, err := New(missing).Status(t.Context())
	if !errors.Is(err, ErrNotRunning) || !strings.Contains(err.Error(), "no treaty home at "+missing) {
		t.Fatalf("a missing home: %v", err)
	}
	// A real home whose socket path the system cannot hold.
	long := filepath.Join(t.TempDir(), strings.Repeat("x", 120))
	if err := os.MkdirAll(long, 0o700); err != nil {
		t.Fatal(err)
	}
	_, err = New(long).Status(t.Context())
	if err == nil || errors.Is(err, ErrNotRunning) || !strings.Contains(err.Error(), "longer than") {
		t.Fatalf("a socket path over the limit: %v", err)
	}
}

// TestHungNodeReadIsBounded: a node that takes a read but never answers does
// not hang the reader past ReadTimeout (here shortened), and the error says
// so; a caller's own deadline is left alone, and so is a call.
func TestHungNodeReadIsBounded(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	defer close(release)
	_, cl := newCountingNode(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	cl.readTimeout = 50 * time.Millisecond
	start := time.Now()
	_, err := cl.Peers(t.Context())
	if err == nil || !strings.Contains(err.Error(), "did not answer GET /v1/peers within 50ms") {
		t.Fatalf("read of a hung node: %v", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("read of a hung node took %v", d)
	}
	if _, err := cl.KVGet(t.Context(), "g", "secret-key"); err == nil || strings.Contains(err.Error(), "secret-key") {
		t.Fatalf("the error names the query: %v", err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	if _, err := cl.Peers(ctx); !errors.Is(err, context.DeadlineExceeded) || strings.Contains(err.Error(), "did not answer") {
		t.Fatalf("a caller's own deadline: %v", err)
	}
	callCtx, cancelCall := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { _, err := cl.Call(callCtx, "globex", "echo", nil); done <- err }()
	select {
	case err := <-done:
		t.Fatalf("a call was cut by the read timeout: %v", err)
	case <-time.After(300 * time.Millisecond): // longer than readTimeout: the call is still waiting
	}
	cancelCall()
	if err := <-done; err == nil {
		t.Fatal("a cancelled call succeeded")
	}
}

// TestShortAnswerBodyIsBounded: a node that sends an answer's head and less
// body than it announced, keeping the connection open, fails a call whose
// context has no deadline within AnswerBodyWithin (shortened here); before,
// the call waited for ever.
func TestShortAnswerBodyIsBounded(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	_, cl := newCountingNode(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "100")
		w.WriteHeader(http.StatusOK)
		io.WriteString(w, "{}")
		w.(http.Flusher).Flush()
		select {
		case <-r.Context().Done():
		case <-release:
		}
	})
	t.Cleanup(func() { close(release) }) // runs before the node's Close
	cl.bodyWithin = 100 * time.Millisecond
	done := make(chan error, 1)
	go func() {
		_, err := cl.Call(context.Background(), "globex", "echo", nil)
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "within 100ms of its head") {
			t.Fatalf("call with a short answer body: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("a call with a short answer body hung")
	}
}
