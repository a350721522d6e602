package api_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/treaty-dev/treaty/internal/backend"
	"github.com/treaty-dev/treaty/internal/home"
	"github.com/treaty-dev/treaty/internal/node"
	"github.com/treaty-dev/treaty/localapi"
)

// flood gives globex a stream capability that emits 16 KiB events until its
// call ends, and returns a channel closed when its backend returned.
func flood(t *testing.T, acme, globex *env) (ended <-chan struct{}, events *atomic.Int64) {
	t.Helper()
	done := make(chan struct{})
	var n atomic.Int64
	event := []byte(`{"pad":"` + strings.Repeat("x", 16<<10) + `"}`)
	err := globex.n.Register(node.Handler{Info: node.CapabilityInfo{Name: "flood"},
		Streamer: backend.StreamFunc(func(ctx context.Context, _ backend.Invocation, emit func([]byte) error) error {
			defer close(done)
			for ctx.Err() == nil {
				if err := emit(event); err != nil {
					return err
				}
				n.Add(1)
			}
			return ctx.Err()
		})})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := home.Grant(globex.home, "acme", "flood"); err != nil {
		t.Fatal(err)
	}
	if err := globex.n.Reload(); err != nil {
		t.Fatal(err)
	}
	return done, &n
}

// startStream posts a flood stream on a raw connection and reads its head
// and first line.
func startStream(t *testing.T, e *env) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("unix", filepath.Join(e.home, localapi.SocketName))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	body := `{"peer":"globex","capability":"flood"}`
	c.Write([]byte("POST /v1/stream HTTP/1.1\r\nHost: treaty\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body))
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("stream answer: %v", err)
	}
	if _, err := bufio.NewReader(resp.Body).ReadString('\n'); err != nil {
		t.Fatal(err)
	}
	return c, br
}

func waitClosed(t *testing.T, ch <-chan struct{}, within time.Duration, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(within):
		t.Fatal(what)
	}
}

// TestStreamReaderStops: a local client that stops reading a stream ends the
// call within the stall bound (shortened here), and with it the peer's
// backend. Before, the node's write to the client blocked for ever, holding
// the outbound stream until the peer gave up (its call_timeout, 30 s), and
// the handler's goroutine and connection for as long as the client lived.
func TestStreamReaderStops(t *testing.T) {
	t.Parallel()
	acme, globex := start(t, "acme"), start(t, "globex")
	federate(t, acme, globex)
	ended, _ := flood(t, acme, globex)
	acme.srv.StallForTest(300 * time.Millisecond)
	c, _ := startStream(t, acme)
	// The client reads nothing more; the peer's backend must end well
	// before the peer's own 30 s bound.
	waitClosed(t, ended, 15*time.Second, "the backend still runs after its local reader stopped reading")
	// The node closed the client's connection: what it still holds drains,
	// then ends.
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.Copy(io.Discard, c); err != nil {
		t.Fatalf("the stalled stream's connection did not end: %v", err)
	}
}

// TestStreamClientLeaves: a client that disconnects mid-stream ends the call
// and the peer's backend (the request's context is cancelled).
func TestStreamClientLeaves(t *testing.T) {
	t.Parallel()
	acme, globex := start(t, "acme"), start(t, "globex")
	federate(t, acme, globex)
	ended, _ := flood(t, acme, globex)
	c, _ := startStream(t, acme)
	c.Close()
	waitClosed(t, ended, 15*time.Second, "the backend still runs after its local client left")
}

// TestSlowBody: a request body trickled past the stall bound is cut; the
// connection is closed rather than held. Before, a body could take for ever.
func TestSlowBody(t *testing.T) {
	t.Parallel()
	e := start(t, "acme")
	e.srv.StallForTest(300 * time.Millisecond)
	c, err := net.Dial("unix", filepath.Join(e.home, localapi.SocketName))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// Announce 100 bytes, send 1.
	c.Write([]byte("POST /v1/call HTTP/1.1\r\nHost: treaty\r\nContent-Length: 100\r\n\r\n{"))
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	b, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("a trickled body held the connection: %v (read %q)", err, b)
	}
	if !strings.Contains(string(b), `"stage":"usage"`) {
		t.Fatalf("answer to a trickled body: %q", b)
	}
}

// TestKeepAliveAfterStall: a keep-alive connection idle past the stall
// bound still gets its next answer, 100 Continue included: the write
// deadline the previous answer left does not fail the next exchange.
func TestKeepAliveAfterStall(t *testing.T) {
	t.Parallel()
	e := start(t, "acme")
	e.srv.StallForTest(200 * time.Millisecond)
	c, br := dialSock(t, e)
	if code, _ := ask(t, c, br); code != 200 {
		t.Fatalf("first answer %d", code)
	}
	<-time.After(400 * time.Millisecond) // the connection idles past the bound: what is under test
	body := `{"peer":"nobody","lift":true}`
	c.SetDeadline(time.Now().Add(10 * time.Second))
	c.Write([]byte("POST /v1/trust/set HTTP/1.1\r\nHost: treaty\r\nExpect: 100-continue\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n"))
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusContinue {
		t.Fatalf("interim answer: %v %v", resp, err)
	}
	c.Write([]byte(body))
	resp, err = http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 403 {
		t.Fatalf("answer after 100 Continue: %v %v", resp, err)
	}
}

// TestManyStreams: concurrent streams from one process each get all their
// events and their end.
func TestManyStreams(t *testing.T) {
	t.Parallel()
	acme, globex := start(t, "acme"), start(t, "globex")
	federate(t, acme, globex)
	errs := make(chan error, 32)
	for range cap(errs) {
		go func() {
			n := 0
			err := acme.cl.Stream(t.Context(), "globex", "ticks", nil, func(json.RawMessage) error { n++; return nil })
			if err == nil && n != 3 {
				err = fmt.Errorf("%d events, want 3", n)
			}
			errs <- err
		}()
	}
	for range cap(errs) {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}
