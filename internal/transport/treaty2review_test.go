package transport

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/treaty-dev/treaty/internal/framing"
)

// These tests come from a review of treaty/2 (ADR 29): each failed before
// the fix it names, over real transports on loopback.

// TestTreaty2ResetWhileWaitingForCredit: a caller that gives up on an answer
// while its handler waits for credit (no write deadline) ends that handler,
// and the connection's reader is not stuck behind it: the next call on the
// same connection is served. The reader used to block on the stream's lock,
// held by the handler for its whole wait.
func TestTreaty2ResetWhileWaitingForCredit(t *testing.T) {
	werr := make(chan error, 1)
	p := newCallPair(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/big" {
			echoProto(w, r)
			return
		}
		// More than a stream's window, no deadline: the write waits for
		// credit until the caller reads or goes.
		_, err := w.Write(make([]byte, 4*framing.InitialWindow))
		werr <- err
	}), Config{}, Config{})
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, p.url("/big"), nil)
	resp, err := p.rt.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close() // unread: a RESET
	select {
	case err := <-werr:
		if err == nil {
			t.Fatal("the handler's write of an abandoned answer succeeded")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the handler still waits for credit after the caller's RESET")
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if _, body, err := p.do(t, ctx, http.MethodPost, "/echo", []byte("next"), nil); err != nil || string(body) != "next" {
		t.Fatalf("next call on the connection: %q, %v", body, err)
	}
}

// TestTreaty2PassedWriteDeadline: a handler whose write deadline passed
// before it wrote (a late answer) fails its own call only; the other calls
// on the connection go on. A deadline in the past used to be armed on the
// connection, time out its write and close the connection for everyone.
func TestTreaty2PassedWriteDeadline(t *testing.T) {
	started := make(chan struct{}, 1)
	release := make(chan struct{})
	lateErr := make(chan error, 1)
	p := newCallPair(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/slow":
			started <- struct{}{}
			<-release
			_, _ = io.WriteString(w, "slow")
		case "/late":
			_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(-time.Millisecond))
			_, _ = io.WriteString(w, "late")
			lateErr <- http.NewResponseController(w).Flush()
		}
	}), Config{}, Config{})
	slow := make(chan error, 1)
	go func() {
		_, body, err := p.do(t, t.Context(), http.MethodGet, "/slow", nil, nil)
		if err == nil && string(body) != "slow" {
			err = errors.New("slow: body " + string(body))
		}
		slow <- err
	}()
	<-started
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	_, _, err := p.do(t, ctx, http.MethodGet, "/late", nil, nil)
	if err == nil {
		t.Fatal("a call answered after its write deadline succeeded")
	}
	if ctx.Err() != nil {
		t.Fatal("a call whose answer's deadline passed was never ended")
	}
	close(release)
	if err := <-slow; err != nil {
		t.Fatalf("another call on the connection: %v", err)
	}
	var ne net.Error
	if ferr := <-lateErr; !errors.As(ferr, &ne) || !ne.Timeout() {
		t.Fatalf("late flush: %v, want a timeout", ferr)
	}
}

// TestTreaty2CancelledBeforeSent: a request whose context ends while its
// head is being written (here: already ended) never leaves a handler
// running on the server: either the request is not sent, or a RESET follows
// it. The cancel used to see the head "not sent" and send no RESET.
func TestTreaty2CancelledBeforeSent(t *testing.T) {
	p := newCallPair(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/block" {
			echoProto(w, r)
			return
		}
		<-r.Context().Done()
	}), Config{MaxConcurrentStreams: 1}, Config{})
	if _, _, err := p.do(t, t.Context(), http.MethodPost, "/echo", []byte("warm"), nil); err != nil {
		t.Fatal(err)
	}
	// With one stream on the server, a handler left running makes the
	// next call's stream refused, again and again.
	for i := range 20 {
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		if _, _, err := p.do(t, ctx, http.MethodPost, "/block", []byte("x"), nil); !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled call %d: %v", i, err)
		}
		cctx, ccancel := context.WithTimeout(t.Context(), 10*time.Second)
		_, _, err := p.do(t, cctx, http.MethodPost, "/echo", []byte("next"), nil)
		ccancel()
		if err != nil {
			t.Fatalf("call after cancelled call %d: %v", i, err)
		}
	}
}

// TestTreaty2ResetFreesServerSlot: a stream the caller reset no longer
// counts against the server's MaxConcurrentStreams, as the caller no longer
// counts it, even while its handler has not returned yet. The server used
// to refuse the caller's next stream (three times: the call failed).
func TestTreaty2ResetFreesServerSlot(t *testing.T) {
	started := make(chan struct{}, 1)
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	p := newCallPair(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/stuck" {
			echoProto(w, r)
			return
		}
		started <- struct{}{}
		<-release // slow to notice the cancel
	}), Config{MaxConcurrentStreams: 1}, Config{})
	ctx, cancel := context.WithCancel(t.Context())
	errc := make(chan error, 1)
	go func() {
		_, _, err := p.do(t, ctx, http.MethodGet, "/stuck", nil, nil)
		errc <- err
	}()
	<-started
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled call: %v", err)
	}
	cctx, ccancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer ccancel()
	if _, body, err := p.do(t, cctx, http.MethodPost, "/echo", []byte("next"), nil); err != nil || string(body) != "next" {
		t.Fatalf("call after a reset stream: %q, %v", body, err)
	}
}

// TestTreaty2InboxBounded: a body read slowly, never quite drained, is held
// within about its window, not in full. The inbox used to compact only when
// drained, so a consumer that stays behind kept every byte received.
func TestTreaty2InboxBounded(t *testing.T) {
	const size = 4 << 20
	most := make(chan int, 1)
	p := newCallPair(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, ok := r.Body.(*inbox)
		if !ok {
			http.Error(w, "not a treaty/2 body", http.StatusInternalServerError)
			return
		}
		peak, total := 0, 0
		buf := make([]byte, 1024)
		deadline := time.Now().Add(20 * time.Second)
		for {
			// Read only while more than one read is buffered: the inbox
			// is never drained when data arrives.
			for {
				b.mu.Lock()
				unread, over, c := len(b.buf)-b.off, b.end || b.err != nil, cap(b.buf)
				b.mu.Unlock()
				peak = max(peak, c)
				if unread > len(buf) || over || time.Now().After(deadline) {
					break
				}
				time.Sleep(100 * time.Microsecond) // polls the inbox
			}
			n, err := b.Read(buf)
			total += n
			if err != nil {
				break
			}
		}
		most <- peak
		_, _ = io.WriteString(w, "ok")
	}), Config{}, Config{})
	if _, _, err := p.do(t, t.Context(), http.MethodPost, "/slow", bytes.Repeat([]byte("b"), size), nil); err != nil {
		t.Fatal(err)
	}
	if peak, limit := <-most, 2*framing.InitialWindow+framing.MaxData; peak > limit {
		t.Fatalf("inbox held up to %d bytes of a %d-byte body read slowly, want at most %d", peak, size, limit)
	}
}

// closeRecorder is a request body that blocks in Read until it is closed.
type closeRecorder struct {
	once   sync.Once
	closed chan struct{}
}

func (b *closeRecorder) Read([]byte) (int, error) {
	<-b.closed
	return 0, io.ErrClosedPipe
}

func (b *closeRecorder) Close() error {
	b.once.Do(func() { close(b.closed) })
	return nil
}

// TestTreaty2RequestBodyClosedAtEnd: a request body still being sent when
// the answer ends (the handler did not read it) is closed, as net/http's
// transports do, so the goroutine sending it ends. It used to stay blocked
// in the body's Read for ever.
func TestTreaty2RequestBodyClosedAtEnd(t *testing.T) {
	protocols(t, func(t *testing.T, off bool) {
		p := newCallPair(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.WriteString(w, "not read")
		}), Config{}, Config{DisableTreaty2: off})
		body := &closeRecorder{closed: make(chan struct{})}
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, p.url("/early"), body)
		resp, err := p.rt.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		if b, err := io.ReadAll(resp.Body); err != nil || string(b) != "not read" {
			t.Fatalf("answer %q, %v", b, err)
		}
		_ = resp.Body.Close()
		select {
		case <-body.closed:
		case <-time.After(10 * time.Second):
			t.Fatal("the request body was never closed after the answer ended")
		}
	})
}

// TestTreaty2WriteDeadlineWhileConnStuck: a handler waits for the
// connection's writer no longer than its own write deadline, though another
// write holds the writer (simulated: the test holds the writer's lock, as a
// write stuck in a connection the peer stopped reading would; with the
// connection's 1 MiB credit, loopback's socket buffers never fill). The
// handler used to wait for that lock until the other write's deadline,
// connWriteTimeout.
func TestTreaty2WriteDeadlineWhileConnStuck(t *testing.T) {
	shortErr := make(chan error, 1)
	p := newCallPair(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fw := &w.(*sstream).s.w
		if err := fw.lock(time.Now().Add(10 * time.Second)); err != nil {
			shortErr <- err
			return
		}
		defer fw.unlock() // the "stuck write" ends with the handler
		rc := http.NewResponseController(w)
		_ = rc.SetWriteDeadline(time.Now().Add(200 * time.Millisecond))
		_, _ = io.WriteString(w, "short")
		start := time.Now()
		err := rc.Flush()
		if took := time.Since(start); took > 5*time.Second {
			err = fmt.Errorf("flush took %v with a deadline of 200ms: %v", took, err)
		} else if err == nil {
			err = errors.New("flush with the writer held succeeded")
		} else {
			err = nil
		}
		shortErr <- err
	}), Config{}, Config{})
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	go func() { _, _, _ = p.do(t, ctx, http.MethodGet, "/short", nil, nil) }()
	select {
	case err := <-shortErr:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the handler with a 200ms write deadline is still held")
	}
}

// TestTreaty2CancelWhileWriterStuck: a caller that gives up returns at
// once though the connection's writer is held by a stuck write (simulated:
// the test holds the writer's lock): the RESET that tells the server waits,
// the caller does not. The caller used to wait for the RESET's write, up to
// connWriteTimeout.
func TestTreaty2CancelWhileWriterStuck(t *testing.T) {
	started := make(chan struct{}, 1)
	p := newCallPair(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		started <- struct{}{}
		<-r.Context().Done()
	}), Config{}, Config{})
	ctx, cancel := context.WithCancel(t.Context())
	errc := make(chan error, 1)
	go func() {
		_, _, err := p.do(t, ctx, http.MethodGet, "/block", nil, nil)
		errc <- err
	}()
	<-started
	rt := p.rt.(*roundTripper)
	rt.mu.Lock()
	cc := rt.f2[p.srv.Self()]
	rt.mu.Unlock()
	if cc == nil {
		t.Fatal("no treaty/2 connection")
	}
	if err := cc.w.lock(time.Time{}); err != nil {
		t.Fatal(err)
	}
	locked := true
	defer func() {
		if locked {
			cc.w.unlock()
		}
	}()
	cancel()
	select {
	case err := <-errc:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled call: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a cancelled call waits for the connection's writer")
	}
	cc.w.unlock()
	locked = false
	ctx2, cancel2 := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel2()
	go func() { _, _, _ = p.do(t, ctx2, http.MethodGet, "/block", nil, nil) }()
	<-started // the connection still serves calls
}

// TestTreaty2OversizedHeadersStreamOnly: a request whose header block
// exceeds the server's MaxHeaderBytes fails alone; calls in flight on the
// same connection go on, as open documents. The frame reader used to refuse
// the block as a protocol error, closing the connection under every call on
// it. treaty/2 only: x/net's HTTP/2 server ends the connection too
// (COMPRESSION_ERROR) when its client sends the block before it knows the
// server's limit.
func TestTreaty2OversizedHeadersStreamOnly(t *testing.T) {
	{
		off := false
		started := make(chan struct{}, 1)
		release := make(chan struct{})
		p := newCallPair(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/slow" {
				started <- struct{}{}
				<-release
			}
			_, _ = io.WriteString(w, "ok")
		}), Config{MaxHeaderBytes: 4 << 10}, Config{DisableTreaty2: off})
		slow := make(chan error, 1)
		go func() {
			_, body, err := p.do(t, t.Context(), http.MethodGet, "/slow", nil, nil)
			if err == nil && string(body) != "ok" {
				err = fmt.Errorf("body %q", body)
			}
			slow <- err
		}()
		<-started
		big := http.Header{"X-Big": {string(bytes.Repeat([]byte("a"), 8<<10))}}
		resp, _, err := p.do(t, t.Context(), http.MethodGet, "/big", nil, big)
		if err == nil && resp.StatusCode < 400 {
			t.Fatalf("8 KiB header accepted: %d", resp.StatusCode)
		}
		close(release)
		if err := <-slow; err != nil {
			t.Fatalf("a call in flight beside the oversized one: %v", err)
		}
		if st := p.srv.Stats(); st.Accepted != 1 {
			t.Fatalf("server accepted %d connections, want 1", st.Accepted)
		}
	}
}

// TestTreaty2ResetHandlersBounded: a caller that opens streams and resets
// them at once (a "rapid reset") cannot make the server run more than twice
// MaxConcurrentStreams handlers per connection, however slowly they notice
// the cancel: past that, new streams are refused.
func TestTreaty2ResetHandlersBounded(t *testing.T) {
	var running, most atomic.Int32
	started := make(chan struct{}, 1)
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	p := newCallPair(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := running.Add(1)
		defer running.Add(-1)
		for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
		}
		started <- struct{}{}
		<-release // ignores the cancel
	}), Config{MaxConcurrentStreams: 2}, Config{})
	refused := 0
	for range 12 {
		ctx, cancel := context.WithCancel(t.Context())
		errc := make(chan error, 1)
		go func() {
			_, _, err := p.do(t, ctx, http.MethodGet, "/stuck", nil, nil)
			errc <- err
		}()
		select {
		case <-started:
			cancel()
			<-errc
		case err := <-errc:
			cancel()
			var se *StreamError
			if !errors.As(err, &se) || se.Code != framing.CodeRefused {
				t.Fatalf("call: %v, want refused", err)
			}
			refused++
		}
	}
	if m := most.Load(); m > 4 {
		t.Fatalf("%d handlers at once on a connection, MaxConcurrentStreams 2", m)
	}
	if refused == 0 {
		t.Fatal("no stream refused")
	}
}

// TestTreaty2SlowBodyKeepsContext: a request whose body (of a known, small
// length) is slow to come leaves its head at once and still ends with its
// context; the body is not read before the head unless it is in memory
// (GetBody set). RoundTrip used to read such a body whole before sending
// anything, ignoring the context, for ever if it never came.
func TestTreaty2SlowBodyKeepsContext(t *testing.T) {
	protocols(t, func(t *testing.T, off bool) {
		started := make(chan struct{}, 1)
		p := newCallPair(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			started <- struct{}{}
			_, _ = io.ReadAll(r.Body)
		}), Config{}, Config{DisableTreaty2: off})
		pr, pw := io.Pipe() // never written
		t.Cleanup(func() { _ = pw.Close() })
		ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, p.url("/slow"), pr)
		req.ContentLength = 7
		errc := make(chan error, 1)
		go func() {
			resp, err := p.rt.RoundTrip(req)
			if err == nil {
				_, err = io.ReadAll(resp.Body)
				resp.Body.Close()
			}
			errc <- err
		}()
		select {
		case <-started:
		case <-time.After(10 * time.Second):
			t.Fatal("the head of a request whose body is slow never left")
		}
		select {
		case err := <-errc:
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("call: %v, want its context's deadline", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("the call outlived its context")
		}
	})
}

// TestTreaty2DisconnectAndCloseEndCalls: Disconnect on the caller's side
// and Close on the server's end treaty/2 calls in flight promptly, and the
// server's handlers see their context end.
func TestTreaty2DisconnectAndCloseEndCalls(t *testing.T) {
	for _, side := range []string{"disconnect", "close"} {
		t.Run(side, func(t *testing.T) {
			started := make(chan struct{}, 1)
			ended := make(chan struct{}, 1)
			p := newCallPair(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				started <- struct{}{}
				<-r.Context().Done()
				ended <- struct{}{}
			}), Config{}, Config{})
			errc := make(chan error, 1)
			go func() {
				_, _, err := p.do(t, t.Context(), http.MethodGet, "/block", nil, nil)
				errc <- err
			}()
			<-started
			if side == "disconnect" {
				if n := p.cli.Disconnect(p.srv.Self()); n == 0 {
					t.Fatal("no connection to disconnect")
				}
			} else {
				_ = p.srv.Close()
			}
			select {
			case err := <-errc:
				if err == nil {
					t.Fatal("a call on a closed connection succeeded")
				}
			case <-time.After(10 * time.Second):
				t.Fatal("a call outlived its connection")
			}
			select {
			case <-ended:
			case <-time.After(10 * time.Second):
				t.Fatal("the handler's context outlived the connection")
			}
		})
	}
}

// TestTreaty2WriterConnTimeoutAfterLongDeadline: a frame written without a
// deadline is bounded by connWriteTimeout even after a stream armed a later
// deadline on the connection. It used to inherit that deadline (up to any
// length a handler chose) while it was more than half connWriteTimeout away.
func TestTreaty2WriterConnTimeoutAfterLongDeadline(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	w := newFwriter(c)
	if err := w.write([]byte("x"), time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := w.write([]byte("y"), time.Time{}); err != nil {
		t.Fatal(err)
	}
	if left := time.Until(w.armed); left > connWriteTimeout {
		t.Fatalf("a write without a deadline ran under one %v away, connWriteTimeout %v", left.Round(time.Second), connWriteTimeout)
	}
}
