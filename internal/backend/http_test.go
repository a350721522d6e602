package backend

import (
	"context"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/treaty-dev/treaty/internal/h1pool"
)

// connCount counts the TCP connections clients opened to a server, in all and
// at most at once.
type connCount struct {
	mu                 sync.Mutex
	opened, open, peak int
}

func (c *connCount) state(_ net.Conn, s http.ConnState) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch s {
	case http.StateNew:
		c.opened++
		c.open++
		c.peak = max(c.peak, c.open)
	case http.StateClosed, http.StateHijacked:
		c.open--
	}
}

func (c *connCount) get() (opened, peak int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.opened, c.peak
}

// newConnCounter serves a small JSON answer and counts the TCP connections
// clients opened to it.
func newConnCounter(t *testing.T) (*httptest.Server, *connCount) {
	t.Helper()
	c := &connCount{}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(time.Millisecond) // work, so that calls overlap
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"ok":true}`))
	}))
	srv.Config.ConnState = c.state
	srv.Start()
	t.Cleanup(srv.Close)
	return srv, c
}

// hammer makes callers*perCaller calls through call, callers at a time.
func hammer(t *testing.T, callers, perCaller int, call func() error) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, callers)
	for range callers {
		wg.Go(func() {
			for range perCaller {
				if err := call(); err != nil {
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
}

// TestHTTPPoolReusesConnections: 32 concurrent callers making 1,280 calls open
// about 32 connections when the pool holds 32, where Go's default transport
// (two idle connections, the old behaviour) opens a new one for a large share
// of the calls.
func TestHTTPPoolReusesConnections(t *testing.T) {
	const callers, perCaller = 32, 40
	srv, count := newConnCounter(t)
	pooled := &HTTP{URL: srv.URL, Timeout: 10 * time.Second, Conns: callers}
	defer pooled.Close()
	hammer(t, callers, perCaller, func() error {
		_, err := pooled.Call(t.Context(), inv(t, `{}`))
		return err
	})
	opened, peak := count.get()
	if opened > callers || peak > callers {
		t.Fatalf("pooled backend opened %d connections (%d at once) for %d callers; want at most %d", opened, peak, callers, callers)
	}

	srv2, count2 := newConnCounter(t)
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr}
	hammer(t, callers, perCaller, func() error {
		resp, err := hc.Post(srv2.URL, "application/json", strings.NewReader(`{}`))
		if err != nil {
			return err
		}
		io.Copy(io.Discard, resp.Body)
		return resp.Body.Close()
	})
	opened2, peak2 := count2.get()
	if opened2 <= opened {
		t.Fatalf("Go's default transport opened %d connections, the pool %d; the test no longer tells pooled from unpooled", opened2, opened)
	}
	t.Logf("%d calls: pool of %d: %d connections (%d at once); Go default: %d (%d at once)", callers*perCaller, callers, opened, peak, opened2, peak2)
}

// TestHTTPPoolBound: with Conns 2, eight concurrent calls to a backend that
// holds each answer never have more than two connections open, and all of
// them are answered.
func TestHTTPPoolBound(t *testing.T) {
	const conns, callers = 2, 8
	srv, count := newConnCounter(t)
	h := &HTTP{URL: srv.URL, Timeout: 10 * time.Second, Conns: conns}
	defer h.Close()
	hammer(t, callers, 5, func() error {
		_, err := h.Call(t.Context(), inv(t, `{}`))
		return err
	})
	if opened, peak := count.get(); peak > conns || opened > conns {
		t.Fatalf("Conns %d: %d connections opened, %d at once", conns, opened, peak)
	}
	if conns := (&HTTP{URL: srv.URL, Timeout: time.Second}).conns(); conns != DefaultConns {
		t.Fatalf("default pool: %d connections", conns)
	}
}

// TestHTTPAnswers: the framings a backend may answer with, and what the
// request carries.
func TestHTTPAnswers(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if r.Method != http.MethodPost || r.URL.RequestURI() != "/run?x=1" || r.Header.Get("Content-Type") != "application/json" ||
			r.Header.Get("Treaty-Capability") != "review" || r.Header.Get("Treaty-Call") != "tok" {
			http.Error(w, "bad request: "+r.Method+" "+r.URL.RequestURI(), 400)
			return
		}
		if u, p, ok := r.BasicAuth(); ok {
			w.Write([]byte(`{"user":"` + u + `","pass":"` + p + `"}`))
			return
		}
		switch string(body) {
		case `"chunked"`:
			w.Write([]byte(`{"a":`))
			w.(http.Flusher).Flush()
			w.Write([]byte(`1}`))
		case `"close"`:
			w.Header().Set("Connection", "close")
			w.Write([]byte(`{"closed":true}`))
		case `"hints"`:
			w.Header().Set("Link", "</x>; rel=preload")
			w.WriteHeader(http.StatusEarlyHints)
			w.Write([]byte(` {"after":"hints"}` + "\n"))
		case `"big"`:
			w.Write([]byte(`"` + strings.Repeat("x", 4096) + `"`))
		case `"redirect"`:
			http.Redirect(w, r, "/elsewhere", http.StatusFound)
		default:
			w.Write(body)
		}
	}))
	defer srv.Close()
	h := &HTTP{URL: srv.URL + "/run?x=1", Timeout: 5 * time.Second, MaxOutput: 1024}
	defer h.Close()
	call := func(input string) ([]byte, error) {
		in := inv(t, input)
		in.CallToken = "tok"
		return h.Call(t.Context(), in)
	}
	for input, want := range map[string]string{
		`{"echo":1}`: `{"echo":1}`,
		`"chunked"`:  `{"a":1}`,
		`"close"`:    `{"closed":true}`,
		`"hints"`:    `{"after":"hints"}`,
	} {
		for range 2 { // and again on the connection the first left
			out, err := call(input)
			if err != nil || string(out) != want {
				t.Fatalf("%s: %s, %v; want %s", input, out, err, want)
			}
		}
	}
	var f *Failure
	if _, err := call(`"big"`); !errors.As(err, &f) || !errors.Is(err, errOverflow) {
		t.Fatalf("answer over MaxOutput: %v", err)
	}
	if _, err := call(`"redirect"`); !errors.As(err, &f) || f.Reason != "answered HTTP 302" {
		t.Fatalf("redirect: %v, want it answered, not followed", err)
	}
	if out, err := call(`{"after":"big"}`); err != nil || string(out) != `{"after":"big"}` {
		t.Fatalf("after an oversized answer: %s, %v", out, err)
	}
	in := inv(t, `{}`)
	in.CallToken = "tok\r\nX-Injected: 1"
	if _, err := h.Call(t.Context(), in); !errors.As(err, &f) || f.Reason != "misconfigured" || !errors.Is(err, h1pool.ErrMalformed) {
		t.Fatalf("header value with CR LF: %v, want refused before sending", err)
	}
	auth := &HTTP{URL: strings.Replace(srv.URL, "http://", "http://ann:s3cret@", 1) + "/run?x=1", Timeout: 5 * time.Second}
	in = inv(t, `{}`)
	in.CallToken = "tok"
	if out, err := auth.Call(t.Context(), in); err != nil || string(out) != `{"user":"ann","pass":"s3cret"}` {
		t.Fatalf("userinfo in the URL: %s, %v; want it sent as basic auth", out, err)
	}
	for _, bad := range []string{"ftp://ann:s3cret@127.0.0.1/x", "http://", "://ann:s3cret@x", "http://ann:s3cret@127.0.0.1:1:2/", "http://ann:s3cret@%zz/"} {
		_, err := (&HTTP{URL: bad, Timeout: time.Second}).Call(t.Context(), inv(t, `{}`))
		if !errors.As(err, &f) || f.Reason != "misconfigured" || strings.Contains(err.Error(), "s3cret") {
			t.Fatalf("URL %q: %v, want misconfigured, without the password", bad, err)
		}
	}
}

// TestHTTPCancelled: a call cancelled while the backend works fails at once,
// and the connection it held is not reused half-read.
func TestHTTPCancelled(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			select {
			case <-release:
			case <-r.Context().Done():
			}
		}
		w.Write([]byte(`{"ok":true}`))
	}))
	defer srv.Close()
	defer close(release)
	h := &HTTP{URL: srv.URL + "/slow", Timeout: time.Minute}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { _, err := h.Call(ctx, inv(t, `{}`)); done <- err }()
	cancel()
	select {
	case err := <-done:
		var f *Failure
		if !errors.As(err, &f) || f.Reason != "unreachable" {
			t.Fatalf("cancelled call: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a cancelled call did not return")
	}
	if p, _ := h.connPool(); p.Idle() != 0 {
		t.Fatalf("%d connections pooled after a cancelled call", p.Idle())
	}
}

// TestHTTPSVerifiesTheServer: an https:// backend is spoken to over TLS and
// its certificate is checked against the system's roots: a self-signed test
// server is refused before anything is sent.
func TestHTTPSVerifiesTheServer(t *testing.T) {
	var reached atomic.Bool
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reached.Store(true)
		w.Write([]byte(`{}`))
	}))
	defer srv.Close()
	_, err := (&HTTP{URL: srv.URL, Timeout: 5 * time.Second}).Call(t.Context(), inv(t, `{}`))
	var f *Failure
	var unknown x509.UnknownAuthorityError
	if !errors.As(err, &f) || f.Reason != "unreachable" || !errors.As(err, &unknown) || reached.Load() {
		t.Fatalf("self-signed https backend: %v (handler reached: %v), want refused for its unknown authority", err, reached.Load())
	}
}

// TestHTTPCutAnswer: an answer whose body stops short of its Content-Length
// fails as "read failed", and its connection is not reused.
func TestHTTPCutAnswer(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, bw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		bw.WriteString("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{\"cut\":")
		bw.Flush()
		conn.Close()
	}))
	defer srv.Close()
	h := &HTTP{URL: srv.URL, Timeout: 5 * time.Second}
	_, err := h.Call(t.Context(), inv(t, `{}`))
	var f *Failure
	if !errors.As(err, &f) || f.Reason != "read failed" {
		t.Fatalf("cut answer: %v, want read failed", err)
	}
	if p, _ := h.connPool(); p.Idle() != 0 {
		t.Fatal("the connection of a cut answer was pooled")
	}
}
