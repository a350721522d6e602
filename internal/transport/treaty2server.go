package transport

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"runtime/debug"
	"strconv"
	"sync"
	"time"

	"github.com/treaty-dev/treaty/internal/framing"
)

// f2server serves one treaty/2 connection: its reader (serve) opens a
// stream per request and runs the handler on a goroutine of its own; the
// handler's answer is written by that goroutine.
type f2server struct {
	t      *Transport
	c      *serverConn
	h      http.Handler
	ctx    context.Context // the connection's: carries the peer key
	cancel context.CancelFunc
	w      fwriter
	tls    *tls.ConnectionState
	remote string
	max    int // concurrent streams
	canon  headerCanon
	recv   *connRecv  // what the client may send, all streams together
	out    *outCredit // what this side may send, all streams together

	mu        sync.Mutex
	streams   map[uint32]*sstream // open streams: at most max
	running   int                 // handlers not yet returned: at most maxRunning
	lastID    uint32
	idleSince time.Time // when the last stream ended; zero while one is open
}

// serveTreaty2 serves c until it fails, the peer leaves or ctx is done.
func (t *Transport) serveTreaty2(ctx context.Context, c *serverConn, h http.Handler) {
	ctx, cancel := context.WithCancel(ctx)
	cs := c.ConnectionState()
	s := &f2server{
		t: t, c: c, h: h, ctx: ctx, cancel: cancel,
		w:      newFwriter(c),
		tls:    &cs,
		remote: c.RemoteAddr().String(),
		max:    int(t.cfg.MaxConcurrentStreams),
		canon:  make(headerCanon),

		streams:   make(map[uint32]*sstream),
		idleSince: time.Now(),
		out:       newOutCredit(framing.ConnWindow),
	}
	s.recv = newConnRecv(func(n int) { s.window(0, n) })
	idle := s.watchIdle()
	err := s.serve()
	idle.Stop()
	s.shutdown(err)
}

// serve reads frames until the connection fails. A protocol error is
// answered with GOAWAY before the close.
func (s *f2server) serve() error {
	if err := s.w.write(framing.AppendSettings(nil, framing.Settings{MaxStreams: uint32(s.max)}), time.Time{}); err != nil {
		return err
	}
	// Header blocks up to framing.MaxHeaderBlock are read whole, so that a
	// request over MaxHeaderBytes is refused alone (open resets it with
	// CodeTooLarge); only a block beyond that ends the connection.
	rd := framing.NewReader(s.c, framing.MaxHeaderBlock)
	for {
		f, err := rd.Next()
		if err == nil {
			err = s.handle(f)
		}
		if err != nil {
			var fe *framing.Error
			if errors.As(err, &fe) {
				s.goAway(fe.Code)
				s.t.log.Debug("transport: treaty/2 protocol error", "peer", s.c.peer.Short(), "err", err)
			}
			return err
		}
	}
}

func (s *f2server) handle(f framing.Frame) error {
	switch f.Type {
	case framing.TypeHeaders:
		return s.open(f)
	case framing.TypeData:
		st, err := s.known(f.Stream)
		if err != nil {
			return err
		}
		if st == nil || st.body == nil {
			return s.recv.drop(len(f.Payload)) // ended, or a request sent with no body
		}
		return st.body.push(f.Payload, f.Flags&framing.FlagEnd != 0)
	case framing.TypeReset:
		st, err := s.known(f.Stream)
		if st != nil {
			st.abort(&StreamError{Stream: f.Stream, Code: framing.Code(framing.Uint32(f.Payload)), Remote: true})
			// The caller no longer counts the stream: neither does the
			// limit, though the handler may not have returned yet.
			s.end(st)
		}
		return err
	case framing.TypeWindow:
		if f.Stream == 0 {
			return s.out.add(framing.Uint32(f.Payload))
		}
		st, err := s.known(f.Stream)
		if st != nil {
			return st.credit.add(framing.Uint32(f.Payload))
		}
		return err
	case framing.TypePing:
		if f.Flags&framing.FlagAck == 0 {
			s.w.writeSoon(framing.AppendFrame(nil, framing.TypePing, framing.FlagAck, 0, f.Payload))
		}
		return nil
	case framing.TypeGoAway:
		return nil // the client closes when its streams are done
	}
	return &framing.Error{Code: framing.CodeProtocol, Msg: f.Type.String() + " frame sent to a server"}
}

// known returns the open stream id; nil for one that ended. A frame for a
// stream never opened is a protocol error.
func (s *f2server) known(id uint32) (*sstream, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if st := s.streams[id]; st != nil {
		return st, nil
	}
	if id > s.lastID {
		return nil, &framing.Error{Code: framing.CodeProtocol, Msg: fmt.Sprintf("frame on stream %d, never opened", id)}
	}
	return nil, nil
}

// open starts a request's stream. A request the server cannot take (too
// many streams, a header list over the limit, a malformed head) is reset
// and the connection goes on; a stream ID out of order ends the connection.
func (s *f2server) open(f framing.Frame) error {
	id := f.Stream
	s.mu.Lock()
	if id%2 == 0 || id <= s.lastID {
		s.mu.Unlock()
		return &framing.Error{Code: framing.CodeProtocol, Msg: fmt.Sprintf("HEADERS opening stream %d after %d", id, s.lastID)}
	}
	s.lastID = id
	full := len(s.streams) >= s.max || s.running >= s.maxRunning()
	s.mu.Unlock()
	if full {
		s.reset(id, framing.CodeRefused)
		return nil
	}
	req, err := s.request(f)
	if err != nil {
		var fe *framing.Error
		if !errors.As(err, &fe) {
			return err
		}
		s.t.log.Debug("transport: treaty/2 request refused", "peer", s.c.peer.Short(), "stream", id, "err", err)
		s.reset(id, fe.Code)
		return nil
	}
	ctx, cancel := context.WithCancelCause(s.ctx)
	st := &sstream{s: s, id: id, cancel: cancel, credit: newOutCredit(framing.InitialWindow), header: make(http.Header, 8)}
	if f.Flags&framing.FlagEnd == 0 {
		st.body = newInbox(s.recv, req.ContentLength, func(n int) { s.window(id, n) }, nil)
		req.Body = st.body
	}
	req = req.WithContext(ctx)
	s.mu.Lock()
	s.streams[id] = st
	s.running++
	s.idleSince = time.Time{}
	s.mu.Unlock()
	go st.run(req)
	return nil
}

// request builds the http.Request of a HEADERS frame, without its context.
func (s *f2server) request(f framing.Frame) (*http.Request, error) {
	var method, authority, path string
	hdr := make(http.Header, 8)
	err := framing.ParseFields(f.Payload, s.t.cfg.MaxHeaderBytes, func(name, value string) error {
		var p *string
		switch name {
		case ":method":
			p = &method
		case ":authority":
			p = &authority
		case ":path":
			p = &path
		default:
			if name[0] == ':' {
				return &framing.Error{Code: framing.CodeProtocol, Msg: "unknown request pseudo-field " + strconv.Quote(name)}
			}
			k := s.canon.key(name)
			hdr[k] = append(hdr[k], value)
			return nil
		}
		if *p != "" {
			return &framing.Error{Code: framing.CodeProtocol, Msg: "repeated pseudo-field " + name}
		}
		*p = value
		return nil
	})
	if err != nil {
		return nil, err
	}
	if method == "" || path == "" || path[0] != '/' || authority == "" {
		return nil, &framing.Error{Code: framing.CodeProtocol, Msg: "request without :method, :authority or an absolute :path"}
	}
	u, err := url.ParseRequestURI(path)
	if err != nil {
		return nil, &framing.Error{Code: framing.CodeProtocol, Msg: "malformed :path"}
	}
	cl, ok := contentLength(hdr.Get("Content-Length"))
	if !ok || len(hdr["Content-Length"]) > 1 {
		return nil, &framing.Error{Code: framing.CodeProtocol, Msg: "malformed content-length"}
	}
	body := http.NoBody
	if f.Flags&framing.FlagEnd != 0 {
		if cl > 0 {
			return nil, &framing.Error{Code: framing.CodeProtocol, Msg: "content-length on a request without a body"}
		}
		cl = 0
	}
	return &http.Request{
		Method: method, URL: u, Proto: ProtoFederation2, ProtoMajor: 2,
		Header: hdr, Body: body, ContentLength: cl, Host: authority,
		RemoteAddr: s.remote, RequestURI: path, TLS: s.tls,
	}, nil
}

func (s *f2server) reset(id uint32, c framing.Code) {
	s.w.writeSoon(framing.AppendUint32Frame(nil, framing.TypeReset, id, uint32(c)))
}

func (s *f2server) window(id uint32, n int) {
	s.w.writeSoon(framing.AppendUint32Frame(nil, framing.TypeWindow, id, uint32(n)))
}

func (s *f2server) goAway(c framing.Code) {
	s.mu.Lock()
	last := s.lastID
	s.mu.Unlock()
	s.w.writeSoon(framing.AppendGoAway(nil, last, c))
}

// maxRunning bounds the handlers running on one connection: the open
// streams, and as many again whose stream ended (reset, or its answer
// written) but whose handler has not returned yet. A caller that opens
// streams and resets them at once cannot start handlers without limit.
func (s *f2server) maxRunning() int { return 2 * s.max }

// returned counts a handler's return, and forgets its stream.
func (s *f2server) returned(st *sstream) {
	s.end(st)
	s.mu.Lock()
	s.running--
	s.mu.Unlock()
}

// end forgets a stream (idempotent): it no longer counts against
// MaxConcurrentStreams, and frames for it are dropped. It is called when the
// caller stops counting the stream too, before that can let it open another:
// before this side's last frame or RESET is written, when the peer's RESET is
// read, and at the latest when the handler returns.
func (s *f2server) end(st *sstream) {
	s.mu.Lock()
	if s.streams[st.id] == st {
		delete(s.streams, st.id)
		if len(s.streams) == 0 {
			s.idleSince = time.Now()
		}
	}
	s.mu.Unlock()
}

// watchIdle closes the connection once it has had no stream for
// IdleTimeout (after a GOAWAY saying which requests were taken).
func (s *f2server) watchIdle() *time.Timer {
	idle := s.t.cfg.IdleTimeout
	tick := min(idle/4, 10*time.Second)
	var timer *time.Timer
	timer = time.AfterFunc(tick, func() {
		s.mu.Lock()
		since := s.idleSince
		s.mu.Unlock()
		if !since.IsZero() && time.Since(since) >= idle {
			s.goAway(framing.CodeNone)
			_ = s.c.Close()
			return
		}
		timer.Reset(tick)
	})
	return timer
}

// shutdown ends every stream still open and closes the connection.
func (s *f2server) shutdown(err error) {
	s.cancel()
	_ = s.c.Close() // first: it ends a write in progress, which fail waits for
	s.w.fail(errConnClosed)
	s.out.stop(errConnClosed)
	s.mu.Lock()
	open := make([]*sstream, 0, len(s.streams))
	for _, st := range s.streams {
		open = append(open, st)
	}
	s.mu.Unlock()
	cause := fmt.Errorf("%w: %w", errConnClosed, err)
	for _, st := range open {
		st.abort(cause)
	}
}

// sstream is one request on a server connection, and the ResponseWriter
// its handler writes the answer through. The handler's goroutine writes the
// answer's frames itself; the answer is buffered (up to answerBuffer) until
// the handler returns or flushes, so most answers leave in one write.
type sstream struct {
	s      *f2server
	id     uint32
	body   *inbox // nil for a request without a body
	credit *outCredit
	cancel context.CancelCauseFunc
	header http.Header // the handler's

	mu     sync.Mutex
	status int  // final status; 0 until WriteHeader
	sent   bool // the final HEADERS are written
	buf    []byte
	dl     time.Time // write deadline (SetWriteDeadline)
	err    error     // the stream is over: reset, or a write failed
	rdl    *time.Timer
}

// run serves the request; a handler's panic resets the stream and is
// logged, as net/http's server does, and never ends the node.
func (st *sstream) run(req *http.Request) {
	defer st.s.returned(st)
	defer func() {
		if r := recover(); r != nil {
			if r != http.ErrAbortHandler {
				st.s.t.log.Error("transport: treaty/2 handler panic", "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
			}
			st.resetLocal(framing.CodeInternal)
		}
		st.cancel(context.Canceled)
		if st.body != nil {
			_ = st.body.Close()
		}
		st.mu.Lock()
		if st.rdl != nil {
			st.rdl.Stop()
		}
		st.mu.Unlock()
	}()
	st.s.h.ServeHTTP(st, req)
	st.finish()
}

// abort ends the stream from outside the handler: a RESET from the peer or
// the connection's end. It never takes st.mu, which the handler holds while
// it waits for credit or for the connection: the reader would wait with it.
// The handler's next write finds the error in st.credit (errLocked).
func (st *sstream) abort(err error) {
	st.credit.stop(err)
	if st.body != nil {
		st.body.fail(err)
	}
	st.cancel(err)
}

// resetLocal abandons the stream from this side.
func (st *sstream) resetLocal(c framing.Code) {
	st.mu.Lock()
	already := st.errLocked() != nil
	if !already {
		st.err = &StreamError{Stream: st.id, Code: c}
	}
	st.mu.Unlock()
	if !already {
		st.s.end(st)
		st.s.reset(st.id, c)
	}
}

// errLocked is the stream's terminal error, its abort's included (mu held).
func (st *sstream) errLocked() error {
	if st.err == nil {
		st.err = st.credit.stopped()
	}
	return st.err
}

func (st *sstream) Header() http.Header { return st.header }

// WriteHeader sends a 1xx at once (with the fields set so far); a final
// status goes out with the answer's first bytes.
func (st *sstream) WriteHeader(code int) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.status != 0 || st.errLocked() != nil {
		return
	}
	if code < 100 || code > 999 {
		code = http.StatusInternalServerError
	}
	if code < 200 {
		if code != http.StatusSwitchingProtocols {
			_ = st.send(st.headersFrame(nil, code, 0, -1))
		}
		return
	}
	st.status = code
}

func (st *sstream) Write(p []byte) (int, error) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.status == 0 {
		st.status = http.StatusOK
	}
	if err := st.errLocked(); err != nil {
		return 0, err
	}
	if !bodyAllowed(st.status) {
		return 0, http.ErrBodyNotAllowed
	}
	st.buf = append(st.buf, p...)
	if len(st.buf) >= answerBuffer {
		if err := st.flushLocked(false); err != nil {
			return 0, err
		}
	}
	return len(p), nil
}

func (st *sstream) Flush() { _ = st.FlushError() }

// FlushError sends what the handler has written so far (http.ResponseController).
func (st *sstream) FlushError() error {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.status == 0 {
		st.status = http.StatusOK
	}
	if err := st.errLocked(); err != nil {
		return err
	}
	return st.flushLocked(false)
}

// SetWriteDeadline bounds the answer's writes, waits for credit included
// (http.ResponseController).
func (st *sstream) SetWriteDeadline(t time.Time) error {
	st.mu.Lock()
	st.dl = t
	st.mu.Unlock()
	return nil
}

// SetReadDeadline ends the request body's reads at t (http.ResponseController).
func (st *sstream) SetReadDeadline(t time.Time) error {
	if st.body == nil {
		return nil
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.rdl != nil {
		st.rdl.Stop()
		st.rdl = nil
	}
	if t.IsZero() {
		return nil
	}
	body := st.body
	st.rdl = time.AfterFunc(time.Until(t), func() { body.fail(errReadDeadline) })
	return nil
}

var errReadDeadline = fmt.Errorf("transport: treaty/2 read deadline passed: %w", errTimeout)

// finish sends what is left of the answer with the end flag.
func (st *sstream) finish() {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.errLocked() != nil {
		return
	}
	if st.status == 0 {
		st.status = http.StatusOK
	}
	_ = st.flushLocked(true)
}

// flushLocked writes the final HEADERS if not yet sent and the buffered
// body, within the stream's credit and write deadline; with end, the last
// frame carries the end flag. A failure resets the stream.
func (st *sstream) flushLocked(end bool) error {
	var out []byte
	pending := len(st.buf)
	if !st.sent {
		cl := int64(-1)
		if end && bodyAllowed(st.status) && st.header.Get("Content-Length") == "" {
			cl = int64(pending)
		}
		flags := framing.Flags(0)
		if end && pending == 0 {
			flags = framing.FlagEnd
		}
		out = st.headersFrame(make([]byte, 0, 512+pending+framing.HeaderLen), st.status, flags, cl)
		st.sent = true
		if flags != 0 {
			st.s.end(st)
			return st.send(out)
		}
	}
	data := st.buf
	ended := false
	for len(data) > 0 || (end && !ended) {
		n := 0
		if len(data) > 0 && len(out) > 0 && (st.credit.available() == 0 || st.s.out.available() == 0) {
			// What is gathered goes before the wait: the peer may need it
			// to grant more.
			if err := st.send(out); err != nil {
				return err
			}
			out = out[:0]
		}
		if len(data) > 0 {
			var err error
			if n, err = takeBoth(st.credit, st.s.out, min(len(data), framing.MaxData), st.dl); err != nil {
				if st.credit.stopped() != nil {
					st.err = err // aborted: nothing more to send
					return err
				}
				if len(out) > 0 {
					_ = st.send(out)
				}
				st.fail(err)
				return err
			}
		}
		flags := framing.Flags(0)
		if end && n == len(data) {
			flags, ended = framing.FlagEnd, true
		}
		out = framing.AppendFrame(out, framing.TypeData, flags, st.id, data[:n])
		data = data[n:]
		if len(out) >= 4*framing.MaxData && len(data) > 0 {
			if err := st.send(out); err != nil {
				return err
			}
			out = out[:0]
		}
	}
	st.buf = st.buf[:0]
	if len(out) == 0 {
		return nil
	}
	if end {
		st.s.end(st)
	}
	return st.send(out)
}

// send writes frames of the stream within its write deadline (mu held). A
// deadline that had passed before the write resets the stream only.
func (st *sstream) send(out []byte) error {
	if err := st.s.w.write(out, st.dl); err != nil {
		if errors.Is(err, errWriteDeadline) {
			st.fail(err)
		} else {
			st.err = err
		}
		return err
	}
	return nil
}

// fail ends the stream after a failed wait for credit (mu held). Only a
// write deadline that passed is this side's to report (a RESET); any other
// failure is the abort of the stream, by the peer's RESET or the
// connection's end, which needs no answer.
func (st *sstream) fail(err error) {
	if st.errLocked() != nil {
		return
	}
	st.err = err
	st.s.end(st)
	// The stream is over for the handler too: its request's context and
	// body end with it, as when the peer resets it.
	if st.body != nil {
		st.body.fail(err)
	}
	st.cancel(err)
	if errors.Is(err, errTimeout) {
		// The handler does not wait for the writer's lock, held perhaps by
		// a write stuck for connWriteTimeout (writeSoon).
		st.s.reset(st.id, framing.CodeTimeout)
	}
}

// headersFrame appends a HEADERS frame with status and the handler's
// fields; cl >= 0 adds a content-length.
func (st *sstream) headersFrame(dst []byte, status int, flags framing.Flags, cl int64) []byte {
	start := len(dst)
	dst = framing.AppendHeader(dst, framing.TypeHeaders, flags, st.id, 0)
	var num [20]byte
	dst = framing.AppendField(dst, ":status", string(strconv.AppendInt(num[:0], int64(status), 10)))
	dst = appendHeaderFields(dst, st.header)
	if cl >= 0 {
		dst = framing.AppendField(dst, "content-length", string(strconv.AppendInt(num[:0], cl, 10)))
	}
	n := len(dst) - start - framing.HeaderLen
	framing.AppendHeader(dst[start:start], framing.TypeHeaders, flags, st.id, n)
	return dst
}

// bodyAllowed is net/http's rule: no body with 1xx, 204 or 304.
func bodyAllowed(status int) bool {
	return status >= 200 && status != http.StatusNoContent && status != http.StatusNotModified
}
