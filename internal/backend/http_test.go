package backend

import (
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
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

// hammer makes callers*perCaller calls through h, callers at a time.
func hammer(t *testing.T, h *HTTP, callers, perCaller int) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, callers)
	for range callers {
		wg.Go(func() {
			for range perCaller {
				if _, err := h.Call(t.Context(), inv(t, `{}`)); err != nil {
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
// about 32 connections when the pool holds 32 (a few more when a dial races a
// connection coming back), where Go's default transport (two idle
// connections) opens a new one for a large share of the calls.
func TestHTTPPoolReusesConnections(t *testing.T) {
	const callers, perCaller = 32, 40
	srv, count := newConnCounter(t)
	pooled := &HTTP{URL: srv.URL, Timeout: 10 * time.Second, Conns: callers}
	defer pooled.Close()
	hammer(t, pooled, callers, perCaller)
	opened, peak := count.get()
	if opened > 2*callers {
		t.Fatalf("pooled backend opened %d connections for %d callers; want at most %d", opened, callers, 2*callers)
	}

	srv2, count2 := newConnCounter(t)
	// The old behaviour: Go's default transport, two idle connections per host.
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	unpooled := &HTTP{URL: srv2.URL, Timeout: 10 * time.Second, Client: &http.Client{Transport: tr}}
	hammer(t, unpooled, callers, perCaller)
	opened2, peak2 := count2.get()
	if opened2 <= opened {
		t.Fatalf("Go's default transport opened %d connections, the pool %d; the test no longer tells pooled from unpooled", opened2, opened)
	}
	t.Logf("%d calls: pool of %d: %d connections (%d at once); Go default: %d (%d at once)", callers*perCaller, callers, opened, peak, opened2, peak2)
}

func TestHTTPDefaultPool(t *testing.T) {
	h := &HTTP{URL: "http://127.0.0.1:1", Timeout: time.Second}
	tr := h.httpClient().Transport.(*http.Transport)
	if tr.MaxIdleConnsPerHost != DefaultConns || tr.IdleConnTimeout != idleConnTimeout || tr.Proxy != nil {
		t.Fatalf("default transport: idle per host %d, idle timeout %v, proxy set %v", tr.MaxIdleConnsPerHost, tr.IdleConnTimeout, tr.Proxy != nil)
	}
}
