package transport

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http/httpguts"

	"github.com/treaty-dev/treaty/internal/framing"
)

// treaty/2 (ADR 29) carries the same requests and answers as treaty/1 in
// the lean framing of internal/framing: one reader goroutine per connection
// that hands frames to streams, and writers that write their own frames
// under the connection's mutex. This file holds what both sides share.

// ProtoFederation2 is the ALPN name of the lean federation framing. A
// RoundTripper offers it before ProtoFederation, and a server prefers it.
const ProtoFederation2 = "treaty/2"

const (
	// connWriteTimeout bounds a frame write when its stream set no
	// deadline: a peer that reads nothing for this long is gone, and its
	// connection is closed (a half-written frame cannot be taken back).
	connWriteTimeout = 30 * time.Second
	// maxAnswerHeaderBytes bounds an answer's header list on the client.
	maxAnswerHeaderBytes = 1 << 20
	// answerBuffer is how much of an answer a handler's writes gather
	// before they go out without a Flush.
	answerBuffer = 16 << 10
)

// StreamError is a treaty/2 stream ended by a RESET from the peer or by a
// refusal of this side; Code says why.
type StreamError struct {
	Stream uint32
	Code   framing.Code
	Remote bool // the peer reset it
}

func (e *StreamError) Error() string {
	who := "reset by this side"
	if e.Remote {
		who = "reset by the peer"
	}
	return fmt.Sprintf("transport: treaty/2 stream %d %s: %s", e.Stream, who, e.Code)
}

// errConnClosed ends the streams of a treaty/2 connection that closed
// without a more specific reason.
var errConnClosed = errors.New("transport: treaty/2 connection closed")

// fwriter writes whole frames to a connection, one writer at a time. A
// failed write poisons it and closes the connection: the peer's reader
// cannot resynchronise after a partial frame.
//
// Its lock is a semaphore, not a sync.Mutex, so that a writer with a
// deadline stops waiting for it at the deadline: a write stuck in a
// connection the peer stopped reading holds the lock until its own deadline
// (connWriteTimeout for most), and a stream must not wait that long beyond
// its own.
type fwriter struct {
	sem   chan struct{} // holds a token while a writer has the lock
	c     net.Conn
	err   error     // under the lock
	armed time.Time // the connection's write deadline as last set; under the lock

	queued atomic.Int32 // control frames waiting for the writer (writeSoon)
}

// maxQueuedControl bounds the control frames waiting for a busy writer; a
// peer that makes more (PINGs while it reads nothing) loses the connection.
const maxQueuedControl = 64

// writeSoon writes a control frame (WINDOW, RESET, PING, GOAWAY) now if the
// writer is free, else from a goroutine of its own. The connection's reader
// uses it: it must never wait for a writer, who may be waiting for frames
// the reader has not read yet.
func (w *fwriter) writeSoon(b []byte) {
	if w.tryLock() {
		_ = w.writeLocked(b, time.Time{})
		w.unlock()
		return
	}
	if w.queued.Add(1) > maxQueuedControl {
		w.queued.Add(-1)
		_ = w.c.Close()
		w.fail(errTooManyControl)
		return
	}
	go func() {
		defer w.queued.Add(-1)
		_ = w.write(b, time.Time{})
	}()
}

var errTooManyControl = errors.New("transport: treaty/2 peer made more control frames than it reads")

func newFwriter(c net.Conn) fwriter { return fwriter{c: c, sem: make(chan struct{}, 1)} }

// lock takes the writer's lock, waiting until dl at most (zero: without
// limit): errWriteDeadline then, with nothing written.
func (w *fwriter) lock(dl time.Time) error {
	select {
	case w.sem <- struct{}{}:
		return nil
	default:
	}
	if dl.IsZero() {
		w.sem <- struct{}{}
		return nil
	}
	d := time.Until(dl)
	if d <= 0 {
		return errWriteDeadline
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case w.sem <- struct{}{}:
		return nil
	case <-t.C:
		return errWriteDeadline
	}
}

func (w *fwriter) unlock() { <-w.sem }

// tryLock takes the lock if it is free.
func (w *fwriter) tryLock() bool {
	select {
	case w.sem <- struct{}{}:
		return true
	default:
		return false
	}
}

// write writes b within dl (zero: connWriteTimeout from now). A deadline
// that passes before the write starts (waiting for the lock included) fails
// with errWriteDeadline and writes nothing, leaving the connection usable;
// one that passes during the write closes it.
func (w *fwriter) write(b []byte, dl time.Time) error {
	if err := w.lock(dl); err != nil {
		return err
	}
	defer w.unlock()
	return w.writeLocked(b, dl)
}

// writeLocked is write with the lock held by the caller.
func (w *fwriter) writeLocked(b []byte, dl time.Time) error {
	if w.err != nil {
		return w.err
	}
	now := time.Now()
	switch {
	case !dl.IsZero():
		if !now.Before(dl) {
			// Nothing written yet: the stream fails, the connection does
			// not (a write that times out corrupts a TLS connection).
			return errWriteDeadline
		}
		if dl != w.armed {
			_ = w.c.SetWriteDeadline(dl)
			w.armed = dl
		}
	case w.armed.Sub(now) < connWriteTimeout/2 || w.armed.Sub(now) > connWriteTimeout:
		// Re-armed only when half used, or when a stream's later deadline
		// is armed: a deadline costs a timer update.
		w.armed = now.Add(connWriteTimeout)
		_ = w.c.SetWriteDeadline(w.armed)
	}
	if _, err := w.c.Write(b); err != nil {
		w.err = err
		_ = w.c.Close()
		return err
	}
	return nil
}

// fail poisons the writer; later writes return err. It waits for a write
// in progress: close the connection first.
func (w *fwriter) fail(err error) {
	_ = w.lock(time.Time{})
	if w.err == nil {
		w.err = err
	}
	w.unlock()
}

// inbox is one stream's received body: the connection's reader pushes DATA
// into it, the stream's consumer reads it. It never holds more than the
// credit it granted; reading returns credit in WINDOW frames of at least
// half the initial window.
type inbox struct {
	conn   *connRecv
	mu     sync.Mutex
	buf    []byte
	off    int
	ready  chan struct{} // one wake-up for the consumer
	end    bool          // the sender's last DATA arrived
	err    error         // terminal: returned once buf is drained (at once if closed)
	closed bool          // the consumer closed it
	credit int           // bytes the sender may still send
	owed   int           // bytes read but not yet returned as credit
	got    int64         // bytes received
	want   int64         // announced content-length, -1 if none
	grant  func(n int)   // sends a WINDOW frame; called without mu
	onDone func()        // called once when the consumer closes it before the end
}

func newInbox(conn *connRecv, want int64, grant func(int), onClose func()) *inbox {
	return &inbox{conn: conn, ready: make(chan struct{}, 1), credit: framing.InitialWindow, want: want, grant: grant, onDone: onClose}
}

// connRecv is a connection's receive credit, shared by its streams: the
// peer may have at most framing.ConnWindow body bytes unread here. Bytes
// read, discarded or dropped are given back in WINDOW frames on stream 0.
type connRecv struct {
	mu     sync.Mutex
	credit int
	owed   int
	grant  func(n int)
}

func newConnRecv(grant func(int)) *connRecv {
	return &connRecv{credit: framing.ConnWindow, grant: grant}
}

// take accounts for a DATA payload's arrival.
func (c *connRecv) take(n int) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if n > c.credit {
		return &framing.Error{Code: framing.CodeProtocol, Msg: fmt.Sprintf("DATA of %d bytes beyond the connection's credit of %d", n, c.credit)}
	}
	c.credit -= n
	return nil
}

// done gives back n bytes no longer held (read, discarded or dropped).
func (c *connRecv) done(n int) {
	if n <= 0 {
		return
	}
	c.mu.Lock()
	c.owed += n
	g := 0
	if c.owed >= framing.ConnWindow/4 {
		g, c.owed = c.owed, 0
		c.credit += g
	}
	c.mu.Unlock()
	if g > 0 {
		c.grant(g)
	}
}

// drop takes and gives back a payload nobody will read (its stream ended).
func (c *connRecv) drop(n int) error {
	if err := c.take(n); err != nil {
		return err
	}
	c.done(n)
	return nil
}

func (b *inbox) wake() {
	select {
	case b.ready <- struct{}{}:
	default:
	}
}

// push adds a DATA payload (copied). More than the credit is a protocol
// error; so is a body longer or shorter than its content-length.
func (b *inbox) push(p []byte, end bool) error {
	if err := b.conn.take(len(p)); err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.end || b.err != nil || b.closed {
		defer b.conn.done(len(p)) // after a reset, the end or the reader's close: dropped
		if b.end || b.err != nil {
			return nil
		}
	}
	if len(p) > b.credit {
		return &framing.Error{Code: framing.CodeProtocol, Msg: fmt.Sprintf("DATA of %d bytes beyond the stream's credit of %d", len(p), b.credit)}
	}
	b.credit -= len(p)
	b.got += int64(len(p))
	if b.want >= 0 && (b.got > b.want || end && b.got != b.want) {
		b.err = fmt.Errorf("transport: treaty/2 body of %d bytes, content-length %d: %w", b.got, b.want, io.ErrUnexpectedEOF)
		b.wake()
		return nil
	}
	if !b.closed {
		if b.off > 0 && (b.off == len(b.buf) || len(b.buf)+len(p) > cap(b.buf)) {
			// What was read goes before the buffer grows: a consumer that
			// stays behind would otherwise keep every byte received.
			n := copy(b.buf, b.buf[b.off:])
			b.buf, b.off = b.buf[:n], 0
		}
		b.buf = append(b.buf, p...)
	}
	b.end = end
	b.wake()
	return nil
}

// fail ends the body with err unless it already ended.
func (b *inbox) fail(err error) {
	b.mu.Lock()
	if b.err == nil && !b.end {
		b.err = err
	}
	b.mu.Unlock()
	b.wake()
}

func (b *inbox) Read(p []byte) (int, error) {
	for {
		b.mu.Lock()
		if b.closed {
			b.mu.Unlock()
			return 0, errBodyClosed
		}
		if b.off < len(b.buf) {
			n := copy(p, b.buf[b.off:])
			b.off += n
			g := 0
			if !b.end {
				b.owed += n
				if b.owed >= framing.InitialWindow/2 {
					g, b.owed = b.owed, 0
					b.credit += g
				}
			}
			b.mu.Unlock()
			b.conn.done(n)
			if g > 0 {
				b.grant(g)
			}
			return n, nil
		}
		if b.err != nil {
			b.mu.Unlock()
			return 0, b.err
		}
		if b.end {
			b.mu.Unlock()
			return 0, io.EOF
		}
		b.mu.Unlock()
		if len(p) == 0 {
			return 0, nil
		}
		<-b.ready
	}
}

// Close discards the rest; if the sender had not finished, onDone tells it
// to stop (a RESET). A body failed by a content-length it overran has not
// finished either: its stream is still open on both sides.
func (b *inbox) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	discarded := len(b.buf) - b.off
	b.buf, b.off = nil, 0
	early := !b.end
	b.mu.Unlock()
	b.conn.done(discarded)
	b.wake()
	if early && b.onDone != nil {
		b.onDone()
	}
	return nil
}

var errBodyClosed = errors.New("transport: read on a closed body")

// outCredit is credit to send body bytes: the peer's window for a stream,
// or for the whole connection.
type outCredit struct {
	mu    sync.Mutex
	n     int
	ended error
	more  chan struct{}
}

func newOutCredit(n int) *outCredit {
	return &outCredit{n: n, more: make(chan struct{}, 1)}
}

// give returns credit taken but not used.
func (c *outCredit) give(n int) {
	c.mu.Lock()
	c.n += n
	c.mu.Unlock()
	select {
	case c.more <- struct{}{}:
	default:
	}
}

// takeBoth takes up to want bytes of credit from a stream and its
// connection, waiting (until dl) for both.
func takeBoth(stream, conn *outCredit, want int, dl time.Time) (int, error) {
	n, err := stream.take(want, dl)
	if err != nil {
		return 0, err
	}
	m, err := conn.take(n, dl)
	if m < n {
		stream.give(n - m)
	}
	return m, err
}

// tryTake takes n bytes of credit if they are there now.
func (c *outCredit) tryTake(n int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ended != nil || c.n < n {
		return false
	}
	c.n -= n
	return true
}

// add takes a WINDOW frame's increment; beyond MaxWindow is a protocol error.
func (c *outCredit) add(n uint32) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if n == 0 || int64(c.n)+int64(n) > framing.MaxWindow {
		return &framing.Error{Code: framing.CodeProtocol, Msg: fmt.Sprintf("WINDOW increment %d on a credit of %d", n, c.n)}
	}
	c.n += int(n)
	select {
	case c.more <- struct{}{}:
	default:
	}
	return nil
}

// stopped returns the error stop was given; nil while the stream goes on.
func (c *outCredit) stopped() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ended
}

func (c *outCredit) available() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}

// stop wakes a waiter for good: the stream is over.
func (c *outCredit) stop(err error) {
	c.mu.Lock()
	if c.ended == nil {
		c.ended = err
	}
	c.mu.Unlock()
	select {
	case c.more <- struct{}{}:
	default:
	}
}

// take waits until some credit is there (or dl passes, or the stream ends)
// and takes up to want of it.
func (c *outCredit) take(want int, dl time.Time) (int, error) {
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		c.mu.Lock()
		if c.ended != nil {
			c.mu.Unlock()
			return 0, c.ended
		}
		if c.n > 0 {
			n := min(want, c.n)
			c.n -= n
			c.mu.Unlock()
			return n, nil
		}
		c.mu.Unlock()
		var expired <-chan time.Time
		if !dl.IsZero() {
			d := time.Until(dl)
			if d <= 0 {
				return 0, errWriteDeadline
			}
			if timer == nil {
				timer = time.NewTimer(d)
			} else {
				timer.Reset(d)
			}
			expired = timer.C
		}
		select {
		case <-c.more:
		case <-expired:
			return 0, errWriteDeadline
		}
	}
}

var errWriteDeadline = fmt.Errorf("transport: treaty/2 write deadline passed: %w", errTimeout)

// errTimeout is an error that says it is a timeout (net.Error).
var errTimeout error = timeoutError{}

type timeoutError struct{}

func (timeoutError) Error() string   { return "i/o timeout" }
func (timeoutError) Timeout() bool   { return true }
func (timeoutError) Temporary() bool { return true }

// appendHeaderFields appends h's fields, names lower-cased, leaving out
// hop-by-hop fields and fields whose name or value HTTP does not allow.
func appendHeaderFields(dst []byte, h http.Header) []byte {
	for k, vs := range h {
		if hopByHop(k) || !httpguts.ValidHeaderFieldName(k) {
			continue
		}
		for _, v := range vs {
			if !httpguts.ValidHeaderFieldValue(v) {
				continue
			}
			dst = binary.AppendUvarint(dst, uint64(len(k)))
			for i := 0; i < len(k); i++ {
				c := k[i]
				if 'A' <= c && c <= 'Z' {
					c += 'a' - 'A'
				}
				dst = append(dst, c)
			}
			dst = binary.AppendUvarint(dst, uint64(len(v)))
			dst = append(dst, v...)
		}
	}
	return dst
}

// hopByHop: fields that describe one HTTP/1 connection, never forwarded
// (keys as http.Header.Set stores them).
func hopByHop(k string) bool {
	switch k {
	case "Connection", "Keep-Alive", "Proxy-Connection", "Transfer-Encoding", "Upgrade", "Te", "Host":
		return true
	}
	return false
}

// contentLength parses a content-length field value; -1 if absent or invalid
// (an invalid one is refused by the caller).
func contentLength(v string) (int64, bool) {
	if v == "" {
		return -1, true
	}
	// Digits only, as net/http's own parse: ParseInt would take "+5" and "-0".
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || v[0] < '0' || v[0] > '9' {
		return -1, false
	}
	return n, true
}

// headerCanon canonicalizes field names through a small per-connection
// cache: the same few names arrive on every request.
type headerCanon map[string]string

const maxCanonCache = 64

func (c headerCanon) key(name string) string {
	if k, ok := c[name]; ok {
		return k
	}
	k := http.CanonicalHeaderKey(name)
	if len(c) < maxCanonCache {
		c[name] = k
	}
	return k
}
