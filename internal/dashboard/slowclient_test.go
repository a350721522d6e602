package dashboard

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// A reader that stopped reading is given up within the write timeout, on
// the event stream and on a snapshot: it must not hold its goroutine and
// connection for ever.
func TestStalledReaderIsDropped(t *testing.T) {
	for _, path := range []string{"/events", "/api/snapshot"} {
		t.Run(path, func(t *testing.T) { stalledReader(t, path) })
	}
}

func stalledReader(t *testing.T, path string) {
	d, err := New(Options{Node: &fakeNode{}, Home: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	d.writeTimeout = 100 * time.Millisecond
	big := strings.Repeat("x", 1<<20)
	if path != "/events" { // one snapshot larger than any socket buffers
		d.publish(fmt.Appendf(nil, `{"pad":"%s"}`, strings.Repeat(big, 32)))
	}
	srv := httptest.NewUnstartedServer(nil)
	h, err := d.Handler(testToken, srv.Listener.Addr().String(), true)
	if err != nil {
		t.Fatal(err)
	}
	srv.Config.Handler = h
	var mu sync.Mutex
	closed := false
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateClosed {
			mu.Lock()
			closed = true
			mu.Unlock()
		}
	}
	srv.Start()
	defer srv.Close()

	c, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.(*net.TCPConn).SetReadBuffer(4 << 10)
	fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\n\r\n", path, srv.Listener.Addr(), testToken)
	// Read the status line only; from now on nothing is read.
	br := bufio.NewReaderSize(c, 1024)
	if line, err := br.ReadString('\n'); err != nil || !strings.Contains(line, "200") {
		t.Fatalf("status line %q %v", line, err)
	}

	const within = 20 * time.Second
	deadline := time.Now().Add(within)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for i := 0; ; i++ {
		mu.Lock()
		done := closed
		mu.Unlock()
		if done {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: an answer nobody reads still being written after %v", path, within)
		}
		if path == "/events" && i < 64 { // enough to fill any socket buffers; then only wait
			d.publish(fmt.Appendf(nil, `{"n":%d,"pad":"%s"}`, i, big))
		}
		<-tick.C
	}
}
