package transport

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/treaty-dev/treaty/internal/framing"
	"github.com/treaty-dev/treaty/internal/identity"
)

// f2client is a pooled treaty/2 connection to one peer. A caller writes its
// request's frames itself and waits for the reader's hand-over of the
// answer's head; the body arrives into the stream's inbox.
type f2client struct {
	rt   *roundTripper
	peer identity.PublicKey
	c    *clientConn
	w    fwriter
	recv *connRecv  // what the server may send, all streams together
	out  *outCredit // what this side may send, all streams together

	lastRead atomic.Int64 // unix nanos of the last frame read

	mu        sync.Mutex
	streams   map[uint32]*cstream
	nextID    uint32
	max       int             // concurrent streams the server takes
	active    int             // slots taken (acquire), streams open or about to be
	waiters   []chan struct{} // callers waiting for a stream slot, oldest first
	err       error           // set once the connection is dead
	goingAway bool            // GOAWAY read: no new streams
	idleSince time.Time       // zero while a stream is open
	pingSent  time.Time
	timer     *time.Timer
}

// max1xx bounds the 1xx answers to one request, as net/http's client
// does (treaty sends one 103 at most).
const max1xx = 5

// defaultMaxStreams2 is assumed until the server's SETTINGS arrive (the
// first request leaves with the handshake, before them).
const defaultMaxStreams2 = 100

func newF2Client(rt *roundTripper, peer identity.PublicKey, c *clientConn) *f2client {
	cc := &f2client{rt: rt, peer: peer, c: c, w: newFwriter(c), streams: make(map[uint32]*cstream),
		nextID: 1, max: defaultMaxStreams2, idleSince: time.Now(), out: newOutCredit(framing.ConnWindow)}
	cc.recv = newConnRecv(func(n int) { cc.window(0, n) })
	cc.lastRead.Store(time.Now().UnixNano())
	tick := min(rt.t.cfg.IdleTimeout/8, pingTimeout/3)
	cc.timer = time.AfterFunc(tick, func() { cc.maintain(tick) })
	go cc.read()
	return cc
}

// usable reports whether a new stream may start on the connection.
func (cc *f2client) usable() bool {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	return cc.err == nil && !cc.goingAway && cc.nextID < 1<<31-1
}

// cstream is one request in flight.
type cstream struct {
	cc     *f2client
	id     uint32
	req    *http.Request
	trace  *httptrace.ClientTrace
	credit *outCredit
	ready  chan struct{} // closed when resp or err is set
	resp   *http.Response
	err    error
	body   *inbox
	stop   func() bool // the request context's AfterFunc
	// reqBody is the body sendBody sends, closed by finish; nil if none.
	reqBody io.Closer
	n1xx    int  // 1xx answers read (reader goroutine only)
	done    bool // the server's side ended (mu of cc)
}

// errRetry marks a request the server never processed: the connection
// went away or refused the stream before it ran.
type errRetry struct{ err error }

func (e errRetry) Error() string { return e.err.Error() }
func (e errRetry) Unwrap() error { return e.err }

// roundTrip sends req on a new stream and waits for the answer's head.
func (cc *f2client) roundTrip(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	if err := cc.acquire(ctx); err != nil {
		return nil, err
	}
	s := &cstream{cc: cc, req: req, trace: httptrace.ContextClientTrace(ctx), credit: newOutCredit(framing.InitialWindow), ready: make(chan struct{})}
	out, dataAt, rest, err := cc.requestFrames(s, req)
	if err != nil {
		cc.release()
		closeBody(req)
		return nil, err
	}
	if rest != nil {
		// Closed when the stream ends (finish), as net/http's transports
		// do: sendBody may be blocked in its Read.
		oc := &onceCloser{ReadCloser: rest}
		rest, s.reqBody = oc, oc
	}
	// Stream IDs must reach the server in increasing order: the ID is taken
	// and the frames written under the writer's lock.
	_ = cc.w.lock(time.Time{})
	if err := ctx.Err(); err != nil {
		// Not sent: the server never sees a request already given up.
		cc.w.unlock()
		cc.release()
		closeBody(req)
		return nil, err
	}
	cc.mu.Lock()
	if cc.err != nil || cc.goingAway {
		err := cc.err
		cc.mu.Unlock()
		cc.w.unlock()
		cc.release()
		closeBody(req)
		if err == nil {
			err = errConnClosed
		}
		return nil, errRetry{err}
	}
	s.id = cc.nextID
	cc.nextID += 2
	cc.streams[s.id] = s
	cc.idleSince = time.Time{}
	// A cancel from here on sends a RESET: it takes the writer's lock, so
	// it follows the head written below.
	s.stop = context.AfterFunc(ctx, func() { cc.cancel(s, context.Cause(ctx)) })
	cc.mu.Unlock()
	framing.SetStream(out, s.id)
	if dataAt >= 0 {
		framing.SetStream(out[dataAt:], s.id)
	}
	err = cc.w.writeLocked(out, time.Time{})
	cc.w.unlock()
	if err != nil {
		cc.finish(s, nil) // closes the body
		return nil, cc.connErr(err)
	}
	if rest != nil {
		go cc.sendBody(s, rest)
	}
	<-s.ready
	if s.err != nil {
		return nil, s.err
	}
	return s.resp, nil
}

// requestFrames encodes the request's HEADERS and, if the body is in memory
// (GetBody set, as http.NewRequest does for bytes and strings), of a known
// length within credit, its DATA (at dataAt; -1 if none): most requests
// leave in one write. Otherwise rest is the body, to send after the head:
// a body that is slow to come must not hold the head, nor the caller past
// its context, as reading it here would.
// The frames are on stream 0 until the caller sets the stream's ID.
func (cc *f2client) requestFrames(s *cstream, req *http.Request) (out []byte, dataAt int, rest io.ReadCloser, err error) {
	body := req.Body
	if body == http.NoBody {
		body = nil
	}
	cl := req.ContentLength
	if body != nil && cl == 0 {
		cl = -1 // unknown: net/http's meaning of 0 with a body
	}
	// Inline only a body in memory (NewRequest sets GetBody for those): any
	// other reader may block, and must do so on the sender's goroutine, where
	// the stream's end can unblock it.
	inline := body != nil && req.GetBody != nil && cl > 0 && cl <= framing.MaxData && cc.out.tryTake(int(cl))
	flags := framing.Flags(0)
	if body == nil {
		flags = framing.FlagEnd
	}
	size := 512
	if inline {
		size += int(cl) + framing.HeaderLen
	}
	out = make([]byte, 0, size)
	out = framing.AppendHeader(out, framing.TypeHeaders, flags, 0, 0)
	host := req.Host
	if host == "" {
		host = req.URL.Host
	}
	out = framing.AppendField(out, ":method", cmpOr(req.Method, http.MethodGet))
	out = framing.AppendField(out, ":authority", host)
	out = framing.AppendField(out, ":path", req.URL.RequestURI())
	out = appendHeaderFields(out, req.Header)
	if body != nil && cl > 0 && req.Header.Get("Content-Length") == "" {
		out = framing.AppendField(out, "content-length", strconv.FormatInt(cl, 10))
	}
	framing.AppendHeader(out[:0], framing.TypeHeaders, flags, 0, len(out)-framing.HeaderLen)
	if !inline {
		return out, -1, body, nil
	}
	start := len(out)
	out = framing.AppendHeader(out, framing.TypeData, framing.FlagEnd, 0, int(cl))
	out = slices.Grow(out, int(cl))[:len(out)+int(cl)]
	if _, err := io.ReadFull(body, out[start+framing.HeaderLen:]); err != nil {
		cc.out.give(int(cl))
		return nil, -1, nil, fmt.Errorf("transport: read request body: %w", err)
	}
	// A body longer than announced is net/http's error too.
	var one [1]byte
	if n, _ := body.Read(one[:]); n > 0 {
		cc.out.give(int(cl))
		return nil, -1, nil, errors.New("transport: request body longer than its ContentLength")
	}
	_ = body.Close()
	s.credit.n -= int(cl) // not shared yet
	return out, start, nil, nil
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// sendBody streams a request body within the server's credit.
func (cc *f2client) sendBody(s *cstream, body io.ReadCloser) {
	defer body.Close()
	buf := make([]byte, framing.MaxData)
	for {
		n, rerr := io.ReadFull(body, buf)
		last := rerr != nil
		if rerr != nil && rerr != io.EOF && rerr != io.ErrUnexpectedEOF {
			cc.cancel(s, fmt.Errorf("transport: read request body: %w", rerr))
			return
		}
		data := buf[:n]
		for len(data) > 0 || last {
			k := 0
			if len(data) > 0 {
				var err error
				if k, err = takeBoth(s.credit, cc.out, len(data), time.Time{}); err != nil {
					return // the stream ended
				}
			}
			flags := framing.Flags(0)
			if last && k == len(data) {
				flags = framing.FlagEnd
			}
			if err := cc.w.write(framing.AppendFrame(nil, framing.TypeData, flags, s.id, data[:k]), time.Time{}); err != nil {
				return // the reader ends the streams
			}
			data = data[k:]
			if flags != 0 {
				return
			}
		}
	}
}

// acquire waits for a stream slot (cc.active counts them).
func (cc *f2client) acquire(ctx context.Context) error {
	cc.mu.Lock()
	if cc.err != nil || cc.goingAway {
		err := cc.err
		cc.mu.Unlock()
		if err == nil {
			err = errConnClosed
		}
		return errRetry{err}
	}
	if cc.active < cc.max && len(cc.waiters) == 0 {
		cc.active++
		cc.mu.Unlock()
		return nil
	}
	ch := make(chan struct{})
	cc.waiters = append(cc.waiters, ch)
	cc.mu.Unlock()
	select {
	case <-ch:
		return nil // the slot was passed on by wakeLocked
	case <-ctx.Done():
		cc.mu.Lock()
		for i, w := range cc.waiters {
			if w == ch {
				cc.waiters = append(cc.waiters[:i], cc.waiters[i+1:]...)
				cc.mu.Unlock()
				return ctx.Err()
			}
		}
		cc.mu.Unlock()
		cc.release() // granted as ctx ended: pass it on
		return ctx.Err()
	}
}

// release gives back a slot taken by acquire for a stream never registered.
func (cc *f2client) release() {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	cc.active--
	cc.wakeLocked()
}

// wakeLocked passes free slots to the oldest waiters; on a dead connection,
// or one going away, it wakes them all (they find cc.err or cc.goingAway,
// release, and retry on a new connection).
func (cc *f2client) wakeLocked() {
	for len(cc.waiters) > 0 && (cc.active < cc.max || cc.err != nil || cc.goingAway) {
		cc.active++
		close(cc.waiters[0])
		cc.waiters = cc.waiters[1:]
	}
}

// finish forgets s (idempotent): its slot goes to the next waiter, and a
// request body still being sent is closed.
func (cc *f2client) finish(s *cstream, err error) {
	cc.mu.Lock()
	if s.done {
		cc.mu.Unlock()
		return
	}
	s.done = true
	delete(cc.streams, s.id)
	if len(cc.streams) == 0 {
		cc.idleSince = time.Now()
	}
	cc.active--
	cc.wakeLocked()
	stop, body := s.stop, s.reqBody
	cc.mu.Unlock()
	if body != nil {
		_ = body.Close()
	}
	if err == nil {
		err = errStreamDone
	}
	s.credit.stop(err)
	if stop != nil {
		stop()
	}
}

// onceCloser closes its ReadCloser once, whoever calls Close first.
type onceCloser struct {
	io.ReadCloser
	once sync.Once
	err  error
}

func (c *onceCloser) Close() error {
	c.once.Do(func() { c.err = c.ReadCloser.Close() })
	return c.err
}

var errStreamDone = errors.New("transport: treaty/2 stream ended")

// deliver hands the answer's head (or err) to the waiting caller, once
// (cc.mu held).
func (s *cstream) deliver(resp *http.Response, err error) bool {
	select {
	case <-s.ready:
		return false
	default:
	}
	s.resp, s.err = resp, err
	close(s.ready)
	return true
}

// cancel abandons s: its caller gave up (ctx) or closed the answer's body.
// The server is told with a RESET unless it already finished. s is
// registered, so its head is written (or being written, under the writer's
// lock, which the RESET waits for) or failed (and the RESET fails too).
func (cc *f2client) cancel(s *cstream, err error) {
	cc.mu.Lock()
	done := s.done
	cc.mu.Unlock()
	if done {
		if s.body != nil {
			s.body.fail(err)
		}
		return
	}
	cc.finish(s, err)
	cc.readerDeliver(s, err)
	// The caller has its answer; the RESET does not make it wait for a
	// write stuck in the connection.
	cc.w.writeSoon(framing.AppendUint32Frame(nil, framing.TypeReset, s.id, uint32(framing.CodeCancel)))
}

// readerDeliver fails s's head or body with err. Only the reader goroutine
// and cancel call it; deliver is guarded by s.ready, so the two never both
// deliver.
func (cc *f2client) readerDeliver(s *cstream, err error) {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	if !s.deliver(nil, err) && s.body != nil {
		s.body.fail(err)
	}
}

// read is the connection's reader: it hands frames to streams until the
// connection fails, then fails every stream still open.
func (cc *f2client) read() {
	rd := framing.NewReader(cc.c, maxAnswerHeaderBytes)
	canon := make(headerCanon)
	var err error
	for {
		var f framing.Frame
		if f, err = rd.Next(); err != nil {
			break
		}
		cc.lastRead.Store(time.Now().UnixNano())
		if err = cc.handle(f, canon); err != nil {
			var fe *framing.Error
			if errors.As(err, &fe) {
				cc.w.writeSoon(framing.AppendGoAway(nil, 0, fe.Code))
			}
			break
		}
	}
	cc.close(err)
}

func (cc *f2client) handle(f framing.Frame, canon headerCanon) error {
	switch f.Type {
	case framing.TypeSettings:
		st, err := framing.ParseSettings(f.Payload)
		if err != nil {
			return err
		}
		cc.mu.Lock()
		cc.max = int(min(st.MaxStreams, maxMaxStreams))
		cc.wakeLocked()
		cc.mu.Unlock()
		return nil
	case framing.TypePing:
		if f.Flags&framing.FlagAck == 0 {
			cc.w.writeSoon(framing.AppendFrame(nil, framing.TypePing, framing.FlagAck, 0, f.Payload))
			return nil
		}
		cc.mu.Lock()
		cc.pingSent = time.Time{}
		cc.mu.Unlock()
		return nil
	case framing.TypeGoAway:
		last, code := framing.ParseGoAway(f.Payload)
		cc.goAway(last, code)
		return nil
	case framing.TypeWindow:
		if f.Stream == 0 {
			return cc.out.add(framing.Uint32(f.Payload))
		}
	}
	cc.mu.Lock()
	s := cc.streams[f.Stream]
	// Streams are this side's, odd and below nextID; any other is unknown.
	unknown := s == nil && (f.Stream >= cc.nextID || f.Stream%2 == 0)
	cc.mu.Unlock()
	if unknown {
		return &framing.Error{Code: framing.CodeProtocol, Msg: fmt.Sprintf("%s frame on stream %d, never opened", f.Type, f.Stream)}
	}
	if s == nil {
		if f.Type == framing.TypeData {
			return cc.recv.drop(len(f.Payload)) // a stream this side ended
		}
		return nil
	}
	switch f.Type {
	case framing.TypeHeaders:
		return cc.head(s, f, canon)
	case framing.TypeData:
		if s.body == nil {
			return &framing.Error{Code: framing.CodeProtocol, Msg: fmt.Sprintf("DATA before HEADERS on stream %d", f.Stream)}
		}
		end := f.Flags&framing.FlagEnd != 0
		if err := s.body.push(f.Payload, end); err != nil {
			return err
		}
		if end {
			cc.finish(s, nil)
		}
	case framing.TypeReset:
		code := framing.Code(framing.Uint32(f.Payload))
		var err error = &StreamError{Stream: f.Stream, Code: code, Remote: true}
		if code == framing.CodeRefused {
			err = errRetry{err}
		}
		cc.finish(s, err)
		cc.readerDeliver(s, err)
	case framing.TypeWindow:
		return s.credit.add(framing.Uint32(f.Payload))
	}
	return nil
}

// head takes an answer's HEADERS: a 1xx goes to the request's trace, a final
// status becomes the response handed to the caller.
func (cc *f2client) head(s *cstream, f framing.Frame, canon headerCanon) error {
	if s.body != nil {
		return &framing.Error{Code: framing.CodeProtocol, Msg: fmt.Sprintf("second final HEADERS on stream %d", f.Stream)}
	}
	status := 0
	hdr := make(http.Header, 12)
	err := framing.ParseFields(f.Payload, maxAnswerHeaderBytes, func(name, value string) error {
		if name == ":status" && status == 0 {
			n, err := strconv.Atoi(value)
			if err != nil || n < 100 || n > 999 || len(value) != 3 {
				return &framing.Error{Code: framing.CodeProtocol, Msg: "malformed :status " + strconv.Quote(value)}
			}
			status = n
			return nil
		}
		if name[0] == ':' {
			return &framing.Error{Code: framing.CodeProtocol, Msg: "unexpected answer pseudo-field " + strconv.Quote(name)}
		}
		k := canon.key(name)
		hdr[k] = append(hdr[k], value)
		return nil
	})
	if err == nil && status == 0 {
		err = &framing.Error{Code: framing.CodeProtocol, Msg: "answer without :status"}
	}
	if err != nil {
		return err
	}
	end := f.Flags&framing.FlagEnd != 0
	if status < 200 {
		if end {
			return &framing.Error{Code: framing.CodeProtocol, Msg: "1xx answer ending the stream"}
		}
		if s.n1xx++; s.n1xx > max1xx {
			return &framing.Error{Code: framing.CodeProtocol, Msg: fmt.Sprintf("more than %d 1xx answers on stream %d", max1xx, f.Stream)}
		}
		if s.trace != nil && s.trace.Got1xxResponse != nil {
			if err := s.trace.Got1xxResponse(status, textproto.MIMEHeader(hdr)); err != nil {
				cc.cancel(s, err)
			}
		}
		return nil
	}
	cl, ok := contentLength(hdr.Get("Content-Length"))
	if !ok {
		return &framing.Error{Code: framing.CodeProtocol, Msg: "malformed content-length"}
	}
	resp := &http.Response{
		Status: strconv.Itoa(status) + " " + http.StatusText(status), StatusCode: status,
		Proto: ProtoFederation2, ProtoMajor: 2, Header: hdr, ContentLength: cl, Request: s.req,
	}
	if end && cl > 0 {
		return &framing.Error{Code: framing.CodeProtocol, Msg: "content-length on an answer without a body"}
	}
	cc.mu.Lock()
	if end {
		resp.ContentLength = 0
		resp.Body = http.NoBody
		s.body = newInbox(cc.recv, 0, nil, nil) // marks the head as read
	} else {
		s.body = newInbox(cc.recv, cl, func(n int) { cc.window(s.id, n) }, func() { cc.cancel(s, errBodyClosed) })
		resp.Body = s.body
	}
	s.deliver(resp, nil)
	cc.mu.Unlock()
	if end {
		cc.finish(s, nil)
	}
	return nil
}

func (cc *f2client) window(id uint32, n int) {
	cc.w.writeSoon(framing.AppendUint32Frame(nil, framing.TypeWindow, id, uint32(n)))
}

// goAway stops new streams; those above last were never processed and are
// failed so their callers retry on a new connection.
func (cc *f2client) goAway(last uint32, code framing.Code) {
	cc.mu.Lock()
	cc.goingAway = true
	cc.wakeLocked()
	var gone []*cstream
	for id, s := range cc.streams {
		if id > last {
			gone = append(gone, s)
		}
	}
	cc.mu.Unlock()
	cc.rt.forget2(cc)
	err := errRetry{fmt.Errorf("%w: server sent GOAWAY (%s)", errConnClosed, code)}
	for _, s := range gone {
		cc.finish(s, err)
		cc.readerDeliver(s, err)
	}
}

// close ends the connection and every stream on it with err.
func (cc *f2client) close(err error) {
	if err == nil || errors.Is(err, io.EOF) {
		err = errConnClosed
	} else if !errors.Is(err, errConnClosed) {
		var he *HandshakeError
		if !errors.As(err, &he) {
			err = fmt.Errorf("%w: %w", errConnClosed, err)
		}
	}
	cc.mu.Lock()
	if cc.err == nil {
		cc.err = err
	}
	open := make([]*cstream, 0, len(cc.streams))
	for _, s := range cc.streams {
		open = append(open, s)
	}
	cc.wakeLocked()
	cc.mu.Unlock()
	cc.timer.Stop()
	_ = cc.c.Close() // first: it ends a write in progress, which fail waits for
	cc.w.fail(err)
	cc.out.stop(err)
	cc.rt.forget2(cc)
	for _, s := range open {
		cc.finish(s, err)
		cc.readerDeliver(s, err)
	}
}

// maintain closes the connection once idle for IdleTimeout/2, and pings a
// server that has sent nothing for pingAfter while streams are open (closing
// the connection if the ping goes unanswered for pingTimeout).
func (cc *f2client) maintain(tick time.Duration) {
	now := time.Now()
	cc.mu.Lock()
	if cc.err != nil {
		cc.mu.Unlock()
		return
	}
	idle := !cc.idleSince.IsZero() && now.Sub(cc.idleSince) >= cc.rt.t.cfg.IdleTimeout/2
	silent := len(cc.streams) > 0 && now.Sub(time.Unix(0, cc.lastRead.Load())) >= pingAfter
	ping, dead := false, false
	switch {
	case !silent:
		cc.pingSent = time.Time{}
	case cc.pingSent.IsZero():
		cc.pingSent, ping = now, true
	case now.Sub(cc.pingSent) >= pingTimeout:
		dead = true
	}
	cc.mu.Unlock()
	switch {
	case idle:
		cc.close(errConnClosed)
		return
	case dead:
		cc.close(fmt.Errorf("%w: no answer to a ping in %v", errConnClosed, pingTimeout))
		return
	case ping:
		var p [8]byte
		_, _ = rand.Read(p[:])
		_ = cc.w.write(framing.AppendFrame(nil, framing.TypePing, 0, 0, p[:]), time.Time{})
	}
	cc.timer.Reset(tick)
}

// connErr is the error of a failed write: the refusal that caused it, if
// the peer refused the connection.
func (cc *f2client) connErr(err error) error {
	if rerr := cc.c.accepted(); rerr != nil {
		return rerr
	}
	return fmt.Errorf("%w: %w", errConnClosed, err)
}

// The RoundTripper's treaty/2 pool: one connection per peer, dialed offering
// treaty/2 then treaty/1. A peer that chooses treaty/1, or is reached through
// a relay, is served by the http2 pool for v1Memory before treaty/2 is
// offered to it again; the treaty/1 connection dialed to find that out is
// handed to http2 (stash), not wasted.

// v1Memory is how long a peer that chose treaty/1 is not offered treaty/2.
const v1Memory = 10 * time.Minute

// maxRetries2 bounds the retries of a request the server never processed.
const maxRetries2 = 2

var errUseV1 = errors.New("transport: peer speaks treaty/1")

type f2dial struct {
	done chan struct{}
	err  error
}

// roundTrip2 sends req over treaty/2; ok is false when the peer is to be
// reached over treaty/1 instead.
func (rt *roundTripper) roundTrip2(req *http.Request, peer identity.PublicKey) (resp *http.Response, err error, ok bool) {
	ctx := req.Context()
	for attempt := 0; ; attempt++ {
		cc, err := rt.conn2(ctx, peer)
		if errors.Is(err, errUseV1) {
			return nil, nil, false
		}
		if err != nil {
			closeBody(req)
			return nil, err, true
		}
		resp, err := cc.roundTrip(req)
		var re errRetry
		if !errors.As(err, &re) || attempt == maxRetries2 || ctx.Err() != nil {
			return resp, err, true
		}
		if req.Body != nil && req.Body != http.NoBody {
			if req.GetBody == nil {
				return nil, err, true
			}
			body, berr := req.GetBody()
			if berr != nil {
				return nil, err, true
			}
			r2 := *req
			r2.Body = body
			req = &r2
		}
	}
}

// conn2 returns the peer's treaty/2 connection, dialing one if needed.
// Concurrent callers share one dial.
func (rt *roundTripper) conn2(ctx context.Context, peer identity.PublicKey) (*f2client, error) {
	for {
		rt.mu.Lock()
		if cc := rt.f2[peer]; cc != nil {
			rt.mu.Unlock()
			if cc.usable() {
				return cc, nil
			}
			rt.forget2(cc)
			continue
		}
		if d := rt.dialing[peer]; d != nil {
			rt.mu.Unlock()
			select {
			case <-d.done:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
			if d.err != nil && !errors.Is(d.err, context.Canceled) && !errors.Is(d.err, context.DeadlineExceeded) {
				return nil, d.err
			}
			continue // dialed, or the dialer's own ctx ended: look again
		}
		d := &f2dial{done: make(chan struct{})}
		if rt.dialing == nil {
			rt.dialing = make(map[identity.PublicKey]*f2dial)
			rt.f2 = make(map[identity.PublicKey]*f2client)
		}
		rt.dialing[peer] = d
		rt.mu.Unlock()

		cc, err := rt.dial2(ctx, peer)
		rt.mu.Lock()
		delete(rt.dialing, peer)
		if cc != nil {
			rt.f2[peer] = cc
		}
		d.err = err
		close(d.done)
		rt.mu.Unlock()
		return cc, err
	}
}

// dial2 dials peer offering treaty/2 and treaty/1.
func (rt *roundTripper) dial2(ctx context.Context, peer identity.PublicKey) (*f2client, error) {
	t := rt.t
	// As for http2's dial: the dial serves every waiting request, still
	// bounded by the Transport's life.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(t.ctx, cancel)()
	r, err := rt.route(ctx, peer)
	if err != nil {
		return nil, fmt.Errorf("transport: resolve %s: %w", peer.Short(), err)
	}
	if !r.Relay.IsZero() {
		rt.markV1(peer)
		return nil, errUseV1
	}
	tc, err := t.dial(ctx, r.Addr, peer, false, ProtoFederation2, ProtoFederation)
	if err != nil {
		return nil, err
	}
	c := &clientConn{Conn: tc, peer: peer, t: t, addr: r.Addr, rt: rt, early: true}
	if !t.track(c) {
		_ = tc.Close()
		return nil, fmt.Errorf("transport: dial %s: %w", r.Addr, ErrClosed)
	}
	if tc.ConnectionState().NegotiatedProtocol != ProtoFederation2 {
		rt.markV1(peer)
		rt.mu.Lock()
		if rt.stash == nil {
			rt.stash = make(map[identity.PublicKey]*clientConn)
		}
		old := rt.stash[peer]
		rt.stash[peer] = c
		rt.mu.Unlock()
		if old != nil {
			_ = old.Close()
		}
		return nil, errUseV1
	}
	return newF2Client(rt, peer, c), nil
}

func (rt *roundTripper) forget2(cc *f2client) {
	rt.mu.Lock()
	if rt.f2[cc.peer] == cc {
		delete(rt.f2, cc.peer)
	}
	rt.mu.Unlock()
}

func (rt *roundTripper) markV1(peer identity.PublicKey) {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	if rt.v1 == nil {
		rt.v1 = make(map[identity.PublicKey]time.Time)
	}
	if len(rt.v1) >= maxHosts {
		clear(rt.v1) // forgetting only costs a probe per peer
	}
	rt.v1[peer] = time.Now().Add(v1Memory)
}

func (rt *roundTripper) isV1(peer identity.PublicKey) bool {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	until, ok := rt.v1[peer]
	if ok && time.Now().After(until) {
		delete(rt.v1, peer)
		return false
	}
	return ok
}

func (rt *roundTripper) unstash(peer identity.PublicKey) *clientConn {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	c := rt.stash[peer]
	delete(rt.stash, peer)
	return c
}
