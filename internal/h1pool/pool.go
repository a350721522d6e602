// Package h1pool makes HTTP/1.1 requests that have one answer, read whole
// within a size bound, on pooled connections to one server. A request runs
// wholly in its caller's goroutine on a connection it holds alone: net/http's
// transport hands every request to a writer and a reader goroutine per
// connection, and without them a hop costs a third less CPU (BENCHMARKS.md,
// h/hops).
//
// A Pool guarantees that:
//   - a connection goes back to the pool only after a whole answer whose end
//     its framing told, no longer than the caller's bound; a failed,
//     cancelled, cut or oversized exchange closes it;
//   - an idle connection is checked, before reuse, for a close or stray bytes
//     from the server (on unix; elsewhere the request that reuses it finds
//     out), and is closed after Config.IdleTimeout unused;
//   - at most Config.MaxOpen connections are open, idle ones included, and at
//     most Config.MaxIdle are kept idle;
//   - the context's deadline bounds every dial, read and write, and its
//     cancellation fails the one in progress: such a failure returns the
//     context's error;
//   - a request whose target or header would break its framing is refused
//     before anything is sent;
//   - an answer's head, informational answers included, is read within
//     maxHead bytes.
//
// It never sends a request twice: a failure before any byte of an answer is a
// *NoAnswerError that says whether the connection was reused and whether the
// request went out whole, and the caller decides what it may send again.
// It has no HEAD, no streams and no upgrades (a 101 answer ends the
// connection); it links only the standard library.
package h1pool

import (
	"bufio"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Config configures a Pool. Dial and IdleTimeout are required, and MaxOpen or
// MaxIdle.
type Config struct {
	// Dial opens a connection to the server, TLS handshaken if any.
	Dial func(ctx context.Context) (net.Conn, error)
	// Header holds name, value pairs sent with every request, Host first.
	Header []string
	// MaxOpen bounds the connections open at once, idle ones included; a
	// request beyond it waits for one within its context. Zero: no bound.
	MaxOpen int
	// MaxIdle bounds the idle connections kept; zero: MaxOpen.
	MaxIdle int
	// IdleTimeout closes a connection nobody used for this long.
	IdleTimeout time.Duration
}

// Pool holds the connections to one server. It is safe for concurrent use.
type Pool struct {
	dial        func(context.Context) (net.Conn, error)
	head        string        // Config.Header, as written
	slots       chan struct{} // a token per open connection; nil: no bound
	maxIdle     int
	idleTimeout time.Duration

	mu    sync.Mutex
	idle  []*conn // oldest first
	timer *time.Timer
}

type conn struct {
	nc        net.Conn
	cr        *capReader      // under br: bounds an answer's head
	rc        syscall.RawConn // the socket's, for the liveness check; nil if none
	layered   bool            // nc reads through a layer (TLS) that may hold bytes of its own
	afterHead func()          // called once an answer's head is read; nil: nothing
	br        *bufio.Reader
	bw        *bufio.Writer
	idleSince time.Time
}

// New returns a pool with no connection open yet.
func New(cfg Config) (*Pool, error) {
	switch {
	case cfg.Dial == nil:
		return nil, errors.New("h1pool: Config.Dial is nil")
	case cfg.MaxOpen < 0 || cfg.MaxIdle < 0:
		return nil, fmt.Errorf("h1pool: Config.MaxOpen %d, MaxIdle %d: want 0 or more", cfg.MaxOpen, cfg.MaxIdle)
	case cfg.MaxOpen == 0 && cfg.MaxIdle == 0:
		return nil, errors.New("h1pool: Config.MaxIdle 0 with no MaxOpen: want a bound on idle connections")
	case cfg.IdleTimeout <= 0:
		return nil, fmt.Errorf("h1pool: Config.IdleTimeout %v: want more than 0", cfg.IdleTimeout)
	}
	if err := checkHeader(cfg.Header); err != nil {
		return nil, fmt.Errorf("h1pool: Config.Header: %w", err)
	}
	var head strings.Builder
	for i := 1; i < len(cfg.Header); i += 2 {
		head.WriteString(cfg.Header[i-1] + ": " + cfg.Header[i] + "\r\n")
	}
	p := &Pool{dial: cfg.Dial, head: head.String(), maxIdle: cfg.MaxIdle, idleTimeout: cfg.IdleTimeout}
	if cfg.MaxOpen > 0 {
		p.slots = make(chan struct{}, cfg.MaxOpen)
		if p.maxIdle == 0 || p.maxIdle > cfg.MaxOpen {
			p.maxIdle = cfg.MaxOpen
		}
	}
	return p, nil
}

// Request is one request. Its Header pairs follow Config.Header; a nil Body
// sends no body and no Content-Length.
type Request struct {
	Method string
	Target string   // request-target: path and query
	Header []string // name, value pairs
	Body   []byte
	// BodyWithin, when not zero, bounds the time from the answer's head to
	// the end of its body (within the context's deadline), so that a server
	// that announces more than it sends, or trickles, cannot hold a caller
	// whose context has no deadline; the wait for the head is the context's.
	BodyWithin time.Duration
}

// ErrMalformed refuses a request whose target or header would break its
// framing, a control character in a value for one.
var ErrMalformed = errors.New("h1pool: request would break HTTP/1.1 framing")

// maxHead bounds the bytes of an answer's head, with any informational
// answers before it (net/http's server allows a request's head as much).
const maxHead = 1 << 20

// errHeadTooLarge refuses an answer whose head goes on past maxHead.
var errHeadTooLarge = fmt.Errorf("answer's head over %d bytes", maxHead)

// capReader reads at most left bytes of r, then fails; left < 0: no cap.
type capReader struct {
	r    io.Reader
	left int64
}

func (c *capReader) Read(b []byte) (int, error) {
	if c.left < 0 {
		return c.r.Read(b)
	}
	if c.left == 0 {
		return 0, errHeadTooLarge
	}
	if int64(len(b)) > c.left {
		b = b[:c.left]
	}
	n, err := c.r.Read(b)
	c.left -= int64(n)
	return n, err
}

// ErrBody is a failure after an answer's head arrived.
var ErrBody = errors.New("reading the answer's body")

// NoAnswerError is a failure before any byte of an answer arrived: the server
// may have closed the connection (it restarted, or is stopping) as the
// request went.
type NoAnswerError struct {
	Reused bool // the connection had carried an earlier exchange
	Unsent bool // the request did not go out whole: the server cannot have acted on it
	Err    error
}

func (e *NoAnswerError) Error() string { return e.Err.Error() }
func (e *NoAnswerError) Unwrap() error { return e.Err }

// Do sends req and returns the answer's status and body, skipping
// informational (1xx) answers but a 101. A body over max bytes is refused
// with ErrTooLarge, its connection closed: before it is read when its length
// is announced, at max+1 bytes otherwise. A max of math.MaxInt sets no bound.
func (p *Pool) Do(ctx context.Context, req Request, max int) (status int, body []byte, err error) {
	if max < 0 {
		return 0, nil, fmt.Errorf("h1pool: body bound %d: want 0 or more", max)
	}
	if err := checkRequest(&req); err != nil {
		return 0, nil, err
	}
	if p.slots != nil {
		select {
		case p.slots <- struct{}{}:
		case <-ctx.Done():
			return 0, nil, fmt.Errorf("waiting for a connection: %w", ctx.Err())
		}
		defer func() { <-p.slots }()
	}
	c, reused, err := p.get(ctx)
	if err != nil {
		return 0, nil, contextError(ctx, err)
	}
	// A cancellation moves the deadline to the past, which fails the read
	// or write in progress.
	stop := context.AfterFunc(ctx, func() { c.nc.SetDeadline(time.Unix(1, 0)) })
	c.afterHead = nil
	if req.BodyWithin > 0 {
		c.afterHead = func() {
			d := time.Now().Add(req.BodyWithin)
			if cd, ok := ctx.Deadline(); ok && cd.Before(d) {
				d = cd
			}
			c.nc.SetReadDeadline(d)
			if ctx.Err() != nil { // cancelled as the deadline moved: keep it failed
				c.nc.SetDeadline(time.Unix(1, 0))
			}
		}
	}
	status, body, reuse, err := p.exchange(c, &req, max)
	if stop() && reuse {
		p.put(c)
	} else {
		c.nc.Close()
	}
	if err != nil {
		var na *NoAnswerError
		if errors.As(err, &na) {
			na.Reused = reused
		}
		err = contextError(ctx, err)
		if req.BodyWithin > 0 && errors.Is(err, ErrBody) && errors.Is(err, os.ErrDeadlineExceeded) {
			err = fmt.Errorf("%w (not whole within %v of its head)", err, req.BodyWithin)
		}
		return 0, nil, err
	}
	return status, body, nil
}

// contextError is ctx's error when a step failed for its cancellation or
// deadline (the connection's deadline may pass before the context's timer
// fires), err otherwise.
func contextError(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if d, ok := ctx.Deadline(); ok && errors.Is(err, os.ErrDeadlineExceeded) && !time.Now().Before(d) {
		return context.DeadlineExceeded
	}
	return err
}

func checkRequest(req *Request) error {
	if req.Method == "" || !validValue(req.Method) || strings.ContainsAny(req.Method, " \t") {
		return fmt.Errorf("method: %w", ErrMalformed)
	}
	if strings.EqualFold(req.Method, http.MethodHead) || strings.EqualFold(req.Method, http.MethodConnect) {
		return fmt.Errorf("method %s, whose answer this pool cannot frame: %w", req.Method, ErrMalformed)
	}
	if req.Target == "" || !validValue(req.Target) || strings.ContainsAny(req.Target, " \t") {
		return fmt.Errorf("request target: %w", ErrMalformed)
	}
	return checkHeader(req.Header)
}

// checkHeader refuses an odd list, a name that is not a token-like word or
// that sets the framing (the pool writes Content-Length itself) and a value
// with a control character (HTAB aside). Values are not quoted in the error:
// one may be a credential.
func checkHeader(h []string) error {
	if len(h)%2 != 0 {
		return fmt.Errorf("header list of odd length %d: %w", len(h), ErrMalformed)
	}
	for i := 0; i < len(h); i += 2 {
		if h[i] == "" || !validValue(h[i]) || strings.ContainsAny(h[i], " \t:") ||
			strings.EqualFold(h[i], "Content-Length") || strings.EqualFold(h[i], "Transfer-Encoding") {
			return fmt.Errorf("header name %q: %w", h[i], ErrMalformed)
		}
		if !validValue(h[i+1]) {
			return fmt.Errorf("header %s: value with a control character: %w", h[i], ErrMalformed)
		}
	}
	return nil
}

// validValue reports whether s has no control character but HTAB.
func validValue(s string) bool {
	for i := range len(s) {
		if b := s[i]; b < ' ' && b != '\t' || b == 0x7f {
			return false
		}
	}
	return true
}

// exchange writes req on c and reads the answer; reuse tells whether c is at
// the start of the next answer.
func (p *Pool) exchange(c *conn, req *Request, max int) (status int, body []byte, reuse bool, err error) {
	w := c.bw
	w.WriteString(req.Method)
	w.WriteString(" ")
	w.WriteString(req.Target)
	w.WriteString(" HTTP/1.1\r\n")
	w.WriteString(p.head)
	for i := 1; i < len(req.Header); i += 2 {
		w.WriteString(req.Header[i-1])
		w.WriteString(": ")
		w.WriteString(req.Header[i])
		w.WriteString("\r\n")
	}
	if req.Body != nil {
		w.WriteString("Content-Length: ")
		w.WriteString(strconv.Itoa(len(req.Body)))
		w.WriteString("\r\n")
	}
	w.WriteString("\r\n")
	w.Write(req.Body)
	werr := w.Flush()
	if c.cr != nil {
		c.cr.left = maxHead
	}
	// A server may answer before it has read the whole request (a refusal
	// of a large body) and close: its answer is still read.
	if _, err := c.br.Peek(1); err != nil {
		if werr != nil {
			err = werr
		}
		return 0, nil, false, &NoAnswerError{Unsent: werr != nil, Err: err}
	}
	var resp *http.Response
	for {
		resp, err = http.ReadResponse(c.br, nil)
		if err != nil {
			return 0, nil, false, err
		}
		if resp.StatusCode == http.StatusSwitchingProtocols {
			return resp.StatusCode, nil, false, nil // not HTTP any more
		}
		if resp.StatusCode >= 200 {
			break
		}
	}
	if c.cr != nil {
		c.cr.left = -1 // the body has its own bound
	}
	if c.afterHead != nil {
		c.afterHead()
	}
	body, err = readBody(resp.Body, resp.ContentLength, max)
	if errors.Is(err, ErrTooLarge) {
		return 0, nil, false, fmt.Errorf("h1pool: HTTP %d: %w", resp.StatusCode, err)
	}
	if err != nil {
		return 0, nil, false, fmt.Errorf("%w: %w", ErrBody, err)
	}
	// The body was read to its end: the connection is at the next answer,
	// unless the server sent bytes after this one, which the next request
	// would read as its answer.
	reuse = werr == nil && !resp.Close && c.br.Buffered() == 0
	if reuse {
		resp.Body.Close()
	}
	return resp.StatusCode, body, reuse, nil
}

// sizeHint bounds what an answer's body buys before its bytes come: an
// announced length up to it is allocated at once, a longer one only after
// its first sizeHint bytes arrived, and a body of no announced length is
// read in chunks that grow geometrically up to it.
const sizeHint = 1 << 20

// ErrTooLarge refuses an answer whose body is over the caller's bound, by
// its announced length (before any byte of it is read) or by the bytes read.
// The connection is closed.
var ErrTooLarge = errors.New("answer's body over the bound")

// readBody reads r, an answer's body, to its end within max bytes. What it
// allocates is at most about max plus sizeHint, or twice a kept body's
// length when none was announced, whatever the server sends:
//   - an announced length over max is refused before any byte is read;
//   - one within max buys one buffer of that length plus a byte (EOF is
//     seen without growing), at once up to sizeHint, after the first
//     sizeHint bytes beyond it (a server that announces much and sends
//     little buys no more than that); with no bound (max math.MaxInt) one
//     over sizeHint is read as a body of no announced length, its length
//     checked at the end;
//   - a body of no announced length (chunked, or ended by a close) is read
//     in chunks, max+1 bytes in all at most, that grow geometrically up to
//     sizeHint, and copied once into a buffer of its length: a refused one
//     costs about max, a kept one about twice its length.
//
// Growing one buffer by append instead cost five to six times max before a
// refusal (BENCHMARKS.md), and doubling one would cost two to three times.
func readBody(r io.Reader, announced int64, max int) ([]byte, error) {
	if announced > int64(max) {
		return nil, fmt.Errorf("%w: %d bytes announced, bound %d", ErrTooLarge, announced, max)
	}
	if announced < 0 {
		return readChunks(r, int64(min(max, math.MaxInt-1))+1)
	}
	if announced > sizeHint && max == math.MaxInt {
		// No bound: what is allocated follows the bytes that come, not
		// the length a server announces, which may be more than the heap
		// can hold (or MaxInt64, whose buffer's +1 overflows).
		b, err := readChunks(r, min(announced, math.MaxInt64-1)+1)
		if err == nil && int64(len(b)) < announced {
			return nil, io.ErrUnexpectedEOF
		}
		return b, err
	}
	var head []byte
	if announced > sizeHint {
		head = make([]byte, sizeHint)
		if _, eof, err := fill(r, head); err != nil || eof {
			return nil, cmp.Or(err, io.ErrUnexpectedEOF)
		}
	}
	b := make([]byte, announced+1)
	copy(b, head)
	n, eof, err := fill(r, b[len(head):])
	if err != nil {
		return nil, err
	}
	// net/http's reader stops at the announced length, and fails a body cut
	// short: neither can happen through it.
	switch n += len(head); {
	case int64(n) > announced || !eof:
		return nil, fmt.Errorf("%w: more than the %d bytes announced", ErrTooLarge, announced)
	case int64(n) < announced:
		return nil, io.ErrUnexpectedEOF
	}
	return b[:n], nil
}

// readChunks reads r to its end in chunks, refusing it at limit bytes, and
// returns it in one buffer of its length.
func readChunks(r io.Reader, limit int64) ([]byte, error) {
	var chunks [][]byte
	var total int64
	for size := int64(512); ; size = min(size*2, sizeHint) {
		c := make([]byte, min(size, limit-total))
		n, eof, err := fill(r, c)
		if err != nil {
			return nil, err
		}
		total += int64(n)
		chunks = append(chunks, c[:n])
		if total == limit { // the last byte may come with EOF
			return nil, fmt.Errorf("%w: more than %d bytes", ErrTooLarge, limit-1)
		}
		if eof {
			break
		}
	}
	if len(chunks) == 1 {
		return chunks[0], nil
	}
	b := make([]byte, 0, total)
	for _, c := range chunks {
		b = append(b, c...)
	}
	return b, nil
}

// fill reads r into b until b is full or r ends (eof). Unlike io.ReadFull it
// tells a clean end from a body cut short, whose reader fails with
// io.ErrUnexpectedEOF itself.
func fill(r io.Reader, b []byte) (n int, eof bool, err error) {
	for n < len(b) {
		m, err := r.Read(b[n:])
		n += m
		if err == io.EOF {
			return n, true, nil
		}
		if err != nil {
			return n, false, err
		}
	}
	return n, false, nil
}

// get returns an idle connection the server has not closed (reused), or
// dials, with the context's deadline set.
func (p *Pool) get(ctx context.Context) (c *conn, reused bool, err error) {
	deadline, _ := ctx.Deadline()
	for {
		p.mu.Lock()
		n := len(p.idle)
		if n == 0 {
			p.mu.Unlock()
			break
		}
		c = p.idle[n-1]
		p.idle[n-1] = nil
		p.idle = p.idle[:n-1]
		p.mu.Unlock()
		fresh := time.Since(c.idleSince) < p.idleTimeout && c.quiet()
		c.nc.SetDeadline(deadline)
		if fresh && stillOpen(c.rc) {
			return c, true, nil
		}
		c.nc.Close()
	}
	nc, err := p.dial(ctx)
	if err != nil {
		return nil, false, err
	}
	nc.SetDeadline(deadline)
	c = &conn{nc: nc, cr: &capReader{r: nc, left: -1}, bw: bufio.NewWriterSize(nc, 4<<10)}
	c.br = bufio.NewReaderSize(c.cr, 4<<10)
	raw := nc
	if tc, ok := nc.(interface{ NetConn() net.Conn }); ok { // TLS: peek under it
		raw = tc.NetConn()
		c.layered = true
	}
	if sc, ok := raw.(syscall.Conn); ok {
		c.rc, _ = sc.SyscallConn()
	}
	return c, false, nil
}

// quiet reports whether a TLS layer under c holds no bytes the server sent
// after its last answer: a peek at the socket cannot see them. A read past
// its deadline leaves a TLS connection usable.
func (c *conn) quiet() bool {
	if !c.layered {
		return true
	}
	c.nc.SetReadDeadline(time.Unix(1, 0))
	_, err := c.br.Peek(1)
	return errors.Is(err, os.ErrDeadlineExceeded)
}

// put makes c idle and, for the first idle connection, arms the timer that
// closes stale ones.
func (p *Pool) put(c *conn) {
	c.idleSince = time.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.idle) >= p.maxIdle {
		c.nc.Close()
		return
	}
	p.idle = append(p.idle, c)
	if p.timer == nil {
		p.timer = time.AfterFunc(p.idleTimeout, p.expire)
	}
}

// expire closes the connections idle for idleTimeout and re-arms the timer
// for the next one.
func (p *Pool) expire() {
	now := time.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for n < len(p.idle) && now.Sub(p.idle[n].idleSince) >= p.idleTimeout {
		p.idle[n].nc.Close()
		n++
	}
	p.idle = append(p.idle[:0], p.idle[n:]...)
	clear(p.idle[len(p.idle):cap(p.idle)])
	p.timer = nil
	if len(p.idle) > 0 {
		p.timer = time.AfterFunc(p.idleTimeout-now.Sub(p.idle[0].idleSince), p.expire)
	}
}

// Idle is the number of idle connections held.
func (p *Pool) Idle() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.idle)
}

// CloseIdle closes every idle connection. Requests may still be made after
// it; they open new ones.
func (p *Pool) CloseIdle() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.idle {
		c.nc.Close()
	}
	clear(p.idle)
	p.idle = p.idle[:0]
	if p.timer != nil {
		p.timer.Stop()
		p.timer = nil
	}
}
