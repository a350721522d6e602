package client

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// idleTimeout closes a pooled connection to the node nobody used for this
// long: a long-lived agent does not hold the node's connections forever.
const idleTimeout = 90 * time.Second

// maxIdle bounds the connections a client keeps open between requests.
const maxIdle = 64

// pool makes a request and reads its answer wholly in the caller's
// goroutine, on an HTTP/1.1 connection to the node's socket that it holds
// alone; net/http's transport hands each request to a writer and a reader
// goroutine per connection. Idle connections are reused last in, first out,
// checked for a close by the node (a restart) before reuse, and closed after
// idleTimeout. Streams, which read as they go, use net/http.
type pool struct {
	sock        string
	idleTimeout time.Duration // idleTimeout; shorter in tests

	mu    sync.Mutex
	idle  []*conn // oldest first
	timer *time.Timer
}

type conn struct {
	c         net.Conn
	rc        syscall.RawConn // nil if the connection has none
	br        *bufio.Reader
	bw        *bufio.Writer
	idleSince time.Time
}

// roundTrip sends method target with body (JSON; nil for none) and returns
// the answer's status and body.
func (p *pool) roundTrip(ctx context.Context, method, target string, body []byte) (int, []byte, error) {
	if strings.ContainsAny(target, " \r\n") {
		return 0, nil, fmt.Errorf("request target %q", target)
	}
	// The context's deadline bounds every read and write; a cancellation
	// moves it to the past, which fails the one in progress.
	deadline, _ := ctx.Deadline()
	for {
		c, reused, err := p.get(ctx, deadline)
		if err != nil {
			return 0, nil, err
		}
		stop := context.AfterFunc(ctx, func() { c.c.SetDeadline(time.Unix(1, 0)) })
		status, out, reuse, err := c.exchange(method, target, body)
		if stop() && reuse && err == nil {
			p.put(c)
		} else {
			c.c.Close()
		}
		var nr *notReached
		if reused && errors.As(err, &nr) && (nr.unsent || method == http.MethodGet) && ctx.Err() == nil {
			// The node closed a reused connection (it restarted, or is
			// stopping) as the request went: as net/http does, send again
			// on a new one what it cannot have acted on, or may act on twice.
			continue
		}
		if err != nil {
			err = contextError(ctx, err)
		}
		return status, out, err
	}
}

// notReached is a failure before any byte of an answer came back: the
// request was not written (unsent) or no answer began.
type notReached struct {
	unsent bool
	err    error
}

func (e *notReached) Error() string { return e.err.Error() }
func (e *notReached) Unwrap() error { return e.err }

// contextError is ctx's error when a read or write failed for its
// cancellation or deadline (the connection's deadline may pass before the
// context's timer fires), err otherwise.
func contextError(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if d, ok := ctx.Deadline(); ok && errors.Is(err, os.ErrDeadlineExceeded) && !time.Now().Before(d) {
		return context.DeadlineExceeded
	}
	return err
}

func (c *conn) exchange(method, target string, body []byte) (status int, out []byte, reuse bool, err error) {
	w := c.bw
	w.WriteString(method)
	w.WriteString(" ")
	w.WriteString(target)
	w.WriteString(" HTTP/1.1\r\nHost: treaty\r\nUser-Agent: treaty-client\r\n")
	if body != nil {
		w.WriteString("Content-Type: application/json\r\nContent-Length: ")
		w.WriteString(strconv.Itoa(len(body)))
		w.WriteString("\r\n")
	}
	w.WriteString("\r\n")
	w.Write(body)
	if err := w.Flush(); err != nil {
		return 0, nil, false, &notReached{unsent: true, err: err}
	}
	if _, err := c.br.Peek(1); err != nil {
		return 0, nil, false, &notReached{err: err}
	}
	var resp *http.Response
	for {
		resp, err = http.ReadResponse(c.br, nil)
		if err != nil {
			return 0, nil, false, err
		}
		if resp.StatusCode >= 200 {
			break
		}
	}
	out, err = readAll(resp.Body, resp.ContentLength)
	if err != nil {
		return 0, nil, false, err
	}
	resp.Body.Close()
	return resp.StatusCode, out, !resp.Close, nil
}

// readAll reads r to its end into a buffer sized from the announced length.
func readAll(r io.Reader, announced int64) ([]byte, error) {
	size := 512
	if announced >= 0 && announced < 1<<20 {
		size = int(announced) + 1
	}
	b := make([]byte, 0, size)
	for {
		n, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err == io.EOF {
			return b, nil
		}
		if err != nil {
			return b, err
		}
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
	}
}

// get returns an idle connection the node has not closed (reused), or
// dials, with deadline set.
func (p *pool) get(ctx context.Context, deadline time.Time) (c *conn, reused bool, err error) {
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
		c.c.SetDeadline(deadline)
		if time.Since(c.idleSince) < p.idleTimeout && stillOpen(c.rc) {
			return c, true, nil
		}
		c.c.Close()
	}
	var d net.Dialer
	nc, err := d.DialContext(ctx, "unix", p.sock)
	if err != nil {
		return nil, false, fmt.Errorf("%w: %v", ErrNotRunning, err)
	}
	nc.SetDeadline(deadline)
	c = &conn{c: nc, br: bufio.NewReaderSize(nc, 4<<10), bw: bufio.NewWriterSize(nc, 4<<10)}
	if sc, ok := nc.(syscall.Conn); ok {
		c.rc, _ = sc.SyscallConn()
	}
	return c, false, nil
}

// put makes c idle and, for the first idle connection, arms the timer that
// closes stale ones.
func (p *pool) put(c *conn) {
	c.idleSince = time.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.idle) >= maxIdle {
		c.c.Close()
		return
	}
	p.idle = append(p.idle, c)
	if p.timer == nil {
		p.timer = time.AfterFunc(p.idleTimeout, p.expire)
	}
}

// expire closes the connections idle for idleTimeout and re-arms the timer
// for the next one.
func (p *pool) expire() {
	now := time.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for n < len(p.idle) && now.Sub(p.idle[n].idleSince) >= p.idleTimeout {
		p.idle[n].c.Close()
		n++
	}
	p.idle = append(p.idle[:0], p.idle[n:]...)
	clear(p.idle[len(p.idle):cap(p.idle)])
	p.timer = nil
	if len(p.idle) > 0 {
		p.timer = time.AfterFunc(p.idleTimeout-now.Sub(p.idle[0].idleSince), p.expire)
	}
}
