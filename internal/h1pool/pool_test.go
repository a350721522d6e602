package h1pool

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// server serves h on loopback, on network tcp or unix, and counts the
// connections opened to it and closed.
type server struct {
	srv            *httptest.Server
	network, addr  string
	mu             sync.Mutex
	opened, closed int
}

// onEach runs test, in parallel, on each network the pool's users dial: the
// client a unix socket, the http backend TCP.
func onEach(t *testing.T, test func(t *testing.T, network string)) {
	t.Parallel()
	for _, network := range []string{"unix", "tcp"} {
		t.Run(network, func(t *testing.T) { t.Parallel(); test(t, network) })
	}
}

func newServer(t *testing.T, network string, h http.HandlerFunc) *server {
	t.Helper()
	s := &server{srv: httptest.NewUnstartedServer(h), network: network}
	if network == "unix" {
		ln, err := net.Listen("unix", filepath.Join(t.TempDir(), "s.sock"))
		if err != nil {
			t.Fatal(err)
		}
		s.srv.Listener.Close()
		s.srv.Listener = ln
	}
	s.addr = s.srv.Listener.Addr().String()
	s.srv.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		s.mu.Lock()
		defer s.mu.Unlock()
		switch st {
		case http.StateNew:
			s.opened++
		case http.StateClosed, http.StateHijacked:
			s.closed++
		}
	}
	s.srv.Config.ConnContext = func(ctx context.Context, _ net.Conn) context.Context {
		return context.WithValue(ctx, requestsKey{}, new(atomic.Int32))
	}
	s.srv.Start()
	t.Cleanup(s.srv.Close)
	return s
}

// requestsKey keys a connection's request count in its requests' context.
type requestsKey struct{}

// nth is the request's number on its connection, from 1.
func nth(r *http.Request) int32 { return r.Context().Value(requestsKey{}).(*atomic.Int32).Add(1) }

func (s *server) counts() (opened, closed int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.opened, s.closed
}

// newPool pools connections to s, with cfg's other fields.
func newPool(t *testing.T, s *server, cfg Config) *Pool {
	t.Helper()
	cfg.Dial = func(ctx context.Context) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, s.network, s.addr)
	}
	cfg.Header = []string{"Host", "test"}
	if cfg.IdleTimeout == 0 {
		cfg.IdleTimeout = time.Minute
	}
	if cfg.MaxIdle == 0 && cfg.MaxOpen == 0 {
		cfg.MaxIdle = 8
	}
	p, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.CloseIdle)
	return p
}

func post(body string) Request {
	return Request{Method: http.MethodPost, Target: "/", Header: []string{"Content-Type", "application/json"}, Body: []byte(body)}
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

func echo(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	w.Write(b)
}

// TestMaxOpen: eight callers sharing a pool of MaxOpen 2 against a server
// that holds each answer never have more than two connections open, and every
// request is answered.
func TestMaxOpen(t *testing.T) {
	t.Parallel()
	var inFlight, peak atomic.Int32
	s := newServer(t, "tcp", func(w http.ResponseWriter, r *http.Request) {
		n := inFlight.Add(1)
		defer inFlight.Add(-1)
		for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
		}
		time.Sleep(time.Millisecond) // work, so that requests overlap
		echo(w, r)
	})
	p := newPool(t, s, Config{MaxOpen: 2})
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Go(func() {
			for range 5 {
				if _, out, err := p.Do(t.Context(), post(`{}`), 64); err != nil || string(out) != `{}` {
					errs <- errors.Join(err, errors.New(string(out)))
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
	if opened, _ := s.counts(); opened > 2 || peak.Load() > 2 {
		t.Fatalf("MaxOpen 2: %d connections opened, %d requests at once", opened, peak.Load())
	}
}

// TestAnswers: the framings a server may answer with; a connection is
// reused after each whole answer and dropped after one it cannot trust.
func TestAnswers(t *testing.T) {
	t.Parallel()
	s := newServer(t, "tcp", func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		switch string(body) {
		case `"chunked"`:
			w.Write([]byte(`{"a":`))
			w.(http.Flusher).Flush()
			w.Write([]byte(`1}`))
		case `"hints"`:
			w.WriteHeader(http.StatusEarlyHints)
			w.Write([]byte(`{"after":"hints"}`))
		case `"close"`:
			w.Header().Set("Connection", "close")
			w.Write([]byte(`{}`))
		case `"big"`:
			w.Write([]byte(strings.Repeat("x", 100)))
		case `"bigchunked"`:
			w.Write([]byte(strings.Repeat("x", 40)))
			w.(http.Flusher).Flush()
			w.Write([]byte(strings.Repeat("x", 40)))
		case `"upgrade"`:
			w.Header().Set("Connection", "Upgrade")
			w.Header().Set("Upgrade", "x")
			w.WriteHeader(http.StatusSwitchingProtocols)
		case `"cut"`:
			conn, bw, _ := http.NewResponseController(w).Hijack()
			bw.WriteString("HTTP/1.1 200 OK\r\nContent-Length: 60\r\n\r\n{\"cut\":")
			bw.Flush()
			conn.Close()
		default:
			w.Write(body)
		}
	})
	p := newPool(t, s, Config{MaxIdle: 1})
	for _, c := range []struct {
		in, out string
		status  int
		kept    bool
		err     error
	}{
		{in: `{"echo":1}`, out: `{"echo":1}`, status: 200, kept: true},
		{in: `"chunked"`, out: `{"a":1}`, status: 200, kept: true},
		{in: `"hints"`, out: `{"after":"hints"}`, status: 200, kept: true},
		{in: `"close"`, out: `{}`, status: 200},
		{in: `"big"`, err: ErrTooLarge},
		{in: `"bigchunked"`, err: ErrTooLarge},
		{in: `"upgrade"`, status: 101},
		{in: `"cut"`, err: ErrBody},
	} {
		status, out, err := p.Do(t.Context(), post(c.in), 64)
		if status != c.status || string(out) != c.out || !errors.Is(err, c.err) {
			t.Fatalf("%s: %d %q %v; want %d %q %v", c.in, status, out, err, c.status, c.out, c.err)
		}
		if got := p.Idle() == 1; got != c.kept {
			t.Fatalf("%s: connection kept %v, want %v", c.in, got, c.kept)
		}
	}
}

// TestCancelAndDeadline: a request cancelled, or whose deadline passes,
// while the server works returns at once with the context's error, and its
// connection is not reused half-read.
func TestCancelAndDeadline(t *testing.T) { onEach(t, testCancelAndDeadline) }

func testCancelAndDeadline(t *testing.T, network string) {
	release := make(chan struct{})
	defer close(release)
	var arrived atomic.Int32
	s := newServer(t, network, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			arrived.Add(1)
			select {
			case <-release:
			case <-r.Context().Done():
			}
		}
		w.Write([]byte(`{}`))
	})
	p := newPool(t, s, Config{})
	slow := Request{Method: http.MethodGet, Target: "/slow"}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { _, _, err := p.Do(ctx, slow, 64); done <- err }()
	eventually(t, "the request reached the server", func() bool { return arrived.Load() == 1 })
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
	if _, _, err := p.Do(ctx, slow, 64); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("past its deadline: %v, want context.DeadlineExceeded", err)
	}
	if _, _, err := p.Do(t.Context(), Request{Method: http.MethodGet, Target: "/fast"}, 64); err != nil {
		t.Fatalf("after two abandoned requests: %v", err)
	}
	if opened, _ := s.counts(); opened != 3 {
		t.Fatalf("%d connections: want the two abandoned ones dropped and a third", opened)
	}
}

// TestServerClosedIdle: a connection the server closed while idle is not
// used again; the next request goes on a new one and succeeds.
func TestServerClosedIdle(t *testing.T) { onEach(t, testServerClosedIdle) }

func testServerClosedIdle(t *testing.T, network string) {
	s := newServer(t, network, echo)
	p := newPool(t, s, Config{})
	for i := range 3 {
		if _, _, err := p.Do(t.Context(), post(`{}`), 64); err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		s.srv.CloseClientConnections()
		eventually(t, "the server closed the connection", func() bool { _, c := s.counts(); return c == i+1 })
	}
	if opened, _ := s.counts(); opened != 3 {
		t.Fatalf("%d connections for 3 requests with the server closing each in between", opened)
	}
}

// TestIdleTimeout: a connection idle for IdleTimeout is closed without
// another request, and the next request opens a new one.
func TestIdleTimeout(t *testing.T) { onEach(t, testIdleTimeout) }

func testIdleTimeout(t *testing.T, network string) {
	s := newServer(t, network, echo)
	p := newPool(t, s, Config{IdleTimeout: 20 * time.Millisecond})
	for range 2 {
		if _, _, err := p.Do(t.Context(), post(`{}`), 64); err != nil {
			t.Fatal(err)
		}
		opened, _ := s.counts()
		eventually(t, "the idle connection closed", func() bool { _, c := s.counts(); return c == opened })
	}
}

// TestNoAnswer: a server that closes a reused connection after reading a
// request, without answering, fails it as a *NoAnswerError for a reused
// connection whose request went out whole; the pool does not send it again.
func TestNoAnswer(t *testing.T) {
	t.Parallel()
	var requests atomic.Int32
	s := newServer(t, "tcp", func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		if nth(r) == 2 {
			c, _, _ := http.NewResponseController(w).Hijack()
			c.Close()
			return
		}
		echo(w, r)
	})
	p := newPool(t, s, Config{})
	if _, _, err := p.Do(t.Context(), post(`{}`), 64); err != nil {
		t.Fatal(err)
	}
	_, _, err := p.Do(t.Context(), post(`{}`), 64)
	var na *NoAnswerError
	if !errors.As(err, &na) || !na.Reused || na.Unsent {
		t.Fatalf("no answer on a reused connection: %#v, want a reused, sent *NoAnswerError", err)
	}
	if n := requests.Load(); n != 2 {
		t.Fatalf("the server had %d requests, want 2: none sent again", n)
	}
}

// TestRefused: a request or config that would break the framing, or lacks
// what the pool needs, is refused before anything is dialled.
func TestRefused(t *testing.T) {
	t.Parallel()
	dials := 0
	p, err := New(Config{Dial: func(context.Context) (net.Conn, error) { dials++; return nil, errors.New("dialled") }, MaxIdle: 1, IdleTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	for _, req := range []Request{
		{Method: "GET", Target: "/x\r\nX-Injected: 1"},
		{Method: "GET", Target: "/x y"},
		{Method: "GET", Target: ""},
		{Method: "GET\r\n", Target: "/"},
		{Method: "POST", Target: "/", Header: []string{"Treaty-Call", "tok\r\nX-Injected: 1"}},
		{Method: "POST", Target: "/", Header: []string{"Treaty-Call", "tok\nX"}},
		{Method: "POST", Target: "/", Header: []string{"Bad: name", "v"}},
		{Method: "POST", Target: "/", Header: []string{"Odd"}},
	} {
		if _, _, err := p.Do(t.Context(), req, 64); !errors.Is(err, ErrMalformed) || strings.Contains(err.Error(), "tok") {
			t.Fatalf("%q: %v, want ErrMalformed without the value", req, err)
		}
	}
	if dials != 0 {
		t.Fatalf("%d dials for refused requests", dials)
	}
	dial := func(context.Context) (net.Conn, error) { return nil, nil }
	for field, cfg := range map[string]Config{
		"Dial":        {MaxIdle: 1, IdleTimeout: time.Second},
		"MaxOpen":     {Dial: dial, MaxOpen: -1, IdleTimeout: time.Second},
		"MaxIdle":     {Dial: dial, IdleTimeout: time.Second},
		"IdleTimeout": {Dial: dial, MaxIdle: 1},
		"Header":      {Dial: dial, MaxIdle: 1, IdleTimeout: time.Second, Header: []string{"Authorization", "Basic x\r\n"}},
	} {
		if _, err := New(cfg); err == nil || !strings.Contains(err.Error(), field) {
			t.Fatalf("config with a bad %s: %v, want it named", field, err)
		}
	}
}
