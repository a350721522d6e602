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

// An event stream whose reader stopped reading is given up within the
// write timeout: it must not hold its goroutine and connection for ever.
func TestStalledEventStreamIsDropped(t *testing.T) {
	d, err := New(Options{Node: &fakeNode{}, Home: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	d.writeTimeout = 100 * time.Millisecond
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
	fmt.Fprintf(c, "GET /events HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\n\r\n", srv.Listener.Addr(), testToken)
	// Read the headers only: the stream is open; from now on nothing is read.
	br := bufio.NewReaderSize(c, 1024)
	if line, err := br.ReadString('\n'); err != nil || !strings.Contains(line, "200") {
		t.Fatalf("status line %q %v", line, err)
	}

	big := strings.Repeat("x", 1<<20)
	deadline := time.Now().Add(20 * time.Second)
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
			t.Fatalf("a stream nobody reads still open %v after its first of %d snapshots of 1 MiB", 20*time.Second, min(i, 64))
		}
		if i < 64 { // enough to fill any socket buffers; then only wait
			d.publish(fmt.Appendf(nil, `{"n":%d,"pad":"%s"}`, i, big))
		}
		<-tick.C
	}
}
