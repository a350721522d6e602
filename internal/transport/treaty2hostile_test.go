package transport

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/treaty-dev/treaty/internal/framing"
)

// rawConn is a hostile treaty/2 peer: it writes whatever frames a test
// gives it over a real mTLS connection, and a goroutine of its own collects
// the frames the other side sends until the connection ends.
type rawConn struct {
	c    net.Conn
	done chan struct{} // closed when the reader returns

	mu     sync.Mutex
	frames []framing.Frame // payloads copied
	err    error           // why the read side ended; nil while open
}

func newRawConn(t *testing.T, c net.Conn) *rawConn {
	t.Helper()
	rc := startRawConn(c)
	t.Cleanup(rc.close)
	return rc
}

// startRawConn starts rc's reader; rc.close stops it.
func startRawConn(c net.Conn) *rawConn {
	rc := &rawConn{c: c, done: make(chan struct{})}
	go func() {
		defer close(rc.done)
		rd := framing.NewReader(c, framing.MaxHeaderBlock)
		for {
			f, err := rd.Next()
			rc.mu.Lock()
			if err != nil {
				rc.err = err
				rc.mu.Unlock()
				return
			}
			f.Payload = bytes.Clone(f.Payload)
			rc.frames = append(rc.frames, f)
			rc.mu.Unlock()
		}
	}()
	return rc
}

// close closes the connection and waits for the reader's end.
func (rc *rawConn) close() {
	_ = rc.c.Close()
	<-rc.done
}

// send writes b; a failure is returned (the peer may have closed already).
func (rc *rawConn) send(b []byte) error {
	_, err := rc.c.Write(b)
	return err
}

// find returns the first frame received that matches, if any.
func (rc *rawConn) find(match func(framing.Frame) bool) (framing.Frame, bool) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	for _, f := range rc.frames {
		if match(f) {
			return f, true
		}
	}
	return framing.Frame{}, false
}

func (rc *rawConn) count(match func(framing.Frame) bool) int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	n := 0
	for _, f := range rc.frames {
		if match(f) {
			n++
		}
	}
	return n
}

// expect waits for a frame that matches.
func (rc *rawConn) expect(t *testing.T, what string, match func(framing.Frame) bool) framing.Frame {
	t.Helper()
	var f framing.Frame
	waitFor(t, what, func() bool {
		var ok bool
		f, ok = rc.find(match)
		return ok
	})
	return f
}

// expectClosed waits until the peer ends the connection, after a GOAWAY
// with code c.
func (rc *rawConn) expectClosed(t *testing.T, c framing.Code) {
	t.Helper()
	f := rc.expect(t, "GOAWAY", isType(framing.TypeGoAway))
	if _, got := framing.ParseGoAway(f.Payload); got != c {
		t.Fatalf("GOAWAY code %s, want %s", got, c)
	}
	waitFor(t, "connection closed", func() bool {
		rc.mu.Lock()
		defer rc.mu.Unlock()
		return rc.err != nil
	})
}

// expectReset waits for a RESET of stream id with code c, and checks the
// connection goes on: a PING is still answered.
func (rc *rawConn) expectReset(t *testing.T, id uint32, c framing.Code) {
	t.Helper()
	f := rc.expect(t, fmt.Sprintf("RESET of stream %d", id), func(f framing.Frame) bool {
		return f.Type == framing.TypeReset && f.Stream == id
	})
	if got := framing.Code(framing.Uint32(f.Payload)); got != c {
		t.Fatalf("stream %d reset with %s, want %s", id, got, c)
	}
	rc.expectAlive(t)
}

var pingSeq atomic.Uint64

// expectAlive sends a PING and waits for its answer.
func (rc *rawConn) expectAlive(t *testing.T) {
	t.Helper()
	var p [8]byte
	binary.BigEndian.PutUint64(p[:], pingSeq.Add(1))
	if err := rc.send(framing.AppendFrame(nil, framing.TypePing, 0, 0, p[:])); err != nil {
		t.Fatalf("PING: %v", err)
	}
	rc.expect(t, "PING answer", func(f framing.Frame) bool {
		return f.Type == framing.TypePing && f.Flags&framing.FlagAck != 0 && bytes.Equal(f.Payload, p[:])
	})
}

func isType(ty framing.Type) func(framing.Frame) bool {
	return func(f framing.Frame) bool { return f.Type == ty }
}

// answerOf waits for the final HEADERS of stream id and returns its status.
func (rc *rawConn) answerOf(t *testing.T, id uint32) string {
	t.Helper()
	f := rc.expect(t, fmt.Sprintf("answer on stream %d", id), func(f framing.Frame) bool {
		return f.Type == framing.TypeHeaders && f.Stream == id || f.Type == framing.TypeReset && f.Stream == id
	})
	if f.Type == framing.TypeReset {
		t.Fatalf("stream %d reset (%s), want an answer", id, framing.Code(framing.Uint32(f.Payload)))
	}
	status := ""
	if err := framing.ParseFields(f.Payload, 1<<20, func(n, v string) error {
		if n == ":status" {
			status = v
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return status
}

// reqBlock is a request's header block: the three pseudo-fields, then
// extra name/value pairs.
func reqBlock(method, path string, extra ...string) []byte {
	b := framing.AppendField(nil, ":method", method)
	b = framing.AppendField(b, ":authority", "treaty")
	b = framing.AppendField(b, ":path", path)
	for i := 0; i+1 < len(extra); i += 2 {
		b = framing.AppendField(b, extra[i], extra[i+1])
	}
	return b
}

func headers(id uint32, f framing.Flags, block []byte) []byte {
	return framing.AppendFrame(nil, framing.TypeHeaders, f, id, block)
}

func data(id uint32, f framing.Flags, n int) []byte {
	return framing.AppendFrame(nil, framing.TypeData, f, id, bytes.Repeat([]byte("d"), n))
}

func u32(ty framing.Type, id, v uint32) []byte { return framing.AppendUint32Frame(nil, ty, id, v) }

func cat(bs ...[]byte) []byte { return bytes.Join(bs, nil) }

// hostileBed is a treaty node serving hostileHandler, a hostile peer's raw
// connections to it, and a well-behaved client that must keep getting
// answers whatever the hostile one did.
type hostileBed struct {
	srv    *node
	bad    *node
	good   *callPair
	exited atomic.Int64 // handlers of /big that returned
}

const hostileMaxHeader = 2 << 10

func newHostileBed(t *testing.T) *hostileBed {
	t.Helper()
	b := &hostileBed{}
	a, g, h := testKey(t, 1), testKey(t, 2), testKey(t, 3)
	b.srv = newNode(t, a, admit(g.Public(), h.Public()), Config{MaxHeaderBytes: hostileMaxHeader, MaxConcurrentStreams: 4})
	serveHTTP(t, b.srv, http.HandlerFunc(b.handle))
	b.bad = newNode(t, h, admit(a.Public()), Config{})
	cli := newNode(t, g, admit(a.Public()), Config{})
	var r resolver
	r.set(a.Public(), b.srv.addr())
	b.good = &callPair{srv: b.srv, cli: cli, rt: cli.RoundTripper(r.resolve)}
	return b
}

// handle: /echo answers the body (400 if it could not be read whole),
// /hold waits for the stream's end without reading, /big writes 1 MiB.
func (b *hostileBed) handle(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/hold":
		<-r.Context().Done()
	case "/big":
		defer b.exited.Add(1)
		chunk := make([]byte, 32<<10)
		for range 32 {
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
	default:
		echoProto(w, r)
	}
}

// dial opens a raw treaty/2 connection and waits for the server's SETTINGS.
func (b *hostileBed) dial(t *testing.T) *rawConn {
	t.Helper()
	c, err := b.bad.Dial(t.Context(), b.srv.addr(), b.srv.key.Public(), ProtoFederation2)
	if err != nil {
		t.Fatal(err)
	}
	if p := c.ConnectionState().NegotiatedProtocol; p != ProtoFederation2 {
		t.Fatalf("negotiated %q", p)
	}
	rc := newRawConn(t, c)
	rc.expect(t, "SETTINGS", isType(framing.TypeSettings))
	return rc
}

// goodCall checks the well-behaved client still gets answers.
func (b *hostileBed) goodCall(t *testing.T) {
	t.Helper()
	resp, body, err := b.good.do(t, t.Context(), http.MethodPost, "/echo", []byte("still here"), nil)
	if err != nil {
		t.Fatalf("well-behaved call: %v", err)
	}
	if resp.StatusCode != http.StatusOK || string(body) != "still here" || resp.Header.Get("X-Proto") != ProtoFederation2 {
		t.Fatalf("well-behaved call: %d %q over %q", resp.StatusCode, body, resp.Header.Get("X-Proto"))
	}
}

// TestTreaty2HostileClient: whatever a client sends, the server neither
// panics nor hangs: a connection-level violation gets a GOAWAY with its
// code and the close, a bad request a RESET of its stream alone; and a
// well-behaved client is served all along.
func TestTreaty2HostileClient(t *testing.T) {
	post := reqBlock(http.MethodPost, "/echo")
	get := reqBlock(http.MethodGet, "/echo")
	hold := reqBlock(http.MethodPost, "/hold")
	closed := func(c framing.Code) func(*testing.T, *rawConn) {
		return func(t *testing.T, rc *rawConn) { rc.expectClosed(t, c) }
	}
	reset := func(id uint32, c framing.Code) func(*testing.T, *rawConn) {
		return func(t *testing.T, rc *rawConn) { rc.expectReset(t, id, c) }
	}
	status := func(id uint32, want string) func(*testing.T, *rawConn) {
		return func(t *testing.T, rc *rawConn) {
			if got := rc.answerOf(t, id); got != want {
				t.Fatalf("stream %d answered %s, want %s", id, got, want)
			}
			rc.expectAlive(t)
		}
	}
	bigBlock := reqBlock(http.MethodGet, "/echo", "x-big", strings.Repeat("v", hostileMaxHeader))
	// Under the block limit in bytes, over the list limit: each field costs
	// framing.FieldOverhead more than its bytes.
	var many []string
	for i := 0; i < hostileMaxHeader/framing.FieldOverhead; i++ {
		many = append(many, "x", "")
	}
	manyBlock := reqBlock(http.MethodGet, "/echo", many...)
	if len(manyBlock) > hostileMaxHeader {
		t.Fatalf("test block of %d bytes", len(manyBlock))
	}

	for _, tc := range []struct {
		name  string
		in    []byte
		check func(*testing.T, *rawConn)
	}{
		{"DATA beyond the credit", cat(headers(1, 0, hold), data(1, 0, framing.MaxData), data(1, 0, framing.MaxData), data(1, 0, 1)), closed(framing.CodeProtocol)},
		{"DATA on a stream never opened", data(1, 0, 3), closed(framing.CodeProtocol)},
		{"WINDOW on a stream never opened", u32(framing.TypeWindow, 5, 100), closed(framing.CodeProtocol)},
		{"RESET on a stream never opened", u32(framing.TypeReset, 7, uint32(framing.CodeCancel)), closed(framing.CodeProtocol)},
		{"stream ID going backwards", cat(headers(5, framing.FlagEnd, get), headers(3, framing.FlagEnd, get)), closed(framing.CodeProtocol)},
		{"even stream ID", headers(2, framing.FlagEnd, get), closed(framing.CodeProtocol)},
		{"reused stream ID", cat(headers(1, framing.FlagEnd, get), headers(1, framing.FlagEnd, get)), closed(framing.CodeProtocol)},
		{"header block over MaxHeaderBytes", headers(1, framing.FlagEnd, bigBlock), reset(1, framing.CodeTooLarge)},
		{"header list over MaxHeaderBytes", headers(1, framing.FlagEnd, manyBlock), reset(1, framing.CodeTooLarge)},
		{"unknown pseudo-field", headers(1, framing.FlagEnd, append(framing.AppendField(nil, ":scheme", "https"), get...)), reset(1, framing.CodeProtocol)},
		{"missing :path", headers(1, framing.FlagEnd, framing.AppendField(framing.AppendField(nil, ":method", "GET"), ":authority", "x")), reset(1, framing.CodeProtocol)},
		{"relative :path", headers(1, framing.FlagEnd, reqBlock("GET", "echo")), reset(1, framing.CodeProtocol)},
		{"repeated :path", headers(1, framing.FlagEnd, append(reqBlock("GET", "/echo"), framing.AppendField(nil, ":path", "/x")...)), reset(1, framing.CodeProtocol)},
		{"upper-case field name", headers(1, framing.FlagEnd, append(get, framing.AppendField(nil, "X-Up", "1")...)), reset(1, framing.CodeProtocol)},
		{"CR LF in a value", headers(1, framing.FlagEnd, append(get, framing.AppendField(nil, "x-a", "1\r\nx-b: 2")...)), reset(1, framing.CodeProtocol)},
		{"NUL in a value", headers(1, framing.FlagEnd, append(get, framing.AppendField(nil, "x-a", "1\x002")...)), reset(1, framing.CodeProtocol)},
		{"uvarint overflow in a header block", headers(1, framing.FlagEnd, append(get, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01)), reset(1, framing.CodeProtocol)},
		{"field past the block's end", headers(1, framing.FlagEnd, append(get, 0x7f, 'x')), reset(1, framing.CodeProtocol)},
		{"DATA after a refused request", cat(headers(1, 0, reqBlock("POST", "/echo", "content-length", "-1")), data(1, framing.FlagEnd, 3)), reset(1, framing.CodeProtocol)},
		{"negative content-length", headers(1, 0, reqBlock("POST", "/echo", "content-length", "-1")), reset(1, framing.CodeProtocol)},
		{"signed content-length", headers(1, 0, reqBlock("POST", "/echo", "content-length", "+5")), reset(1, framing.CodeProtocol)},
		{"minus zero content-length", headers(1, 0, reqBlock("POST", "/echo", "content-length", "-0")), reset(1, framing.CodeProtocol)},
		{"two content-lengths", headers(1, 0, reqBlock("POST", "/echo", "content-length", "3", "content-length", "3")), reset(1, framing.CodeProtocol)},
		{"list content-length", headers(1, 0, reqBlock("POST", "/echo", "content-length", "3, 3")), reset(1, framing.CodeProtocol)},
		{"content-length without a body", headers(1, framing.FlagEnd, reqBlock("POST", "/echo", "content-length", "3")), reset(1, framing.CodeProtocol)},
		{"body longer than its content-length", cat(headers(1, 0, reqBlock("POST", "/echo", "content-length", "3")), data(1, framing.FlagEnd, 4)), status(1, "400")},
		{"body shorter than its content-length", cat(headers(1, 0, reqBlock("POST", "/echo", "content-length", "5")), data(1, framing.FlagEnd, 4)), status(1, "400")},
		{"body as long as its content-length", cat(headers(1, 0, reqBlock("POST", "/echo", "content-length", "4")), data(1, framing.FlagEnd, 4)), status(1, "200")},
		{"DATA after a request without a body", cat(headers(1, framing.FlagEnd, get), data(1, framing.FlagEnd, 4)), status(1, "200")},
		{"WINDOW increment 0", cat(headers(1, 0, hold), u32(framing.TypeWindow, 1, 0)), closed(framing.CodeProtocol)},
		{"WINDOW beyond 2^31-1", cat(headers(1, 0, hold), u32(framing.TypeWindow, 1, framing.MaxWindow)), closed(framing.CodeProtocol)},
		{"WINDOW of 2^32-1", cat(headers(1, 0, hold), u32(framing.TypeWindow, 1, 1<<32-1)), closed(framing.CodeProtocol)},
		{"too many streams", cat(headers(1, 0, hold), headers(3, 0, hold), headers(5, 0, hold), headers(7, 0, hold), headers(9, 0, hold)), reset(9, framing.CodeRefused)},
		{"SETTINGS sent to the server", framing.AppendSettings(nil, framing.Settings{MaxStreams: 1}), closed(framing.CodeProtocol)},
		{"GOAWAY sent to the server", cat(framing.AppendGoAway(nil, 0, framing.CodeNone), headers(1, framing.FlagEnd, get)), status(1, "200")},
		{"unknown frame type", framing.AppendFrame(nil, framing.Type(9), 0, 1, nil), closed(framing.CodeProtocol)},
		{"PING on a stream", framing.AppendFrame(nil, framing.TypePing, 0, 1, make([]byte, 8)), closed(framing.CodeProtocol)},
		{"garbage", []byte("GET / HTTP/1.1\r\nHost: treaty\r\n\r\n"), closed(framing.CodeProtocol)},
		{"DATA header announcing 4 GiB", framing.AppendHeader(nil, framing.TypeData, 0, 1, 1<<32-1), closed(framing.CodeTooLarge)},
		{"HEADERS header announcing 4 GiB", framing.AppendHeader(nil, framing.TypeHeaders, 0, 1, 1<<32-1), closed(framing.CodeTooLarge)},
		{"post then a good one", cat(headers(1, 0, post), data(1, framing.FlagEnd, 10), headers(3, framing.FlagEnd, get)), status(3, "200")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := newHostileBed(t)
			rc := b.dial(t)
			if err := rc.send(tc.in); err != nil {
				t.Fatalf("write: %v", err)
			}
			tc.check(t, rc)
			b.goodCall(t)
		})
	}
}

// TestTreaty2HostilePingFlood: a bounded flood of PINGs is answered one
// for one, and other clients are served meanwhile.
func TestTreaty2HostilePingFlood(t *testing.T) {
	b := newHostileBed(t)
	rc := b.dial(t)
	const n = 2000
	var out []byte
	for i := range n {
		var p [8]byte
		binary.BigEndian.PutUint64(p[:], uint64(i))
		out = framing.AppendFrame(out, framing.TypePing, 0, 0, p[:])
	}
	if err := rc.send(out); err != nil {
		t.Fatal(err)
	}
	b.goodCall(t)
	waitFor(t, "PING answers", func() bool { return rc.count(isType(framing.TypePing)) == n })
	rc.expectAlive(t)
}

// TestTreaty2HostileResetWhileBlocked: a client that stops granting credit
// and then resets the stream must not hang the connection: the handler
// waiting for credit learns of the reset and returns, and the reader goes
// on (a PING is answered).
func TestTreaty2HostileResetWhileBlocked(t *testing.T) {
	b := newHostileBed(t)
	rc := b.dial(t)
	if err := rc.send(headers(1, framing.FlagEnd, reqBlock(http.MethodGet, "/big"))); err != nil {
		t.Fatal(err)
	}
	// The server sends the initial window's worth, then waits for credit.
	waitFor(t, "the first window of the answer", func() bool {
		n := 0
		rc.mu.Lock()
		for _, f := range rc.frames {
			if f.Type == framing.TypeData && f.Stream == 1 {
				n += len(f.Payload)
			}
		}
		rc.mu.Unlock()
		return n == framing.InitialWindow
	})
	if err := rc.send(u32(framing.TypeReset, 1, uint32(framing.CodeCancel))); err != nil {
		t.Fatal(err)
	}
	rc.expectAlive(t)
	waitFor(t, "the handler's return", func() bool { return b.exited.Load() == 1 })
	// The server does not answer a reset with a reset.
	if n := rc.count(isType(framing.TypeReset)); n != 0 {
		t.Fatalf("%d RESET frames from the server", n)
	}
	b.goodCall(t)

	// The same with the connection closed instead of the stream reset:
	// the server's shutdown of the connection wakes the handler.
	rc = b.dial(t)
	if err := rc.send(headers(1, framing.FlagEnd, reqBlock(http.MethodGet, "/big"))); err != nil {
		t.Fatal(err)
	}
	rc.expect(t, "an answer", func(f framing.Frame) bool { return f.Type == framing.TypeData && f.Stream == 1 })
	rc.close()
	waitFor(t, "the second handler's return", func() bool { return b.exited.Load() == 2 })
	b.goodCall(t)
}

func (rc *rawConn) readDone() bool {
	select {
	case <-rc.done:
		return true
	default:
		return false
	}
}

// waitFrame is expect for a goroutine that is not the test's: it gives up
// after d and says whether the frame came.
func (rc *rawConn) waitFrame(match func(framing.Frame) bool, d time.Duration) (framing.Frame, bool) {
	end := time.Now().Add(d)
	for {
		if f, ok := rc.find(match); ok {
			return f, true
		}
		if rc.readDone() || time.Now().After(end) {
			return framing.Frame{}, false
		}
		time.Sleep(2 * time.Millisecond) // polling a peer's frames, not synchronising
	}
}

func ansBlock(status string, extra ...string) []byte {
	b := framing.AppendField(nil, ":status", status)
	for i := 0; i+1 < len(extra); i += 2 {
		b = framing.AppendField(b, extra[i], extra[i+1])
	}
	return b
}

// fakeBed is a client with a RoundTripper, a fake treaty/2 server whose
// connections a script answers frame by frame, and a good server the same
// RoundTripper must still reach afterwards.
type fakeBed struct {
	fake, good, cli *node
	rt              http.RoundTripper
}

func newFakeBed(t *testing.T, script func(t *testing.T, rc *rawConn)) *fakeBed {
	t.Helper()
	fk, gk, ck := testKey(t, 1), testKey(t, 4), testKey(t, 2)
	b := &fakeBed{}
	b.fake = newNode(t, fk, admit(ck.Public()), Config{})
	b.good = newNode(t, gk, admit(ck.Public()), Config{})
	b.cli = newNode(t, ck, admit(fk.Public(), gk.Public()), Config{})
	serveHTTP(t, b.good, http.HandlerFunc(echoProto))
	var r resolver
	r.set(fk.Public(), b.fake.addr())
	r.set(gk.Public(), b.good.addr())
	b.rt = b.cli.RoundTripper(r.resolve)

	l := b.fake.Listener(ProtoFederation2)
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		conns []*rawConn
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			rc := startRawConn(c)
			mu.Lock()
			conns = append(conns, rc)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				script(t, rc)
			}()
		}
	}()
	t.Cleanup(func() {
		_ = l.Close()
		mu.Lock()
		for _, rc := range conns {
			rc.close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return b
}

// call sends a GET to the fake server and reads the answer whole.
func (b *fakeBed) call(t *testing.T, ctx context.Context) (*http.Response, []byte, error) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, PeerURL(b.fake.Self(), "/x"), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := b.rt.RoundTrip(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp, body, err
}

// goodCall checks the RoundTripper still reaches a good server.
func (b *fakeBed) goodCall(t *testing.T) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, PeerURL(b.good.Self(), "/echo"), strings.NewReader("hello"))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := b.rt.RoundTrip(req)
	if err != nil {
		t.Fatalf("call to a good server: %v", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || string(body) != "hello" || resp.Header.Get("X-Proto") != ProtoFederation2 {
		t.Fatalf("call to a good server: %q over %q, %v", body, resp.Header.Get("X-Proto"), err)
	}
}

const scriptWait = 10 * time.Second

// request waits for a request's HEADERS on a stream not in seen.
func request(rc *rawConn, seen map[uint32]bool) (uint32, bool) {
	f, ok := rc.waitFrame(func(f framing.Frame) bool { return f.Type == framing.TypeHeaders && !seen[f.Stream] }, scriptWait)
	if ok {
		seen[f.Stream] = true
	}
	return f.Stream, ok
}

// answerAll is a script that sends SETTINGS, then answers each request
// with the frames of answer (given the stream's ID) until the client
// closes the connection.
func answerAll(answer func(id uint32) []byte) func(*testing.T, *rawConn) {
	return func(t *testing.T, rc *rawConn) {
		if rc.send(framing.AppendSettings(nil, framing.Settings{MaxStreams: 10})) != nil {
			return
		}
		seen := map[uint32]bool{}
		for {
			id, ok := request(rc, seen)
			if !ok {
				return
			}
			_ = rc.send(answer(id))
		}
	}
}

// TestTreaty2HostileServer: whatever a server answers, the RoundTripper
// returns an error (from RoundTrip or the body) in good time, never
// panics or hangs, and still reaches a good server afterwards.
func TestTreaty2HostileServer(t *testing.T) {
	ok200 := func(id uint32) []byte { return headers(id, framing.FlagEnd, ansBlock("200")) }
	for _, tc := range []struct {
		name   string
		answer func(id uint32) []byte
	}{
		{"HEADERS for a stream never opened", func(id uint32) []byte { return ok200(id + 2) }},
		{"second final HEADERS", func(id uint32) []byte {
			return cat(headers(id, 0, ansBlock("200")), headers(id, framing.FlagEnd, ansBlock("200")))
		}},
		{"status 99", func(id uint32) []byte { return headers(id, framing.FlagEnd, ansBlock("99")) }},
		{"status abc", func(id uint32) []byte { return headers(id, framing.FlagEnd, ansBlock("abc")) }},
		{"status +20", func(id uint32) []byte { return headers(id, framing.FlagEnd, ansBlock("+20")) }},
		{"no status", func(id uint32) []byte {
			return headers(id, framing.FlagEnd, framing.AppendField(nil, "x-a", "1"))
		}},
		{"two statuses", func(id uint32) []byte {
			return headers(id, framing.FlagEnd, append(ansBlock("200"), framing.AppendField(nil, ":status", "200")...))
		}},
		{"request pseudo-field in an answer", func(id uint32) []byte {
			return headers(id, framing.FlagEnd, append(ansBlock("200"), framing.AppendField(nil, ":path", "/")...))
		}},
		{"1xx ending the stream", func(id uint32) []byte { return headers(id, framing.FlagEnd, ansBlock("103")) }},
		{"six 1xx answers", func(id uint32) []byte {
			var b []byte
			for range 6 {
				b = cat(b, headers(id, 0, ansBlock("103")))
			}
			return cat(b, ok200(id))
		}},
		{"HEADERS on an even stream", func(id uint32) []byte { return ok200(id + 1) }},
		{"body shorter than its content-length", func(id uint32) []byte {
			return cat(headers(id, 0, ansBlock("200", "content-length", "5")), data(id, framing.FlagEnd, 3))
		}},
		{"body longer than its content-length", func(id uint32) []byte {
			return cat(headers(id, 0, ansBlock("200", "content-length", "2")), data(id, framing.FlagEnd, 3))
		}},
		{"malformed content-length", func(id uint32) []byte {
			return cat(headers(id, 0, ansBlock("200", "content-length", "+3")), data(id, framing.FlagEnd, 3))
		}},
		{"content-length without a body", func(id uint32) []byte {
			return headers(id, framing.FlagEnd, ansBlock("200", "content-length", "3"))
		}},
		{"DATA before HEADERS", func(id uint32) []byte { return data(id, framing.FlagEnd, 3) }},
		{"WINDOW overflowing the request's credit", func(id uint32) []byte {
			return u32(framing.TypeWindow, id, framing.MaxWindow)
		}},
		{"SETTINGS with no streams", func(id uint32) []byte {
			return cat(framing.AppendHeader(nil, framing.TypeSettings, 0, 0, 4), []byte{0, 0, 0, 0})
		}},
		{"cut in the middle of the body", func(id uint32) []byte {
			return cat(headers(id, 0, ansBlock("200", "content-length", "100")), data(id, 0, 10), framing.AppendHeader(nil, framing.TypeData, 0, id, 90))
		}},
		{"garbage", func(uint32) []byte { return []byte("HTTP/1.1 200 OK\r\n\r\n") }},
		{"frame header announcing 4 GiB", func(id uint32) []byte { return framing.AppendHeader(nil, framing.TypeData, 0, id, 1<<32-1) }},
		{"GOAWAY then close", func(uint32) []byte { return framing.AppendGoAway(nil, 0, framing.CodeNone) }},
		{"refused every time", func(id uint32) []byte { return u32(framing.TypeReset, id, uint32(framing.CodeRefused)) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			script := answerAll(tc.answer)
			if tc.name == "GOAWAY then close" || tc.name == "cut in the middle of the body" {
				script = func(t *testing.T, rc *rawConn) {
					_ = rc.send(framing.AppendSettings(nil, framing.Settings{MaxStreams: 10}))
					if id, ok := request(rc, map[uint32]bool{}); ok {
						_ = rc.send(tc.answer(id))
					}
					_ = rc.c.Close()
				}
			}
			b := newFakeBed(t, script)
			ctx, cancel := context.WithTimeout(t.Context(), scriptWait)
			defer cancel()
			resp, body, err := b.call(t, ctx)
			if err == nil {
				t.Fatalf("answer %d %q accepted", resp.StatusCode, body)
			}
			if ctx.Err() != nil {
				t.Fatalf("the call ended only with its context: %v", err)
			}
			b.goodCall(t)
		})
	}
}

// TestTreaty2HostileServerDataBeyondCredit: DATA beyond the credit the
// client granted ends the connection with a GOAWAY naming a protocol
// error, and the answer's body fails.
func TestTreaty2HostileServerDataBeyondCredit(t *testing.T) {
	goaway := make(chan framing.Code, 1)
	b := newFakeBed(t, func(t *testing.T, rc *rawConn) {
		_ = rc.send(framing.AppendSettings(nil, framing.Settings{MaxStreams: 10}))
		id, ok := request(rc, map[uint32]bool{})
		if !ok {
			return
		}
		_ = rc.send(cat(headers(id, 0, ansBlock("200")), data(id, 0, framing.MaxData), data(id, 0, framing.MaxData), data(id, 0, 1)))
		if f, ok := rc.waitFrame(isType(framing.TypeGoAway), scriptWait); ok {
			_, c := framing.ParseGoAway(f.Payload)
			goaway <- c
		}
	})
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, PeerURL(b.fake.Self(), "/x"), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := b.rt.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	// The body is read only once the client has refused the frame: no
	// credit was given back meanwhile.
	select {
	case c := <-goaway:
		if c != framing.CodeProtocol {
			t.Fatalf("GOAWAY %s, want %s", c, framing.CodeProtocol)
		}
	case <-time.After(scriptWait):
		t.Fatal("no GOAWAY from the client")
	}
	if _, err := io.ReadAll(resp.Body); err == nil {
		t.Fatal("body beyond the credit read without an error")
	}
	b.goodCall(t)
}

// TestTreaty2HostileServerLongBody: an answer body longer than its
// content-length fails the read; closing the body then must end the
// stream (a RESET) and free its slot, so that the next call on the same
// connection, whose server takes one stream at a time, goes through.
func TestTreaty2HostileServerLongBody(t *testing.T) {
	resets := make(chan framing.Code, 1)
	b := newFakeBed(t, func(t *testing.T, rc *rawConn) {
		_ = rc.send(framing.AppendSettings(nil, framing.Settings{MaxStreams: 1}))
		seen := map[uint32]bool{}
		id, ok := request(rc, seen)
		if !ok {
			return
		}
		_ = rc.send(cat(headers(id, 0, ansBlock("200", "content-length", "2")), data(id, 0, 3)))
		if f, ok := rc.waitFrame(func(f framing.Frame) bool { return f.Type == framing.TypeReset && f.Stream == id }, scriptWait); ok {
			resets <- framing.Code(framing.Uint32(f.Payload))
		}
		if id, ok := request(rc, seen); ok {
			_ = rc.send(headers(id, framing.FlagEnd, ansBlock("204")))
		}
		rc.waitFrame(func(framing.Frame) bool { return false }, scriptWait/2)
	})
	ctx, cancel := context.WithTimeout(t.Context(), scriptWait)
	defer cancel()
	if _, _, err := b.call(t, ctx); err == nil || !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("body longer than its content-length: %v", err)
	}
	select {
	case <-resets:
	case <-ctx.Done():
		t.Fatal("the stream was not reset when its failed body was closed")
	}
	resp, _, err := b.call(t, ctx)
	if err != nil {
		t.Fatalf("next call: %v", err)
	}
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("next call: %d", resp.StatusCode)
	}
	b.goodCall(t)
}

// TestTreaty2GoAwayMovesWaiters: a caller waiting for a stream slot on a
// connection that receives GOAWAY goes to a new connection at once instead
// of waiting for the old connection's streams to end.
func TestTreaty2GoAwayMovesWaiters(t *testing.T) {
	goAway := make(chan struct{})
	var conns atomic.Int32
	b := newFakeBed(t, func(t *testing.T, rc *rawConn) {
		if conns.Add(1) > 1 {
			answerAll(func(id uint32) []byte { return headers(id, framing.FlagEnd, ansBlock("200")) })(t, rc)
			return
		}
		_ = rc.send(framing.AppendSettings(nil, framing.Settings{MaxStreams: 1}))
		id, ok := request(rc, map[uint32]bool{})
		if !ok {
			return
		}
		select {
		case <-goAway:
		case <-t.Context().Done():
			return
		}
		// The first request was taken and stays unanswered.
		_ = rc.send(framing.AppendGoAway(nil, id, framing.CodeNone))
	})
	rt := b.rt.(*roundTripper)
	first := func() *f2client {
		rt.mu.Lock()
		defer rt.mu.Unlock()
		return rt.f2[b.fake.Self()]
	}
	ctxA, cancelA := context.WithCancel(t.Context())
	defer cancelA()
	go func() { _, _, _ = b.call(t, ctxA) }()
	waitFor(t, "the first request on a connection of one stream", func() bool {
		cc := first()
		if cc == nil {
			return false
		}
		cc.mu.Lock()
		defer cc.mu.Unlock()
		return cc.max == 1 && len(cc.streams) == 1
	})
	cc := first()
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(t.Context(), scriptWait)
		defer cancel()
		resp, _, err := b.call(t, ctx)
		if err == nil && resp.StatusCode != http.StatusOK {
			err = fmt.Errorf("status %d", resp.StatusCode)
		}
		done <- err
	}()
	waitFor(t, "the second caller to wait for a slot", func() bool {
		cc.mu.Lock()
		defer cc.mu.Unlock()
		return len(cc.waiters) == 1
	})
	close(goAway)
	if err := <-done; err != nil {
		t.Fatalf("the waiting caller, after GOAWAY: %v", err)
	}
}
